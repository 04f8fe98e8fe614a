"""inspect: the verdict of any .tflite, and safe loading of broken files."""
from __future__ import annotations

import pytest

from tflite_int8 import InputError
from tflite_int8.inspect import check_header, describe, probe


def test_verdicts(tiny_conversion):
    assert describe(tiny_conversion.files["full-integer"])["verdict"] == "full-integer"
    assert describe(tiny_conversion.files["int8-float-io"])["verdict"] == "integer with float I/O"
    assert describe(tiny_conversion.files["float32"])["verdict"] == "float32"


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
