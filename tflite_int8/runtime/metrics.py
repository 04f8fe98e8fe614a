"""Numeric comparison of two tensors (reference vs candidate)."""
from __future__ import annotations

import numpy as np


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Error metrics of ``candidate`` against ``reference`` (same shape).

    max_abs_err / mean_abs_err in float units, rel_max_err = max_abs / max|reference|,
    cosine similarity of the flattened tensors and SQNR in dB.
    """
    ref = np.asarray(reference, dtype=np.float64).ravel()
    got = np.asarray(candidate, dtype=np.float64).ravel()
    if ref.shape != got.shape:
        raise ValueError(f"cannot compare tensors of {np.shape(reference)} and {np.shape(candidate)}")
    diff = got - ref
    max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
    peak = float(np.max(np.abs(ref))) if ref.size else 0.0
    nr, ng = float(np.linalg.norm(ref)), float(np.linalg.norm(got))
    if nr == 0.0 and ng == 0.0:
        cosine = 1.0
    elif nr == 0.0 or ng == 0.0:
        cosine = 0.0
    else:
        cosine = float(np.dot(ref, got) / (nr * ng))
    noise = float(np.sum(diff * diff))
    sqnr = float("inf") if noise == 0.0 else float(10.0 * np.log10(max(float(np.sum(ref * ref)), 1e-300) / noise))
    return {
        "max_abs_err": max_abs,
        "mean_abs_err": float(np.mean(np.abs(diff))) if diff.size else 0.0,
        "rel_max_err": max_abs / peak if peak > 0 else max_abs,
        "cosine": cosine,
        "sqnr_db": sqnr,
    }


def step_agreement(diff_steps: np.ndarray) -> dict[str, float]:
    """Of a difference in output quantization steps: the fraction of values equal (< 0.5 step), within one
    step (< 1.5) of the reference, and the largest gap in steps."""
    a = np.abs(np.asarray(diff_steps, dtype=np.float64))
    return {"exact": float(np.mean(a < 0.5)) if a.size else 1.0,
            "within_1_step": float(np.mean(a < 1.5)) if a.size else 1.0,
            "max_steps": float(a.max()) if a.size else 0.0}


def worst(metrics: list[dict[str, float]]) -> dict[str, float]:
    """Combine per-sample metrics: worst case of each (max errors, min cosine/SQNR), mean of means."""
    if not metrics:
        return {}
    return {
        "max_abs_err": max(m["max_abs_err"] for m in metrics),
        "mean_abs_err": float(np.mean([m["mean_abs_err"] for m in metrics])),
        "rel_max_err": max(m["rel_max_err"] for m in metrics),
        "cosine": min(m["cosine"] for m in metrics),
        "sqnr_db": min(m["sqnr_db"] for m in metrics),
        "samples": len(metrics),
    }


def align_layout(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """``candidate`` transposed to ``reference``'s shape when TFLite moved channels last (NCHW -> NHWC)."""
    if candidate.shape == reference.shape:
        return candidate
    nd = candidate.ndim
    if nd >= 3 and reference.ndim == nd:
        # candidate is channels-last: (N, *spatial, C) -> (N, C, *spatial)
        perm = (0, nd - 1, *range(1, nd - 1))
        moved = candidate.transpose(perm)
        if moved.shape == reference.shape:
            return moved
    if np.squeeze(candidate).shape == np.squeeze(reference).shape:
        return candidate.reshape(reference.shape)
    raise ValueError(f"output shapes differ: reference {reference.shape}, candidate {candidate.shape}")
