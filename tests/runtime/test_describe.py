"""inspect: the verdict of any .tflite, and safe loading of broken files."""
from __future__ import annotations

import pytest

from tests.tf_models import make_variants
from tflite_int8 import InputError
from tflite_int8.cli import main
from tflite_int8.runtime.describe import compare, describe
from tflite_int8.runtime.interpreter import check_header, probe


@pytest.fixture(scope="module")
def tf_variants(tmp_path_factory):
    return make_variants(tmp_path_factory.mktemp("tfvariants"))


def test_verdicts(tiny_conversion, tf_variants):
    assert describe(tiny_conversion.files["full-integer"])["verdict"] == "full-integer"
    assert describe(tiny_conversion.files["int8-float-io"])["verdict"] == "integer with float I/O"
    assert describe(tiny_conversion.files["float32"])["verdict"] == "float32"
    assert describe(tf_variants["dynamic-range"])["verdict"] == "dynamic-range"
    mixed = describe(tf_variants["mixed"])
    assert mixed["verdict"] == "mixed" and mixed["float_ops"] == {"MEAN": 1}
    assert mixed["float_op_detail"][0]["op"] == "MEAN" and mixed["float_op_detail"][0]["float_tensors"]


def test_io_table_says_what_each_input_accepts(tiny_conversion, capsys):
    info = describe(tiny_conversion.int8_path)
    t = info["inputs"][0]
    lo, hi = t["accepts"]
    s, z = t["scale"][0], t["zero_point"][0]
    assert lo == pytest.approx((-128 - z) * s, rel=1e-6) and hi == pytest.approx((127 - z) * s, rel=1e-6)
    assert main(["inspect", str(tiny_conversion.int8_path)]) == 0
    out = capsys.readouterr().out
    assert f"accepts {lo:.4g}..{hi:.4g}" in out and "per-tensor" in out and "full-integer" in out


def test_xnnpack_takes_and_falls_back(tiny_conversion):
    x = describe(tiny_conversion.int8_path)["xnnpack"]
    # XNNPACK leaves this RESIZE_NEAREST_NEIGHBOR (as onnx2tf writes it) to the built-in kernel, which
    # splits the graph in two partitions; everything else is taken.
    assert x["fallback"] == {"RESIZE_NEAREST_NEIGHBOR": 1}
    assert x["delegated"]["CONV_2D"] == 2 and x["partitions"] == 2
    assert sum(x["delegated"].values()) + 1 == sum(describe(tiny_conversion.int8_path)["op_histogram"].values())
    f32 = describe(tiny_conversion.files["float32"])["xnnpack"]
    assert f32["fallback"] == {"RESIZE_NEAREST_NEIGHBOR": 1} and f32["partitions"] == 2


def test_require_and_compare_in_the_cli(tiny_conversion, tf_variants, capsys):
    int8, f32 = str(tiny_conversion.int8_path), str(tiny_conversion.files["float32"])
    assert main(["inspect", int8, "--require", "full-integer"]) == 0
    assert main(["inspect", str(tf_variants["mixed"]), "--require", "full-integer"]) == 1
    assert "is mixed, not full-integer; float ops: MEAN x1" in capsys.readouterr().err
    assert main(["inspect", int8, "--compare", f32]) == 0
    out = capsys.readouterr().out
    assert "! verdict" in out and "full-integer" in out and "float32" in out and "difference(s)" in out
    assert "  op CONV_2D" in out  # same count on both sides: not marked
    assert main(["inspect", int8, "--compare", int8]) == 0
    assert "no differences" in capsys.readouterr().out


def test_compare_tells_files_with_other_ranges_apart(tiny_conversion, tmp_path, photos):
    """Same ops, same I/O scales, other activation ranges inside: the comparison says so."""
    from tests.models import TINY_SPEC, tiny
    from tflite_int8 import Recipe, convert

    other = convert(tiny(), tmp_path / "minmax", spec=TINY_SPEC, data=photos, views=2,
                    recipe=Recipe(ranges="minmax", variants=("float32", "int8-float-io")))
    a, b = describe(tiny_conversion.int8_path), describe(other.int8_path)
    assert a["op_histogram"] == b["op_histogram"] and a["inputs"] == b["inputs"]
    assert a["quantization"]["tensors"] == b["quantization"]["tensors"] > 0
    changed = {field for field, _, _, differs in compare(a, b) if differs}
    assert {"content sha256", "quantization"} <= changed


def test_description_has_io_ops_and_xnnpack(tiny_conversion):
    info = describe(tiny_conversion.int8_path)
    assert info["inputs"][0]["scale"][0] > 0 and info["size_bytes"] > 0
    assert info["op_histogram"]["CONV_2D"] >= 2
    assert info["xnnpack_partitions"] >= 1  # XNNPACK takes (parts of) the graph


@pytest.mark.parametrize("make, match", [
    (lambda data: b"", "is empty"),
    (lambda data: b"PK\x03\x04 this is a zip", "not a TFLite flatbuffer"),
])
def test_not_a_tflite(tmp_path, make, match):
    p = tmp_path / "bad.tflite"
    p.write_bytes(make(None))
    with pytest.raises(InputError, match=match):
        check_header(p)


def test_truncated_tflite_is_an_error_not_a_crash(tiny_conversion, tmp_path):
    data = tiny_conversion.int8_path.read_bytes()
    p = tmp_path / "cut.tflite"
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match="cut.tflite cannot be loaded"):
        probe(p)
    with pytest.raises(InputError, match="cannot be loaded"):
        describe(p)
