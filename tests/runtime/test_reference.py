"""A QDQ model's reference is its own float fake-quant arithmetic, never ONNX Runtime's integer kernels.

With its default graph optimizations ONNX Runtime fuses QuantizeLinear/DequantizeLinear around a Conv into
QLinearConv (integer accumulation, a float32 requantization multiplier, on AVX2 ``vpmaddubsw`` whose int16 pair
sums saturate); :func:`simulation_session` turns every optimization off, so each node runs as the ONNX operator it
is: quantize -> round half to even -> clamp -> dequantize in float, the Conv in float.
"""
from __future__ import annotations

import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tflite_int8.runtime.reference import SIMULATION, ort_session, run_simulation, simulation_session

A_S, W_S, Y_S = 2.0 ** -6, np.array([2.0 ** -10, 2.0 ** -15]), 14 * 2.0 ** -16
# output channel 0: 7 * q * A_S * W_S[0] / Y_S = q / 2, an exact rounding tie for every odd q (float fake-quant
# rounds it half to even; an integer kernel multiplies the int32 sum by float32(1/14) and lands beside the tie);
# output channel 1: 127 * q + 127 * q, an int16 pair sum past 32767 for q >= 129 (AVX2's u8s8 saturation)
W_Q = np.array([[7, 0], [127, 127]], np.int8).reshape(2, 2, 1, 1)


def _conv_qdq() -> onnx.ModelProto:
    """x (float) -> uint8 fake-quant -> Conv 1x1 (int8 per-channel weights behind DequantizeLinear) -> uint8
    fake-quant -> y; ``yq``, the quantized output, is a graph output too."""
    inits = {"a_s": np.array(A_S, np.float32), "a_z": np.array(0, np.uint8), "w_q": W_Q,
             "w_s": W_S.astype(np.float32), "w_z": np.zeros(2, np.int8), "b": np.zeros(2, np.float32),
             "y_s": np.array(Y_S, np.float32), "y_z": np.array(0, np.uint8)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "a_s", "a_z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "a_s", "a_z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], axis=0),
             helper.make_node("Conv", ["xd", "w", "b"], ["c"]),
             helper.make_node("QuantizeLinear", ["c", "y_s", "y_z"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "y_s", "y_z"], ["y"])]
    graph = helper.make_graph(nodes, "conv_qdq",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("yq", TensorProto.UINT8, None)],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _input() -> np.ndarray:
    """Every uint8 level once per channel (0..255 over the 16 x 16 positions), slightly off the grid."""
    q = np.arange(256, dtype=np.float64).reshape(16, 16)
    return (np.stack([q + 0.2, q - 0.2]) * A_S).astype(np.float32)[None]


def _numpy_fake_quant(x: np.ndarray) -> np.ndarray:
    """The same graph written out in numpy (float64): the quantized output."""
    xq = np.clip(np.rint(x.astype(np.float64) / A_S), 0, 255)  # np.rint: round half to even
    w = W_Q[:, :, 0, 0].astype(np.float64) * W_S[:, None]
    c = np.einsum("oc,nchw->nohw", w, xq * A_S)
    return np.clip(np.rint(c / Y_S), 0, 255).astype(np.uint8)


def test_simulation_runs_every_node_as_itself():
    """ORT 1.23's default optimizations fuse the QDQ Conv into QLinearConv; the simulation keeps every node."""
    import onnxruntime as ort

    seen = {}
    for name, level in (("default", None), ("simulation", ort.GraphOptimizationLevel.ORT_DISABLE_ALL)):
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if level is not None:
            opts.graph_optimization_level = level
        with tempfile.TemporaryDirectory() as tmp:
            opts.optimized_model_filepath = f"{tmp}/opt.onnx"
            ort.InferenceSession(_conv_qdq().SerializeToString(), opts, providers=["CPUExecutionProvider"])
            seen[name] = [n.op_type for n in onnx.load(f"{tmp}/opt.onnx").graph.node]
    assert "QLinearConv" in seen["default"] and "Conv" not in seen["default"], seen
    assert seen["simulation"] == [n.op_type for n in _conv_qdq().graph.node]
    assert simulation_session(_conv_qdq()).get_session_options().graph_optimization_level == \
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert SIMULATION == "float fake-quant (ONNX Runtime, graph optimizations off)"


def test_simulation_is_the_numpy_fake_quant_and_integer_kernels_are_not():
    x = _input()
    want = _numpy_fake_quant(x)
    y, yq = run_simulation(_conv_qdq(), [x])[0]
    np.testing.assert_array_equal(yq, want)  # bit for bit on the quantized values
    np.testing.assert_array_equal(y, want.astype(np.float32) * np.float32(Y_S))
    odd_q = want[0, 0].ravel()[1::2]  # q / 2 for q = 1, 3, ..., 255: every one a tie, rounded to the even neighbour
    assert (odd_q % 2 == 0).all() and odd_q.max() == 128
    fused = ort_session(_conv_qdq()).run(None, {"x": x})[1]  # ORT's default: QLinearConv
    ties = fused[0, 0] != want[0, 0]
    # measured with onnxruntime 1.23 on an AVX2 host: 39 of the 128 ties in channel 0 rounded the other way
    # (float32 arithmetic, the same on any x86 CPU), and 126 of 256 values in channel 1 saturated, up to 72 steps
    # (AVX2 only)
    assert ties.any() and (np.abs(fused[0, 0].astype(int) - want[0, 0]) <= 1).all(), int(ties.sum())
    assert (want[0, 1] > 0).any()
