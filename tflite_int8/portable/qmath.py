"""TFLite's QUANTIZE and DEQUANTIZE arithmetic on numpy arrays.  numpy only: the ARM64 runner carries this file.

QUANTIZE (float -> int) is not one rule across TFLite's kernels.  The optimized
kernels and XNNPACK (what LiteRT and phones run by default) compute
``rint(x * (1 / scale)) + zero_point`` in float32 (ties to even, multiply by the
float32 inverse); the reference kernels compute ``round(x / scale)`` (ties away
from zero).  DEQUANTIZE is ``(q - zero_point) * scale`` in float32.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "int32": (-2**31, 2**31 - 1)}


def _broadcast(values: Sequence[float], axis: int, ndim: int, dtype: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype)
    if arr.size == 1:
        return arr.reshape(())
    shape = [1] * ndim
    shape[axis] = arr.size
    return arr.reshape(shape)


def quantize(x: np.ndarray, scales: Sequence[float], zero_points: Sequence[int], dtype: str, *, axis: int = 0,
             rounding: str = "xnnpack", in_range: bool = False) -> np.ndarray:
    """float -> int as TFLite's QUANTIZE (see the module docstring); ``axis`` for per-axis parameters.

    ``in_range=True`` promises every value lies within the type's float range (per-tensor): the clamp,
    numpy's slowest step here, is then skipped.
    """
    lo, hi = INT_RANGES[dtype]
    xf = np.asarray(x, dtype=np.float32)
    scale = _broadcast(scales, axis, xf.ndim, np.float32)
    if rounding == "xnnpack" and in_range and len(scales) == 1:
        # rint(x / s) lies in [lo - zp, hi - zp]: cast first, add the zero point in the integer type.
        q = np.multiply(xf, np.float32(1.0) / scale)
        np.rint(q, out=q)
        out = q.astype(dtype)
        out += np.array(zero_points[0], dtype=dtype)
        return out
    zp = _broadcast(zero_points, axis, xf.ndim, np.float32)
    if rounding == "xnnpack":
        q = np.multiply(xf, np.float32(1.0) / scale)  # in-place from here: this is the hot path
        np.rint(q, out=q)
    elif rounding == "reference":
        v = xf / scale
        q = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))
    else:
        raise ValueError(f"rounding must be 'xnnpack' or 'reference', not {rounding!r}")
    np.add(q, zp, out=q)
    np.clip(q, lo, hi, out=q)
    return q.astype(dtype)


def dequantize(q: np.ndarray, scales: Sequence[float], zero_points: Sequence[int], *, axis: int = 0) -> np.ndarray:
    """int -> float as TFLite's DEQUANTIZE: (q - zero_point) * scale in float32."""
    qa = np.asarray(q)
    scale = _broadcast(scales, axis, qa.ndim, np.float32)
    zp = _broadcast(zero_points, axis, qa.ndim, np.int32)
    return ((qa.astype(np.int32) - zp).astype(np.float32) * scale).astype(np.float32)
