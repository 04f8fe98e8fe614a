"""Detector heads: find outputs that mix quantities of very different ranges, and split them apart.

A YOLO output concatenates box coordinates (pixels, 0..640) with objectness and class
scores (0..1) in one tensor; full-integer quantization gives that tensor one int8
scale, so the scores get a handful of levels or round to zero.  :func:`lint`
measures each output's channels on calibration data and says what the shared scale
costs; :func:`.head_split.split_head` rewrites the ONNX graph so boxes (normalised to 0..1) and
scores are separate outputs, each with its own scale, and so no tensor on the way to
them mixes the two: the slice is pushed back through Concat, Split, Slice, Reshape,
Transpose and element-wise ops to where the quantities are computed, and the head
convolutions are split by output rows so box and score logits get scales of their own.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConversionError, InputError
from .head_split import split_head
from .record import read_conversion

MIXED_SPAN = 0.05  # a channel group spanning < 5 % of its output's range gets < 13 of 256 int8 levels


@dataclass(frozen=True)
class HeadLayout:
    """Where a detector output keeps its channels: ``v5`` = [1, N, 5+nc], ``v8`` = [1, 4+nc, N]."""

    output: str
    layout: str
    channels: int
    anchors: int

    @property
    def axis(self) -> int:
        return 2 if self.layout == "v5" else 1

    @property
    def objectness(self) -> bool:
        return self.layout == "v5"

    @property
    def num_classes(self) -> int:
        return self.channels - (5 if self.objectness else 4)


def detect_layout(name: str, shape: Sequence[int]) -> HeadLayout | None:
    """YOLOv5 [1, N, 5+nc] or YOLOv8 [1, 4+nc, N] (N much larger than the channels), else None."""
    if len(shape) != 3 or shape[0] != 1 or min(shape[1:]) < 5:
        return None
    a, b = int(shape[1]), int(shape[2])
    if a >= 4 * b:
        return HeadLayout(name, "v5", b, a)
    if b >= 4 * a:
        return HeadLayout(name, "v8", a, b)
    return None


def lint(outputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Channel groups that a shared int8 scale would crush, per output (batch-1 outputs stacked on axis 0).

    For a [1, N, C] or [1, C, N] output, the channel axis is the short one. The int8 range covers the
    whole output's [min, max] (and 0); a channel spanning a few percent of it gets a few levels.
    """
    findings = []
    for name, y in outputs.items():
        head = detect_layout(name, (1, *y.shape[1:]))
        if head is None:
            continue
        v = np.moveaxis(y.reshape(-1, *y.shape[-2:]), head.axis, -1).reshape(-1, head.channels)
        lo, hi = min(0.0, float(v.min())), max(0.0, float(v.max()))
        full = hi - lo
        if full <= 0:
            continue
        span = (v.max(0) - v.min(0)) / full
        low = np.flatnonzero(span < MIXED_SPAN)
        if len(low) == 0 or span.max() < 0.5:
            continue
        scale = full / 255.0
        findings.append({
            "output": name, "layout": head.layout, "channel_axis": head.axis, "channels": [int(c) for c in low],
            "span_percent": round(float(100 * span[low].max()), 3),
            "levels": round(float(span[low].max() * 255), 2), "output_range": [lo, hi],
            "int8_step": scale, "message": (
                f"output '{name}': channels {_ranges(low)} (scores?) span {100 * span[low].max():.2g} % of this "
                f"output's int8 range [{lo:.4g}, {hi:.4g}] (step {scale:.4g}): about {span[low].max() * 255:.1f} "
                f"of 256 levels, so they round to a few values or to zero; split the head: convert --task detect "
                f"(without --no-head-fix)")})
    return findings


def carry(onnx_path: Any, output_names: list[str], outputs: dict[str, np.ndarray], head_from: Any
          ) -> dict[str, Any]:
    """The head section of an ONNX file that already is the head-split ``model.onnx`` of the conversion in
    ``head_from`` (or a copy with changed weights: recover's later attempts): that conversion's head description,
    not a second split (its ``scores`` output could pass for a head of its own).  Host decode: its
    ``decode.onnx`` is copied beside ``onnx_path``.  ``carried_from``: that folder, relative to this one."""
    conv = read_conversion(head_from)
    desc = conv.head.get("decode")
    if not conv.head.get("fix") or not desc:
        raise InputError(f"head_from: {head_from} is not a conversion whose detector head was split (convert --task "
                         f"detect without --no-head-fix)")
    if set(output_names) != set(conv.output_names or ()):
        raise InputError(f"{Path(onnx_path).name}: outputs {output_names} are not those of the head-split model in "
                         f"{head_from} ({conv.output_names}); head_from takes that model.onnx or a copy of it with "
                         f"changed weights")
    if desc.get("mode") == "host":
        shutil.copyfile(conv.out_dir / desc["decode_model"], Path(onnx_path).with_name(desc["decode_model"]))
    where = os.path.relpath(os.path.abspath(conv.out_dir), os.path.abspath(Path(onnx_path).parent))
    return {"lint": lint(outputs), "decode": dict(desc), "fix": conv.head["fix"], "carried_from": where}


