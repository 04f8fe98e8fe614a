"""Empirical bias correction (Nagel et al., "Data-Free Quantization", 2019, sec. 4.2) on an ONNX graph.

Rounding a convolution's weights to int8 shifts its output's mean: for output channel c,
``E[y_q - y]_c = sum_k (W_q - W)[c, k] * E[x_k]`` (``E[x]`` per input channel, measured on
calibration data).  Subtracting that from the bias removes the shift; the weights (what
the converter will quantize, per output channel, symmetric int8 [-127, 127]) are unchanged,
so the model stays full-integer.  Applied to every Conv/Gemm whose weight is a constant.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .onnx_layers import attribute, channel_mean, layer_inputs, weighted_layers


def per_channel_steps(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each output channel's weights (flattened) in units of its int8 step, and that step: max|w_c| / 127
    (1 for an all-zero channel), TFLite's per-channel symmetric scale."""
    flat = w.reshape(w.shape[0], -1)
    scale = np.abs(flat).max(1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    return flat / scale, scale


def fake_quant_per_channel(w: np.ndarray) -> np.ndarray:
    """TFLite's per-channel int8 weights: scale max|w_c| / 127, round half to even, clamp to [-127, 127]."""
    steps, scale = per_channel_steps(w)
    return (np.clip(np.rint(steps), -127, 127) * scale).reshape(w.shape).astype(np.float32)


def bias_correct(onnx_in: str | Path, onnx_out: str | Path, samples: Sequence[np.ndarray]) -> dict[str, Any]:
    """Write a bias-corrected copy of ``onnx_in``; returns how many layers changed and the largest shift."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_in))
    inits = {i.name: i for i in model.graph.initializer}
    layers = weighted_layers(model)
    sums: dict[str, np.ndarray] = {}
    for values in layer_inputs(onnx_in, [n.input[0] for n in layers], samples):
        for name, value in values.items():  # per input channel (NCHW), or per feature (Gemm)
            sums[name] = sums.get(name, 0) + channel_mean(value)
    changed, largest = 0, 0.0
    for n in layers:
        w = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
        if n.op_type == "Gemm":
            w2 = w if attribute(n, "transB", 0) else w.T  # (out, in)
        else:
            w2 = w
        mean_x = sums[n.input[0]] / len(samples)
        dw = (fake_quant_per_channel(w2) - w2).astype(np.float64)
        groups = attribute(n, "group", 1) if n.op_type == "Conv" else 1
        cout, cin_g = dw.shape[0], dw.shape[1]
        per_out = dw.reshape(cout, cin_g, -1).sum(axis=2)  # (out, in per group)
        group_of = np.arange(cout) // (cout // groups)
        x_in = mean_x.reshape(groups, cin_g)[group_of]  # (out, in per group)
        shift = (per_out * x_in).sum(axis=1)
        shift_bias(model, inits, n, -shift)
        changed += 1
        largest = max(largest, float(np.abs(shift).max()))
    onnx.save(model, str(onnx_out))
    return {"layers": changed, "largest_shift": largest, "samples": len(samples)}


def shift_bias(model: Any, inits: dict[str, Any], node: Any, delta: np.ndarray) -> None:
    """Add ``delta`` (one value per output channel) to a Conv/Gemm node's output through its bias, creating the
    bias if it has none (a Gemm's bias is scaled by its ``beta``; with ``beta`` 0 there is none to shift)."""
    from onnx import numpy_helper

    if node.op_type == "Gemm":
        beta = attribute(node, "beta", 1.0)
        if beta == 0:
            return
        delta = np.asarray(delta, np.float64) / beta
    if len(node.input) > 2 and node.input[2] in inits:
        b = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
        inits[node.input[2]].CopyFrom(numpy_helper.from_array((b + delta).astype(np.float32), node.input[2]))
        return
    name = f"{node.name or node.output[0]}__bias_correction"
    model.graph.initializer.append(numpy_helper.from_array(np.asarray(delta, np.float32), name))
    inits[name] = model.graph.initializer[-1]  # the graph's own copy, so later shifts reach it
    while len(node.input) < 3:
        node.input.append("")
    node.input[2] = name
