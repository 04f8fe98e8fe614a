"""What decided an attempt's verdict: the task metric verify judged it by, and the outputs that make the task
undecided.

Every attempt is verified as ``verify`` would verify it (the same task, thresholds, blank class and mask
threshold), so a row passes only if its task metrics pass as well as the tensor metrics.  :func:`decided_by`
names the task metrics that were judged (those with a threshold), with their values: ``recovery.json``'s
``decided_by`` and the summary's line under each row.

Tensor metrics alone cannot judge a detector: on a YOLO output ``[1, 4+nc, N]`` the pixel coordinates dominate
the cosine, and the scores can round to zero (no box left) at a cosine of 0.99.  So with ``task="auto"`` an
output in a YOLO layout (:func:`~tflite_int8.convert.heads.detect_layout`) that verify would judge as ``raw``
makes the baseline a failed row naming ``--task detect`` (:func:`undecided`), and nothing else is tried.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ..convert.record import Conversion
from ..verify.undecided import undecided as undecided_outputs

# verify's task name (report["task"]) -> the summary keys that can fail it, each judged when its threshold is set
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("top1_agreement", "top5_agreement", "top1_agreement_confident", "accuracy_drop_points"),
    "detection": ("box_agreement", "map50_95_drop_points"),
    "ctc": ("sequence_match", "char_error_rate"),
    "segment": ("pixel_agreement", "miou"),
    "mask": ("mask_iou",),
}


def verdict(report: Mapping[str, Any], passed: bool, failures: Sequence[str], model: Path) -> dict[str, Any]:
    """An attempt's row as verify's report judged it: verdict, what decided it, task and tensor metrics, size."""
    outs, summary = report["outputs"], report.get(report.get("task", ""), {}) or {}
    return {"passed": passed, "file": str(model), "failures": list(failures), "task": report["task"],
            "decided_by": decided_by(report), "mean_cosine": min(o["cosine"] for o in outs.values()),
            "sqnr_db": min(o["sqnr_db"] for o in outs.values()),
            **{k: summary.get(k) for k in ("top1_agreement", "top5_agreement", "map50_95_int8", "box_agreement",
                                           "sequence_match", "pixel_agreement", "mask_iou")},
            "bytes": model.stat().st_size}


def decided_by(report: Mapping[str, Any]) -> str:
    """``task: metric value, ...`` for the task metrics judged; the tensor metrics when there are none."""
    task = report.get("task", "raw")
    summary, limits = report.get(task) or {}, report.get("thresholds") or {}
    judged = [f"{key} {summary[key]:.4g}" for key in TASK_METRICS.get(task, ())
              if limits.get(key) is not None and isinstance(summary.get(key), (int, float))]
    if judged:
        return f"{task}: {', '.join(judged)}"
    outs = list(report["outputs"].values())
    return (f"tensor metrics only (task {task}): cosine {min(o['cosine'] for o in outs):.4f}, "
            f"SQNR {min(o['sqnr_db'] for o in outs):.1f} dB")


def undecided(conversion: Conversion, task: str, judged_as: str) -> str | None:
    """Why an attempt cannot be judged (a YOLO-layout output judged ``raw`` under ``task="auto"``), else None:
    verify's own rule (:mod:`tflite_int8.verify.undecided`)."""
    return undecided_outputs(conversion.onnx_path, conversion.head.get("lint", []), task, judged_as)
