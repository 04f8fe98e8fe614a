"""Numeric comparison of two tensors (reference vs candidate), per sample and over a whole data set.

Per-sample cosine means nothing on a sample whose reference output is ~0 everywhere (a mask with nothing in
it, a text detector on a photo without text): any rounding is then 100 % of the signal.  :func:`combine`
therefore judges the data set as a whole (SQNR and cosine of all samples together, the largest error as a
fraction of the output's range over the data set, in quantization steps when the step is known) and averages
per-sample cosine over the samples that have a signal, listing the ones it skipped.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

NEGLIGIBLE = 0.01  # a sample whose reference peak is below this fraction of the data set's peak has no signal
NEGLIGIBLE_STEPS = 8  # ... or below this many quantization steps (int8 shows it with a handful of levels)


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Error metrics of ``candidate`` against ``reference`` (same shape).

    max_abs_err / mean_abs_err in float units, rel_max_err = max_abs / max|reference|,
    cosine similarity of the flattened tensors and SQNR in dB; the sums :func:`combine` needs
    (``ref_energy``, ``cand_energy``, ``dot``, ``noise_energy``, ``peak``, ``count``).
    """
    ref = np.asarray(reference, dtype=np.float64).ravel()
    got = np.asarray(candidate, dtype=np.float64).ravel()
    if ref.shape != got.shape:
        raise ValueError(f"cannot compare tensors of {np.shape(reference)} and {np.shape(candidate)}")
    diff = got - ref
    max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
    peak = float(np.max(np.abs(ref))) if ref.size else 0.0
    sums = {"ref_energy": float(np.dot(ref, ref)), "cand_energy": float(np.dot(got, got)),
            "dot": float(np.dot(ref, got)), "noise_energy": float(np.dot(diff, diff)), "peak": peak,
            "count": int(ref.size), "abs_err_sum": float(np.sum(np.abs(diff)))}
    return {
        "max_abs_err": max_abs,
        "mean_abs_err": float(np.mean(np.abs(diff))) if diff.size else 0.0,
        "rel_max_err": max_abs / peak if peak > 0 else max_abs,
        "cosine": _cosine(sums["dot"], sums["ref_energy"], sums["cand_energy"]),
        "sqnr_db": _sqnr(sums["ref_energy"], sums["noise_energy"]),
        **sums,
    }


def step_agreement(diff_steps: np.ndarray) -> dict[str, float]:
    """Of a difference in output quantization steps: the fraction of values equal (< 0.5 step), within one
    step (< 1.5) of the reference, and the largest gap in steps."""
    a = np.abs(np.asarray(diff_steps, dtype=np.float64))
    return {"exact": float(np.mean(a < 0.5)) if a.size else 1.0,
            "within_1_step": float(np.mean(a < 1.5)) if a.size else 1.0,
            "max_steps": float(a.max()) if a.size else 0.0}


def combine(metrics: Sequence[dict[str, float]], names: Sequence[str] | None = None,
            step: float | None = None) -> dict:
    """Per-sample :func:`compare` results -> data-set metrics (see module doc).

    ``cosine`` / ``cosine_min``: mean / least per-sample cosine over samples with a signal (peak at least
    :data:`NEGLIGIBLE` of the data set's peak, and at least :data:`NEGLIGIBLE_STEPS` quantization ``step`` s when
    given);
    an output of one value per sample (a probability, a score) has no per-sample direction: its ``cosine`` is
    ``cosine_dataset``;
    ``cosine_dataset`` and ``sqnr_db``: all samples as one tensor; ``sqnr_db_min``: the least per-sample SQNR over
    samples with a signal; ``rel_max_err``: the largest error over the data set's peak; ``skipped_samples``:
    the samples without a signal.
    """
    if not metrics:
        return {}
    names = list(names) if names is not None else [f"#{i}" for i in range(len(metrics))]
    total = {k: sum(m[k] for m in metrics) for k in ("ref_energy", "cand_energy", "dot", "noise_energy",
                                                        "abs_err_sum", "count")}
    peak = max(m["peak"] for m in metrics)
    floor = max(NEGLIGIBLE * peak, NEGLIGIBLE_STEPS * (step or 0.0))
    single = total["count"] == len(metrics)  # one value per sample: its cosine is only its sign, so the data set's
    judged = list(range(len(metrics))) if single else [i for i, m in enumerate(metrics)
                                                       if m["peak"] >= floor and m["peak"] > 0]
    skipped = sorted(set(range(len(metrics))) - set(judged))
    cos_dataset = _cosine(total["dot"], total["ref_energy"], total["cand_energy"])
    cosines = [] if single else [metrics[i]["cosine"] for i in judged]
    max_abs = max(m["max_abs_err"] for m in metrics)
    out = {
        "cosine": float(np.mean(cosines)) if cosines else cos_dataset,
        "cosine_min": min(cosines) if cosines else cos_dataset,
        "cosine_dataset": cos_dataset,
        "sqnr_db": _sqnr(total["ref_energy"], total["noise_energy"]),
        "sqnr_db_min": min((metrics[i]["sqnr_db"] for i in judged), default=_sqnr(total["ref_energy"],
                                                                                     total["noise_energy"])),
        "max_abs_err": max_abs,
        "mean_abs_err": total["abs_err_sum"] / total["count"] if total["count"] else 0.0,
        "rel_max_err": max_abs / peak if peak > 0 else max_abs,
        "peak": peak,
        "samples": len(metrics),
        "samples_judged": len(judged),
        "skipped_samples": [{"sample": names[i], "peak": metrics[i]["peak"]} for i in skipped],
    }
    if single:
        out["one_value_per_sample"] = True
    if step:
        out["max_abs_err_steps"] = max_abs / step
        out["mean_abs_err_steps"] = out["mean_abs_err"] / step
    return out


def skipped_note(m: dict) -> str:
    """' (2 of 8 samples skipped for cosine: their output is ~0: a.jpg, b.jpg)' or ''."""
    skipped = m.get("skipped_samples") or []
    if not skipped:
        return ""
    total = m.get("skipped_samples_total", len(skipped))
    some = ", ".join(str(s["sample"]) for s in skipped[:3]) + (", ..." if total > 3 else "")
    return f" ({total} of {m['samples']} samples skipped for cosine, their reference output is ~0: {some})"


def _cosine(dot: float, a: float, b: float) -> float:
    if a == 0.0 and b == 0.0:
        return 1.0
    if a == 0.0 or b == 0.0:
        return 0.0
    return float(dot / np.sqrt(a * b))


def _sqnr(signal: float, noise: float) -> float:
    return float("inf") if noise == 0.0 else float(10.0 * np.log10(max(signal, 1e-300) / noise))


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