def _ranges(idx: np.ndarray) -> str:
    parts, start = [], int(idx[0])
    for a, b in zip(idx, list(idx[1:]) + [None]):
        if b is None or b != a + 1:
            parts.append(f"{start}" if start == a else f"{start}-{a}")
            start = b
    return ", ".join(parts)


def cut_for_host(model: Any, desc: dict[str, Any]) -> tuple[Any, Any, list[str]]:
    """Split a head-split model into (body, decode tail, raw outputs): the tail is the grid/anchor decode.

    The cut is at the split head convolutions' outputs (x/y, w/h and score rows of each, before their
    Reshape/Transpose): the body ends there and is what gets quantized; the tail, float, runs on the host.
    """
    import onnx

    producer = {o: n for n in model.graph.node for o in n.output}
    raw = []
    for t in desc["separated_at"]:
        while t in producer and producer[t].op_type in ("Reshape", "Transpose"):
            t = producer[t].input[0]
        if t not in raw:
            raw.append(t)
    inputs = [i.name for i in model.graph.input]
    model = onnx.shape_inference.infer_shapes(model)
    ex = onnx.utils.Extractor(model)
    body = ex.extract_model(inputs, raw)
    tail = ex.extract_model(raw, [o.name for o in model.graph.output])
    return body, tail, raw


def apply(onnx_path: Any, output_names: list[str], outputs: dict[str, np.ndarray], *, task: str, fix: bool,
          input_size: tuple[int, int], decode: str = "model") -> tuple[list[str], dict[str, Any]]:
    """The conversion's head step: lint every output; for ``task="detect"`` describe the head and (``fix``) split it.

    ``outputs``: each output on calibration samples (stacked).  Rewrites ``onnx_path`` in place when it splits.
    ``decode="host"`` also moves the grid/anchor decode out of the model into ``decode.onnx`` beside it.
    Returns the new output names and the ``head`` section of conversion.json.
    """
    import onnx

    findings = lint(outputs)
    section: dict[str, Any] = {"lint": findings}
    if task != "detect":
        return output_names, section
    heads = [h for h in (detect_layout(n, (1, *outputs[n].shape[1:])) for n in output_names) if h is not None]
    if len(heads) != 1:
        shapes = {n: [1, *outputs[n].shape[1:]] for n in output_names}
        raise ConversionError(f"--task detect needs exactly one output in YOLOv5 layout [1, N, 5+classes] or YOLOv8 "
                              f"layout [1, 4+classes, N]; outputs are {shapes}", stage="head")
    head = heads[0]
    if not fix:
        section["decode"] = {"output": head.output, "layout": head.layout, "num_classes": head.num_classes,
                             "objectness": head.objectness, "boxes": head.output, "scores": head.output,
                             "box_format": "xywh", "box_units": "pixels", "input_size": list(input_size)}
        section["fix"] = None
        return output_names, section
    if decode not in ("model", "host"):
        raise ConversionError(f"decode must be 'model' or 'host', not {decode!r}", stage="head")
    model, desc = split_head(onnx.load(str(onnx_path)), head, input_size)
    desc["mode"] = decode
    if decode == "host":
        model, tail, raw = cut_for_host(model, desc)
        tail_path = Path(onnx_path).with_name("decode.onnx")
        onnx.save(tail, str(tail_path))
        desc.update(decode_model=tail_path.name, raw_outputs=raw)
    onnx.save(model, str(onnx_path))
    section["decode"] = desc
    section["fix"] = (f"output '{head.output}' replaced by 'boxes' (x, y, w, h / input size: 0..1) and 'scores' "
                      f"({'objectness + ' if head.objectness else ''}{head.num_classes} classes), computed by "
                      f"{len(desc['separated_at'])} split head tensor(s), so each gets its own int8 scale")
    if decode == "host":
        section["fix"] += f"; decode (grid/anchor math) moved to the host: {desc['decode_model']}"
        return [n for n in output_names if n != head.output] + desc["raw_outputs"], section
    names = [n for n in output_names if n != head.output] + ["boxes", "scores"]
    return names, section
