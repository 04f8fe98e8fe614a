"""Task metrics for outputs that are images: per-pixel classes (``segment``) and probability maps (``mask``).

Both judge the int8 model by what a user sees, against the float model's own answer: the class map (argmax over
the class axis) and the binary mask (probability above a threshold).  Counts are summed over the data set, so a
sample whose mask is empty in both models neither passes nor fails anything: it is listed as skipped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np


def _plane(x: np.ndarray) -> np.ndarray:
    """(1, C, H, W) -> (C, H, W); (1, H, W) -> (1, H, W)."""
    x = np.asarray(x)
    return x[0] if x.ndim == 4 else x if x.ndim == 3 and x.shape[0] != 1 else x.reshape((1,) + x.shape[-2:])


@dataclass(frozen=True)
class SegmentTask:
    """Per-pixel argmax of ``output`` (reference layout: classes on axis 1): agreement and mean IoU of the int8 class
    map against the float one."""

    output: str
    name: str = "segment"

    def record(self, reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> dict:
        ref, got = _plane(reference[self.output]), _plane(candidate[self.output])
        f, q = ref.argmax(axis=0).ravel(), got.argmax(axis=0).ravel()
        k = ref.shape[0]
        inter = np.bincount(f[f == q], minlength=k)
        union = np.bincount(f, minlength=k) + np.bincount(q, minlength=k) - inter
        return {"agree": int(np.sum(f == q)), "pixels": int(f.size), "inter": inter.tolist(), "union": union.tolist()}

    def summarize(self, names: Sequence[str], records: Sequence[dict], labels: Sequence[Any]) -> dict:
        if not records:
            return {}
        inter = np.sum([r["inter"] for r in records], axis=0)
        union = np.sum([r["union"] for r in records], axis=0)
        present = union > 0
        iou = np.where(present, inter / np.maximum(union, 1), np.nan)
        agreement = [r["agree"] / r["pixels"] for r in records]
        order = np.argsort(agreement)[:5]
        return {"output": self.output, "samples": len(records),
                "pixel_agreement": float(sum(r["agree"] for r in records) / sum(r["pixels"] for r in records)),
                "miou": float(np.nanmean(iou)) if present.any() else 1.0,
                "classes_present": int(present.sum()),
                "class_iou": {int(c): float(iou[c]) for c in np.flatnonzero(present)},
                "worst_samples": [{"sample": names[i], "pixel_agreement": agreement[i]} for i in order]}

    def failures(self, summary: dict, thresholds: Mapping[str, float]) -> list[str]:
        fails = []
        worst = ", ".join(f"{w['sample']} ({w['pixel_agreement']:.3f})" for w in summary.get("worst_samples", [])[:3])
        for key, text in (("pixel_agreement", "per-pixel class agreement"), ("miou", "mean IoU of the class maps")):
            need = thresholds.get(key)
            if need is not None and key in summary and summary[key] < need:
                fails.append(f"segment: {text} {summary[key]:.4f} < {need} on output '{self.output}' (int8 vs float "
                             f"argmax; worst samples: {worst})")
        return fails


@dataclass(frozen=True)
class MaskTask:
    """Probability maps (``outputs``, one channel each) -> binary masks at ``threshold``: IoU of the int8 mask
    against the float one, over the data set and per sample."""

    outputs: tuple[str, ...]
    threshold: float = 0.5
    name: str = "mask"

    def record(self, reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> dict:
        out = {}
        for n in self.outputs:
            f = np.asarray(reference[n]) > self.threshold
            q = np.asarray(candidate[n]) > self.threshold
            out[n] = {"inter": int(np.sum(f & q)), "union": int(np.sum(f | q)), "float": int(f.sum()),
                      "int8": int(q.sum())}
        return out

    def summarize(self, names: Sequence[str], records: Sequence[dict], labels: Sequence[Any]) -> dict:
        if not records:
            return {}
        per_output = {}
        for n in self.outputs:
            rs = [r[n] for r in records]
            judged = [i for i, r in enumerate(rs) if r["union"] > 0]
            ious = [rs[i]["inter"] / rs[i]["union"] for i in judged]
            union = sum(r["union"] for r in rs)
            worst = sorted(range(len(judged)), key=lambda j: ious[j])[:5]
            per_output[n] = {
                "mask_iou": sum(r["inter"] for r in rs) / union if union else 1.0,
                "mean_sample_iou": float(np.mean(ious)) if ious else 1.0,
                "samples_judged": len(judged),
                "skipped_samples": [names[i] for i, r in enumerate(rs) if r["union"] == 0],
                "worst_samples": [{"sample": names[judged[j]], "iou": ious[j]} for j in worst],
            }
        main = min(per_output, key=lambda n: per_output[n]["mask_iou"])
        return {"outputs": per_output, "threshold": self.threshold, "samples": len(records),
                "mask_iou": per_output[main]["mask_iou"], "worst_output": main}

    def failures(self, summary: dict, thresholds: Mapping[str, float]) -> list[str]:
        need = thresholds.get("mask_iou")
        fails = []
        for n, m in summary.get("outputs", {}).items():
            if need is not None and m["mask_iou"] < need:
                worst = ", ".join(f"{w['sample']} ({w['iou']:.3f})" for w in m["worst_samples"][:3])
                skipped = f"; {len(m['skipped_samples'])} sample(s) with no mask in either model not judged" \
                    if m["skipped_samples"] else ""
                fails.append(f"mask: IoU of the int8 vs float masks (> {summary['threshold']}) {m['mask_iou']:.4f} "
                             f"< {need} on output '{n}' over {m['samples_judged']} samples (worst: {worst}){skipped}")
        if need is not None and summary.get("outputs") and \
                not any(m["samples_judged"] for m in summary["outputs"].values()):
            fails.append(f"mask: no verification sample gives any mask above {summary['threshold']} in either model, "
                         f"so nothing was judged; verify on data with objects (or set --mask-threshold)")
        return fails
