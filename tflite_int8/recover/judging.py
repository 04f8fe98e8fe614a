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

from ..convert.heads import detect_layout
from ..convert.record import Conversion
from ..verify.tasks import onnx_outputs

# verify's task name (report["task"]) -> the summary keys that can fail it, each judged when its threshold is set
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("top1_agreement", "top5_agreement", "top1_agreement_confident", "accuracy_drop_points"),
    "detection": ("box_agreement", "map50_95_drop_points"),
    "ctc": ("sequence_match", "char_error_rate"),
    "segment": ("pixel_agreement", "miou"),
    "mask": ("mask_iou",),
}
LAYOUTS = {"v8": "[1, 4+classes, N]", "v5": "[1, N, 4+classes] or [1, N, 5+classes]"}


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
    """Why an attempt cannot be judged (a YOLO-layout output judged ``raw`` under ``task="auto"``), else None."""
    if task != "auto" or judged_as != "raw" or not conversion.onnx_path.is_file():
        return None
    shapes = {n: list(o.shape) for n, o in onnx_outputs(conversion.onnx_path).items()}
    heads = [h for h in (detect_layout(n, shape) for n, shape in shapes.items()) if h]
    if not heads:
        return None
    head = heads[0]
    lint = next((f for f in conversion.head.get("lint", []) if f.get("output") == head.output), None)
    crushed = (f"; the int8 lint gives {len(lint['channels'])} of its channels (scores?) about {lint['levels']:.2g} "
               f"of 256 levels" if lint else "")
    return (f"output '{head.output}' {shapes[head.output]} has a YOLO detector's layout {LAYOUTS[head.layout]}"
            f"{crushed}: tensor metrics cannot judge it (pixel coordinates dominate them, the "
            f"scores can round to zero at a cosine of 0.99); give --task detect (head split, judged by box agreement "
            f"and mAP), or --task raw to judge it by tensor metrics")
