"""A quantization-aware model's weight grids written into the converter's int8 weight tensors.

The converter quantizes each weight per channel with ``max|w| / 127``; the QAT model's grid is its own.
:func:`impose_weights` matches every int8 weight tensor of the quantized model to the QAT weight whose grid
it holds (by value, through any transpose the translation made) and rewrites it with the QAT integers and
scales, channel by channel where the grid fits TFLite's (zero point 0, steps in [-127, 127]; a -128 step
becomes -127), then re-quantizes the bias to ``input_scale * weight_scale``.  What cannot be held is said
per tensor (see :mod:`.qat_params`, whose converter hook calls this after ``mlir_quantize``).
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .qdq import QWeight

WEIGHT_OPS = {"CONV_2D": (0, 1, 2), "DEPTHWISE_CONV_2D": (0, 1, 2), "FULLY_CONNECTED": (0, 1, 2),
              "TRANSPOSE_CONV": (2, 1, 3)}  # op -> (input, weight, bias) positions
INT8, INT32 = 9, 2  # TFLite TensorType
OFF_GRID = "weight grids that are not symmetric int8 (zero point 0, -127..127, per output channel)"


def impose_weights(model: Any, plan: Any) -> list[dict[str, Any]]:
    graph = model.subgraphs[0]
    rows = []
    for op in graph.operators:
        slots = WEIGHT_OPS.get(op_name(model, op))
        if slots is None or len(op.inputs) <= slots[1] or op.inputs[slots[1]] < 0:
            continue
        w_t = graph.tensors[op.inputs[slots[1]]]
        if w_t.type != INT8 or w_t.quantization is None or w_t.quantization.scale is None:  
            continue
        ints = _buffer(model, w_t, np.int8)
        scales = np.asarray(w_t.quantization.scale, np.float64)
        axis = int(w_t.quantization.quantizedDimension) if len(scales) > 1 else None
        deq = ints * (_along(scales, axis, ints.ndim) if axis is not None else scales[0])
        found = _match_weight(deq, scales, axis, plan.qdq.weights)
        row: dict[str, Any] = {"tflite": tensor_name(w_t), "op": op_name(model, op)}
        if found is None:
            row["status"] = "no QAT grid found: quantized by the converter (max|w|/127 per channel)"
            rows.append(row)
            continue
        qw, perm = found
        row["onnx"] = qw.tensor
        status = _rewrite_weight(model, op, slots, w_t, qw, perm, axis, scales)
        row["status"] = status
        if status != "exact":
            plan.adjustments.append(f"weight '{qw.tensor}' ({row['op']} '{tensor_name(w_t)}'): {status}")
            if OFF_GRID not in plan.off_scheme:
                plan.off_scheme.append(OFF_GRID)
        rows.append(row)
    matched = {r.get("onnx") for r in rows}
    for name in plan.qdq.weights:
        if name not in matched and plan.qdq.weights[name].dtype != "int32":
            plan.adjustments.append(f"weight '{name}': no int8 weight tensor of the TFLite model holds its grid "
                                    f"(folded with another constant by the translation?): quantized by the converter")
    return rows


def _match_weight(deq: np.ndarray, scales: np.ndarray, axis: int | None,
                  weights: dict[str, QWeight]) -> tuple[QWeight, tuple[int, ...]] | None:
    """The QAT weight whose grid values the converter's int8 tensor holds (within half its step)."""
    half = 0.5001 * (_along(scales, axis, deq.ndim) if axis is not None else scales[0])
    for qw in weights.values():
        if qw.dtype == "int32" or qw.q.size != deq.size:
            continue
        grid = qw.grid
        for perm in itertools.permutations(range(grid.ndim)):
            moved = grid.transpose(perm)
            if moved.shape != deq.shape:
                continue
            if np.all(np.abs(moved - deq) <= half + 1e-7 * np.abs(moved)):
                return qw, perm
    return None


