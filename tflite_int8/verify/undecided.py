"""Outputs tensor metrics cannot judge: a YOLO detector's head judged as ``raw``.

On a YOLO output ``[1, 4+nc, N]`` (or ``[1, N, 5+nc]``) the pixel coordinates dominate the cosine and the SQNR, and
the scores can round to zero (no box left) at a cosine of 0.99.  So when ``--task auto`` finds no task for such an
output whose channels the conversion's int8 lint found crushed by the shared scale, ``verify`` fails naming ``--task detect`` instead of passing it on tensor metrics, and ``recover`` stops
after its baseline for the same reason (:mod:`tflite_int8.recover.judging`).  ``--task raw`` says the user wants
tensor metrics only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ..convert.heads import detect_layout
from .tasks import onnx_outputs

LAYOUTS = {"v8": "[1, 4+classes, N]", "v5": "[1, N, 4+classes] or [1, N, 5+classes]"}


def undecided(onnx_path: Path | None, lint: Sequence[Mapping[str, Any]], task: str, judged_as: str) -> str | None:
    """Why the outputs of ``onnx_path`` cannot be judged (a YOLO-layout output judged ``raw`` under
    ``task="auto"``; ``lint``: the conversion's head lint findings), else None."""
    if task != "auto" or judged_as != "raw" or onnx_path is None or not Path(onnx_path).is_file():
        return None
    shapes = {n: list(o.shape) for n, o in onnx_outputs(onnx_path).items()}
    heads = [h for h in (detect_layout(n, shape) for n, shape in shapes.items()) if h]
    # evidence, not a shape alone: the conversion's lint found channels (scores) crushed by the shared int8 scale
    # (a sequence output [1, 50, 6] has the same shape rule and nothing crushed)
    linted = {f.get("output"): f for f in lint}
    heads = [h for h in heads if h.output in linted]
    if not heads:
        return None
    head = heads[0]
    found = linted[head.output]
    crushed = (f"; the int8 lint gives {len(found['channels'])} of its channels (scores?) about "
               f"{found['levels']:.2g} of 256 levels")
    return (f"output '{head.output}' {shapes[head.output]} has a YOLO detector's layout {LAYOUTS[head.layout]}"
            f"{crushed}: tensor metrics cannot judge it (pixel coordinates dominate them, the "
            f"scores can round to zero at a cosine of 0.99); give --task detect (head split, judged by box agreement "
            f"and mAP), or --task raw to judge it by tensor metrics")
