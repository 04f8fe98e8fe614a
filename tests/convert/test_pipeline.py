"""convert(): the whole path on a tiny model, conversion.json, and the output directory rules."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.models import TINY_SPEC, tiny
from tflite_int8 import InputError, ParityError, PreprocessSpec, convert, load_conversion
from tflite_int8.runtime.describe import describe


def test_tiny_conversion_is_full_integer_with_int8_io(tiny_conversion):
    info = describe(tiny_conversion.int8_path)
    assert info["verdict"] == "full-integer"
    assert [t["dtype"] for t in info["inputs"] + info["outputs"]] == ["int8", "int8"]
    assert not info["float_ops"]
    ops = set(info["op_histogram"])
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "CONCATENATION", "FULLY_CONNECTED"} <= ops


def test_conversion_json_records_everything(tiny_conversion):
    report = json.loads((tiny_conversion.out_dir / "conversion.json").read_text())
    for pkg in ("torch", "onnx", "onnx2tf", "tensorflow-cpu", "ai-edge-litert"):
        assert report["versions"][pkg] not in ("", "not installed")
    assert report["calibration"]["samples"] == 48  # 24 photos x 2 views
    assert len(report["calibration"]["hash"]) == 64
    assert report["onnx"]["opset"] >= 17
    assert report["onnx"]["input_shapes"] == [[1, 3, 32, 32]]
    t_in = report["tensors"]["inputs"][0]
    assert t_in["dtype"] == "int8" and t_in["shape"] == [1, 32, 32, 3] and t_in["scale"][0] > 0
    assert report["tensors"]["outputs"][0]["onnx_name"] == "output"
    for stage in ("export", "translate", "quantize", "int8_check"):
        assert report["stages"][stage]["seconds"] > 0
    exp = report["stages"]["export"]["check"]["outputs"]["output"]
    assert exp["cosine"] > 0.99999 and exp["max_abs_err"] < 1e-4
    tr = report["stages"]["translate"]["check"]["outputs"]["output"]
    assert tr["cosine"] > 0.9999
    q = report["stages"]["int8_check"]["outputs"]["output"]
    assert 0.9 < q["cosine"] <= 1.0 and q["max_abs_err"] > 0  # int8 is close, but not identical
    assert report["files"]["full-integer"]["verdict"] == "full-integer"
    assert report["files"]["float32"]["verdict"] == "float32"
    assert report["files"]["int8-float-io"]["verdict"] == "integer with float I/O"


def test_spec_round_trips_through_conversion_json(tiny_conversion):
    report, spec = load_conversion(tiny_conversion.out_dir)
    assert spec == TINY_SPEC
    assert PreprocessSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == TINY_SPEC


def test_output_files_are_named_for_what_they_are(tiny_conversion):
    names = sorted(p.name for p in tiny_conversion.out_dir.iterdir())
    assert names == ["conversion.json", "model.onnx", "model_float32.tflite", "model_int8.tflite",
                     "model_int8_float_io.tflite"]
    assert tiny_conversion.files["full-integer"].stat().st_size < tiny_conversion.files["float32"].stat().st_size


def test_uint8_io(tiny_conversion_uint8):
    info = describe(tiny_conversion_uint8.int8_path)
    assert tiny_conversion_uint8.int8_path.name == "model_int8_uint8io.tflite"
    assert info["verdict"] == "full-integer"
    assert info["inputs"][0]["dtype"] == "uint8" and info["outputs"][0]["dtype"] == "uint8"


def test_existing_output_dir_is_not_overwritten(tmp_path, photos):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(InputError, match="already exists.*--force"):
        convert(tiny(), out, spec=TINY_SPEC, data=photos)
    assert (out / "mine.txt").read_text() == "keep me"


def test_failed_conversion_leaves_nothing(tmp_path, photos):
    out = tmp_path / "out"
    # An impossible translation threshold makes the numeric check fail after real work was done.
    with pytest.raises(ParityError, match=r"\[translate\].*max abs error"):
        convert(tiny(), out, spec=TINY_SPEC, data=photos, translate_thresholds={"rel_max_err": 0.0})
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no hidden partial folder either


def test_force_replaces_only_after_success(tmp_path, photos):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no usable images"):  # fails: the old output stays
        convert(tiny(), out, spec=TINY_SPEC, data=empty, force=True)
    assert (out / "old.txt").exists()
    empty.rmdir()
    result = convert(tiny(), out, spec=TINY_SPEC, data=photos, num_samples=5, force=True)
    assert not (out / "old.txt").exists() and result.int8_path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_few_samples_warn_and_calibration_is_deterministic(tmp_path, photos):
    with pytest.warns(UserWarning, match="only 5 calibration samples"):
        a = convert(tiny(), tmp_path / "a", spec=TINY_SPEC, data=photos, num_samples=5, seed=3)
    b = convert(tiny(), tmp_path / "b", spec=TINY_SPEC, data=photos, num_samples=5, seed=3)
    assert a.report["calibration"]["hash"] == b.report["calibration"]["hash"]
    ta, tb = a.report["tensors"], b.report["tensors"]
    assert ta == tb  # same scales and zero points
    from tflite_int8 import Runner

    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    ra, rb = Runner(a.int8_path, TINY_SPEC)(x), Runner(b.int8_path, TINY_SPEC)(x)
    assert all(np.array_equal(ra[k], rb[k]) for k in ra)


def test_onnx_input_converts_too(tmp_path, tiny_conversion, photos):
    onnx_file = tiny_conversion.out_dir / "model.onnx"
    result = convert(onnx_file, tmp_path / "from_onnx", spec=TINY_SPEC, data=photos, num_samples=8)
    assert describe(result.int8_path)["verdict"] == "full-integer"
    assert result.report["source"]["kind"] == "onnx"


def test_onnx_spec_mismatch_names_shapes(tmp_path, tiny_conversion, photos):
    with pytest.raises(InputError, match=r"model input is \[1, 3, 32, 32\].*\[1, 3, 48, 48\]"):
        convert(tiny_conversion.out_dir / "model.onnx", tmp_path / "x", spec=PreprocessSpec(size=(48, 48)),
                data=photos)
    assert not (tmp_path / "x").exists()