def _rewrite_weight(model: Any, op: Any, slots: tuple[int, int, int], w_t: Any, qw: QWeight,
                    perm: tuple[int, ...], axis: int | None, old_scales: np.ndarray) -> str:
    """Write the QAT integers and scales into the converter's weight tensor, channel by channel where the
    grid fits TFLite's (zero point 0, steps within [-127, 127]); other channels keep the converter's."""
    q_axis = None if qw.axis is None else perm.index(qw.axis)
    if qw.axis is not None and q_axis != axis:
        return (f"per-channel grid along ONNX axis {qw.axis} is not TFLite's channel axis: the converter "
                f"re-quantized it per output channel")
    n = len(old_scales) if axis is not None else 1
    steps = qw.steps.transpose(perm)  # integers relative to the zero point
    scales = np.broadcast_to(np.asarray(qw.scale, np.float32).reshape(-1), (n,)).copy()
    old_ints = _buffer(model, w_t, np.int8)
    per_channel = [np.moveaxis(a, axis, 0) if axis is not None else a[None] for a in (steps, old_ints)]
    new_scales = np.asarray(old_scales, np.float32).copy()
    ints = per_channel[1].copy()
    low, kept = 0, []
    for c in range(n):
        r = per_channel[0][c]
        if r.min() < -128 or r.max() > 127:
            kept.append(c)  # not an int8 symmetric grid (e.g. a non-zero zero point): the converter's stays
            continue
        low += int(np.count_nonzero(r < -127))
        ints[c] = np.clip(r, -127, 127)
        new_scales[c] = scales[c]
    values = np.moveaxis(ints, 0, axis) if axis is not None else ints[0]
    _set_buffer(model, w_t, values.astype(np.int8))
    w_t.quantization.scale = new_scales
    w_t.quantization.zeroPoint = np.zeros(len(new_scales), np.int64)
    _requantize_bias(model, op, slots, new_scales)
    notes = []
    if kept:
        zps = np.broadcast_to(np.asarray(qw.zero_point).reshape(-1), (n,))
        notes.append(f"{len(kept)} of {n} channel(s) ({', '.join(map(str, kept[:5]))}) are not on a symmetric int8 "
                     f"grid (zero point {', '.join(str(int(zps[c])) for c in kept[:5])}; TFLite int8 weights have "
                     f"zero point 0): quantized by the converter (max|w|/127)")
    if low:
        notes.append(f"{low} value(s) at -128 steps moved to -127 (TFLite int8 weights are symmetric, [-127, 127])")
    return "; ".join(notes) or "exact"  # a per-tensor scale repeated for each channel is the same grid: exact


def _requantize_bias(model: Any, op: Any, slots: tuple[int, int, int], w_scales: np.ndarray) -> None:
    graph = model.subgraphs[0]
    if len(op.inputs) <= slots[2] or op.inputs[slots[2]] < 0:
        return
    b_t = graph.tensors[op.inputs[slots[2]]]
    x_t = graph.tensors[op.inputs[slots[0]]]
    if b_t.type != INT32 or b_t.quantization is None or x_t.quantization is None:  
        return
    old = np.asarray(b_t.quantization.scale, np.float64)
    values = _buffer(model, b_t, np.int32).astype(np.float64) * (old if len(old) > 1 else old[0])
    new = (np.float64(x_t.quantization.scale[0]) * w_scales.astype(np.float64)).astype(np.float32)
    ints = np.clip(np.round(values / new.astype(np.float64)), -2**31, 2**31 - 1).astype(np.int32)
    _set_buffer(model, b_t, ints)
    b_t.quantization.scale = new
    b_t.quantization.zeroPoint = np.zeros(len(new), np.int64)


def _buffer(model: Any, t: Any, dtype: Any) -> np.ndarray:
    return np.frombuffer(bytes(model.buffers[t.buffer].data), dtype).reshape(tuple(t.shape)).copy()


def _set_buffer(model: Any, t: Any, values: np.ndarray) -> None:
    model.buffers[t.buffer].data = np.frombuffer(np.ascontiguousarray(values).tobytes(), np.uint8)


def _along(v: np.ndarray, axis: int, rank: int) -> np.ndarray:
    shape = [1] * rank
    shape[axis] = -1
    return np.asarray(v).reshape(shape)


def tensor_name(t: Any) -> str:
    return t.name.decode() if isinstance(t.name, bytes) else str(t.name)


def op_name(model: Any, op: Any) -> str:
    """The builtin operator name (``CONV_2D``) of a flatbuffer operator."""
    from tensorflow.lite.python import schema_py_generated as schema

    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(builtin, str(builtin))
