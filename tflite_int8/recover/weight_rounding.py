"""Data-aware weight rounding (GPTQ: Frantar et al., "OPTQ", 2023) on an ONNX graph, on TFLite's own int8 grid.

Rounding each weight to its nearest int8 step is optimal for the weight, not for the layer's output:
errors of neighbouring weights add up on correlated inputs.  For every Conv/Gemm this rounds the
weights of each output channel one input at a time and spreads each rounding error over the weights
not yet rounded, weighted by the inverse Hessian ``H = E[x x^T]`` of the layer's real inputs
(im2col patches for a convolution, one Hessian per group), which minimises ``||W x - Q x||^2``.

The result is written back as float weights that already sit on the grid the converter will use: per
output channel, symmetric, scale ``max|w_c| / 127``; the largest weight of each channel is put at
exactly +-127 steps (its rounding error spread over the others like any weight's), so the converter
computes the same scale and re-quantizes every weight to the same integer.  Weights that were exactly
zero stay zero (pruned models keep their sparsity).  The model stays full-integer.

Rounding still moves each layer's mean output a little, and the moves add up through the network.
Last, layer by layer in graph order, each bias is shifted so the layer's mean output on the samples
(with every earlier layer already rounded and corrected) equals the float model's: empirical bias
correction (Nagel et al., 2019) made sequential, one ONNX Runtime pass per layer.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..progress import Progress
from .bias_correction import per_channel_steps, shift_bias
from .onnx_layers import attribute, channel_mean, layer_inputs, weighted_layers

DAMP = 0.01  # fraction of the mean Hessian diagonal added to it (GPTQ's dampening)


def round_weights(onnx_in: str | Path, onnx_out: str | Path, samples: Sequence[np.ndarray],
                  progress: Progress | None = None) -> dict[str, Any]:
    """Write a copy of ``onnx_in`` whose Conv/Gemm weights are GPTQ-rounded on ``samples``; returns a summary."""
    import onnx
    import torch
    from onnx import numpy_helper

    if not samples:
        raise InputError("weight rounding needs at least one calibration sample")
    model = onnx.load(str(onnx_in))
    inits = {i.name: i for i in model.graph.initializer}
    layers = [n for n in weighted_layers(model) if _supported(n)]
    hessians: dict[str, torch.Tensor] = {}
    shapes = {n.output[0]: tuple(inits[n.input[1]].dims) for n in layers}  # read once, not per sample
    float_means: dict[str, np.ndarray] = {}
    bar = progress("weight rounding: layer inputs", len(samples)) if progress else None
    probe = sorted({n.input[0] for n in layers} | {n.output[0] for n in layers})
    with torch.no_grad():
        for values in layer_inputs(onnx_in, probe, samples):
            for n in layers:
                key = n.output[0]
                h = _hessian(n, torch.from_numpy(values[n.input[0]]).double(), shapes[key])
                hessians[key] = hessians[key] + h if key in hessians else h
                float_means[key] = float_means.get(key, 0) + channel_mean(values[key]) / len(samples)
            if bar:
                bar.update()
        if bar:
            bar.close()
        rows, moved = 0, 0
        for n in layers:
            w = numpy_helper.to_array(inits[n.input[1]]).astype(np.float64)
            transposed = n.op_type == "Gemm" and not attribute(n, "transB", 0)
            w2 = w.T if transposed else w
            groups = attribute(n, "group", 1) if n.op_type == "Conv" else 1
            q = _gptq(torch.from_numpy(w2.reshape(groups, w2.shape[0] // groups, -1).copy()), hessians[n.output[0]])
            q = q.reshape(w2.shape).numpy()
            rows += w2.shape[0]
            moved += int((np.rint(per_channel_steps(w2)[0]) != np.rint(per_channel_steps(q)[0])).sum())
            q = (q.T if transposed else q).astype(np.float32)
            inits[n.input[1]].CopyFrom(numpy_helper.from_array(q, n.input[1]))
    largest = _correct_biases(model, inits, layers, float_means, samples, progress)
    onnx.save(model, str(onnx_out))
    return {"layers": len(layers), "channels": rows, "weights_rounded_the_other_way": moved,
            "largest_bias_shift": largest, "samples": len(samples)}


def _correct_biases(model: Any, inits: dict[str, Any], layers: list[Any], float_means: dict[str, np.ndarray],
                    samples: Sequence[np.ndarray], progress: Progress | None) -> float:
    """Sequential empirical bias correction: layer by layer in graph order, shift the bias so the layer's
    mean output (per channel, rounded weights, every earlier layer already rounded and corrected) equals
    the float model's.  Returns the largest shift."""
    bar = progress("weight rounding: bias correction", len(layers)) if progress else None
    largest = 0.0
    for n in layers:
        key = n.output[0]
        now = sum(channel_mean(v[key]) for v in layer_inputs(model, [key], samples)) / len(samples)
        delta = float_means[key] - now
        shift_bias(model, inits, n, delta)
        largest = max(largest, float(np.abs(delta).max()))
        if bar:
            bar.update()
    if bar:
        bar.close()
    return largest


