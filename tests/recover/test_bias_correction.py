"""Empirical bias correction: the mean output shift from int8 weight rounding is removed, weights untouched."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from tflite_int8.recover.bias_correction import bias_correct, fake_quant_per_channel


def _conv_model(path, w, b, group=1):
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, w.shape[1] * group, 8, 8])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, w.shape[0], 8, 8])
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1], group=group)
    graph = helper.make_graph([node], "g", [x], [y], [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))


def _run(path, xs, weights=None):
    model = onnx.load(str(path))
    if weights is not None:
        for i in model.graph.initializer:
            if i.name == "w":
                i.CopyFrom(numpy_helper.from_array(weights, "w"))
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {s.get_inputs()[0].name: x})[0] for x in xs])


def test_fake_quant_is_tflites_symmetric_per_channel_rule():
    w = np.array([[1.0, -0.5, 0.25], [0.0, 0.0, 0.0]], np.float32)
    q = fake_quant_per_channel(w)
    assert np.allclose(q[0], np.rint(w[0] / (1 / 127)) * (1 / 127)) and np.all(q[1] == 0)


def test_bias_correction_removes_the_mean_shift(tmp_path):
    rng = np.random.default_rng(0)
    for group in (1, 4):
        w = (rng.normal(size=(4, 4 // group, 3, 3)) * rng.uniform(0.01, 3, size=(4, 1, 1, 1))).astype(np.float32)
        b = rng.normal(size=4).astype(np.float32)
        src, dst = tmp_path / f"m{group}.onnx", tmp_path / f"c{group}.onnx"
        _conv_model(src, w, b, group)
        xs = [(rng.normal(size=(1, 4, 8, 8)) + 2.0).astype(np.float32) for _ in range(16)]  # inputs with a mean
        info = bias_correct(src, dst, xs)
        assert info["layers"] == 1 and info["largest_shift"] > 0
        float_out = _run(src, xs)
        wq = fake_quant_per_channel(w)
        before = np.abs((_run(src, xs, wq) - float_out)[:, :, 1:-1, 1:-1].mean(axis=(0, 2, 3))).max()
        after = np.abs((_run(dst, xs, wq) - float_out)[:, :, 1:-1, 1:-1].mean(axis=(0, 2, 3))).max()
        assert after < 0.2 * before  # interior pixels: padding aside, the shift is gone
        assert np.array_equal(numpy_helper.to_array(onnx.load(str(dst)).graph.initializer[0]), w)
