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

from .onnx_probe import attribute, layer_inputs, weighted_layers


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
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    layers = weighted_layers(model)
    sums: dict[str, np.ndarray] = {}
    for values in layer_inputs(onnx_in, [n.input[0] for n in layers], samples):
        for name, value in values.items():
            axes = (0,) + tuple(range(2, value.ndim))  # per input channel (NCHW), or per feature (Gemm)
            sums[name] = sums.get(name, 0) + value.astype(np.float64).mean(axis=axes)
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
        if len(n.input) > 2 and n.input[2] in inits:
            b = numpy_helper.to_array(inits[n.input[2]]).astype(np.float64)
            inits[n.input[2]].CopyFrom(numpy_helper.from_array((b - shift).astype(np.float32), n.input[2]))
        else:
            name = f"{n.name or n.output[0]}__bias_correction"
            g.initializer.append(numpy_helper.from_array((-shift).astype(np.float32), name))
            while len(n.input) < 3:
                n.input.append("")
            n.input[2] = name
        changed += 1
        largest = max(largest, float(np.abs(shift).max()))
    onnx.save(model, str(onnx_out))
    return {"layers": changed, "largest_shift": largest, "samples": len(samples)}
