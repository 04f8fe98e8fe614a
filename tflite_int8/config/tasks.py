"""The tasks a model can be verified on: one table for the CLI's choices and help, convert and verify."""
from __future__ import annotations

from ..errors import InputError

TASKS: dict[str, str] = {
    "auto": "the conversion's --task, else chosen from the outputs when they leave no doubt: classify for one (1, K) "
            "output, ctc for one (1, T, C) softmax output, segment for one (1, K, H, W) output at the input size, "
            "mask for (1, 1, H, W) sigmoid outputs; else raw",
    "classify": "top-1/top-5 agreement (and accuracy with labels) on a (1, classes) output",
    "raw": "tensor metrics only",
    "detect": "a YOLOv5/YOLOv8-layout detector: head split into boxes and scores, mAP and box agreement",
    "segment": "per-pixel classes (1, K, H, W): argmax agreement and mean IoU of the int8 vs float class maps",
    "ctc": "a CTC text recognizer (1, T, classes): greedy-decoded text, exact match per line and character error "
           "rate, int8 vs float (--blank: the blank class, default 0)",
    "mask": "probability maps (1, 1, H, W): binary masks at --mask-threshold (0.5), IoU int8 vs float",
}


def check_task(task: str) -> str:
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; choose {', '.join(TASKS)}")
    return task


# convert --decode (with --task detect): where the grid/anchor decode runs
DECODES: dict[str, str] = {
    "model": "in the int8 model (default)",
    "host": "on the host (decode.onnx; the int8 model outputs the split head convolutions): more accurate, as int8 "
            "sigmoid and box tensors coarsen decoded boxes (reference detector: 0.7 vs 3.2 mAP50-95 points lost)",
}


def check_decode(decode: str) -> str:
    if decode not in DECODES:
        raise InputError(f"unknown decode {decode!r}; choose {', '.join(DECODES)}")
    return decode