def _supported(node: Any) -> bool:
    if node.op_type == "Gemm":
        return attribute(node, "alpha", 1.0) == 1.0 and not attribute(node, "transA", 0)
    return attribute(node, "auto_pad", b"NOTSET") == b"NOTSET"


def _hessian(node: Any, x: Any, wshape: tuple[int, ...]) -> Any:
    """Sum of x x^T over one sample's positions: (groups, d, d) with d = inputs per output channel."""
    if node.op_type == "Gemm":
        x = x.reshape(-1, x.shape[-1])
        return (x.T @ x)[None]
    k = wshape[2:]
    if len(k) != 2:  # Conv1d: treat as 2-D with height 1
        x, k = x[:, :, None], (1, *k)
    pads = attribute(node, "pads", [0] * 2 * len(wshape[2:]))
    strides = attribute(node, "strides", [1] * len(wshape[2:]))
    dil = attribute(node, "dilations", [1] * len(wshape[2:]))
    if len(wshape) == 3:
        pads, strides, dil = [0, pads[0], 0, pads[1]], [1, strides[0]], [1, dil[0]]
    return patch_hessian(x, k, pads, strides, dil, attribute(node, "group", 1))


def patch_hessian(x: Any, kernel: Sequence[int], pads: Sequence[int], strides: Sequence[int],
                  dilations: Sequence[int], groups: int) -> Any:
    """Sum of p p^T over a batch's im2col patches p of a 2-D convolution's input ``x`` (N, C, H, W):
    (groups, d, d).  ``pads`` in ONNX order (top, left, bottom, right)."""
    import torch.nn.functional as F

    x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
    cols = F.unfold(x, tuple(kernel), dilation=tuple(dilations), stride=tuple(strides))  # (N, C*kh*kw, L)
    p = cols.permute(1, 0, 2).reshape(groups, -1, cols.shape[0] * cols.shape[2])
    return p @ p.transpose(1, 2)


def _gptq(w: Any, h: Any) -> Any:
    """w (groups, rows, d), h (groups, d, d) -> w rounded on each row's int8 grid (scale max|w_row| / 127).

    Each row's largest weight is set to exactly +-127 steps when its turn comes, so the converter derives
    the same scale, and its error is spread over the later weights like any other's."""
    import torch

    d = w.shape[2]
    h = h.clone()
    diag = torch.diagonal(h, dim1=1, dim2=2)
    diag[diag == 0] = 1.0  # inputs that are always zero: their weights do not matter
    h += DAMP * diag.mean(1)[:, None, None] * torch.eye(d, dtype=h.dtype)
    w = w.clone()
    scale = w.abs().amax(2) / 127.0  # (groups, rows)
    scale[scale == 0] = 1.0
    top = w.abs().argmax(2)
    top_value = torch.sign(torch.gather(w, 2, top[:, :, None]))[:, :, 0] * 127.0 * scale
    zero = w == 0
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    q = torch.zeros_like(w)
    for j in range(d):
        col = w[:, :, j]
        qj = torch.clamp(torch.round(col / scale), -127, 127) * scale
        qj = torch.where(top == j, top_value, qj)
        qj[zero[:, :, j]] = 0.0
        q[:, :, j] = qj
        err = (col - qj) / hinv[:, j, j][:, None]
        w[:, :, j:] -= err[:, :, None] * hinv[:, None, j, j:]
    return q
