"""The tasks a model can be verified on: one table for the CLI's choices and help, convert and verify."""
from __future__ import annotations

from ..errors import InputError

TASKS: dict[str, str] = {
    "auto": "chosen from the outputs: detect for `convert --task detect` folders, classify for one (1, K) output, "
            "else raw",
    "classify": "top-1/top-5 agreement (and accuracy with labels) on a (1, classes) output",
    "raw": "tensor metrics only",
    "detect": "a YOLOv5/YOLOv8-layout detector: head split into boxes and scores, mAP and box agreement",
}


def check_task(task: str) -> str:
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; choose {', '.join(TASKS)}")
    return task
