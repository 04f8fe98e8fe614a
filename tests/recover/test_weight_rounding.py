"""GPTQ weight rounding: weights land on TFLite's own per-channel int8 grid, the layer's output error drops,
zeros stay zero, biases absorb the mean shift layer by layer, and the converter keeps the rounded weights."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from tests.models import TINY_SPEC
from tests.recover.test_bias_correction import _conv_model, _run
from tflite_int8 import convert
from tflite_int8.recover.bias_correction import fake_quant_per_channel
from tflite_int8.recover.weight_rounding import round_weights


def _weights(path):
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def test_rounding_beats_nearest_on_correlated_inputs_and_stays_on_the_grid(tmp_path):
    rng = np.random.default_rng(0)
    for group in (1, 4):
        w = (rng.normal(size=(4, 4 // group, 3, 3)) * rng.uniform(0.01, 3, size=(4, 1, 1, 1))).astype(np.float32)
        w[0, 0, 0, 0] = 0.0  # a pruned weight
        b = rng.normal(size=4).astype(np.float32)
        src, dst = tmp_path / f"m{group}.onnx", tmp_path / f"r{group}.onnx"
        _conv_model(src, w, b, group)
        # smooth images: neighbouring inputs correlate, as in real feature maps
        base = rng.normal(size=(24, 1, 4, 3, 3)).astype(np.float32)
        xs = [np.kron(x, np.ones((1, 1, 3, 3), np.float32))[:, :, :8, :8] + 0.05 * rng.normal(size=(1, 4, 8, 8)).astype(np.float32)
              for x in base]
        info = round_weights(src, dst, xs)
        q = _weights(dst)["w"]
        assert info["layers"] == 1 and info["weights_rounded_the_other_way"] > 0
        assert np.allclose(fake_quant_per_channel(q), q, rtol=1e-6, atol=0)  # already on the grid
        assert np.array_equal(np.abs(q).reshape(4, -1).max(1), np.abs(w).reshape(4, -1).max(1))  # same scales
        assert q[0, 0, 0, 0] == 0.0
        ref = _run(src, xs)
        nearest = np.square(_run(src, xs, fake_quant_per_channel(w)) - ref).mean()
        ours = np.square(_run(src, xs, q) - ref).mean()  # rounded weights, original bias
        assert ours < 0.7 * nearest, (ours, nearest)
        out = _run(dst, xs)  # rounded weights, corrected bias: no mean shift left, so less error still
        assert np.allclose(out.mean(axis=(0, 2, 3)), ref.mean(axis=(0, 2, 3)), rtol=0, atol=1e-5)
        assert info["largest_bias_shift"] > 0 and np.square(out - ref).mean() < ours


def test_the_converter_keeps_the_rounded_weights(tmp_path, tiny_conversion, photos):
    from ai_edge_litert.interpreter import Interpreter

    src = tiny_conversion.out_dir / "model.onnx"
    xs = [np.random.default_rng(i).normal(size=TINY_SPEC.input_shape()).astype(np.float32) for i in range(8)]
    info = round_weights(src, tmp_path / "rounded.onnx", xs)
    assert info["layers"] >= 2
    # layer by layer the biases absorb the mean shift, so the logits' mean over the samples is the float model's
    float_out, rounded_out = _run(src, xs), _run(tmp_path / "rounded.onnx", xs)
    assert np.allclose(rounded_out.mean(0), float_out.mean(0), rtol=0, atol=1e-6), (rounded_out.mean(0), float_out.mean(0))
    conv = convert(tmp_path / "rounded.onnx", tmp_path / "out", spec=TINY_SPEC, data=photos)
    onnx_w = {n: np.sort(v.ravel()) for n, v in _weights(tmp_path / "rounded.onnx").items() if v.ndim in (2, 4)}
    interp = Interpreter(model_path=str(conv.int8_path))
    found = 0
    for d in interp.get_tensor_details():
        qp = d["quantization_parameters"]
        if d["dtype"] != np.int8 or len(qp["scales"]) < 2:
            continue
        try:
            q = interp.get_tensor(d["index"]).astype(np.float64)
        except ValueError:
            continue
        axis = qp["quantized_dimension"]
        shape = [1] * q.ndim
        shape[axis] = -1
        deq = np.sort((q * qp["scales"].reshape(shape)).ravel())
        match = [n for n, v in onnx_w.items() if v.size == deq.size and np.allclose(v, deq, rtol=1e-5, atol=1e-7)]
        found += bool(match)
    assert found == info["layers"]  # every rounded layer reached the .tflite unchanged
