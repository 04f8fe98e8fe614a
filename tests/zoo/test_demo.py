"""The embedded default model end to end (slow: a real pretrained EfficientNet-Lite0)."""
from __future__ import annotations

import json

import pytest

from tflite_int8.zoo.demo import demo
from tflite_int8.runtime.describe import describe


@pytest.mark.slow
def test_demo_converts_efficientnet_lite0_to_full_integer(tmp_path):
    result = demo(tmp_path / "demo")
    conv, checked = result["conversion"], result["verification"]
    info = describe(conv.int8_path)
    assert info["verdict"] == "full-integer" and not info["float_ops"]
    assert info["inputs"][0]["dtype"] == "int8" and info["outputs"][0]["dtype"] == "int8"
    assert info["inputs"][0]["shape"] == [1, 224, 224, 3] and info["outputs"][0]["shape"] == [1, 1000]
    f32 = conv.files["float32"].stat().st_size
    assert conv.int8_path.stat().st_size <= 0.30 * f32
    report = json.loads((conv.out_dir / "conversion.json").read_text())
    assert report["stages"]["export"]["check"]["outputs"]["output"]["cosine"] > 0.99999
    assert report["stages"]["translate"]["check"]["outputs"]["output"]["cosine"] > 0.9999
    assert report["calibration"]["samples"] == 120
    rep = json.loads((conv.out_dir / "verify" / "report.json").read_text())
    assert rep["passed"] and checked.passed and rep["data"]["samples"] == 24
    assert [s["step"] for s in rep["stages"]] == ["pytorch", "onnxruntime", "tflite-float32", "tflite-int8"]
    # The figure is reported, and must at least be far above chance (1/1000) and the logits close.
    assert rep["classification"]["top1_agreement"] >= 0.6 and rep["outputs"]["output"]["cosine"] > 0.95
    assert rep["layers"] and (conv.out_dir / "verify" / "report.html").stat().st_size > 50_000
    # (p - 127) / 128 puts uint8 pixels exactly on the int8 input grid: the pixel path is an integer offset
    from tflite_int8 import Runner, load_conversion

    assert Runner(conv.int8_path, load_conversion(conv.out_dir)[1]).pixel_fast_path == "offset"
