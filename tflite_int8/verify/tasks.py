"""Task metrics: what "as good as the float model" means for a task.

A task turns each sample's reference and int8 outputs into a small record
(:meth:`Task.record`, run where the sample was run, possibly in a worker) and
the records into metrics (:meth:`Task.summarize`) checked against thresholds
(:meth:`Task.failures`).  Classification and raw tensors live here; detection (:mod:`.detection`),
segmentation and masks (:mod:`.dense_tasks`) and CTC text (:mod:`.ctc`) plug in through the same three
methods; :func:`choose_task` picks one from the outputs (or by name).

Classification agreement is given overall and on the samples where the float model is *confident*, because
the two mean different things: a flip where the float model hesitates between two classes is a near-tie that
any small change can turn, a flip where it was sure is an error a user sees.  Confidence is read from the float
model's class probabilities (softmax of the output, unless the output already is probabilities: all values in
[0, 1], summing to 1): *confident* means top-1 probability >= :data:`CONFIDENT_P` (0.5: the float model prefers
its class to all others together); *by margin* means top-1 minus top-2 probability >= :data:`CONFIDENT_MARGIN`
(0.2: a clear lead over the runner-up, not a near-tie; a confident sample can still be one when p < 0.6).
With two classes every top-1 probability is >= 0.5, so there *confident* is the margin rule (p >= 0.6).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from ..config.tasks import TASKS
from ..data.images import list_images
from ..errors import InputError
from .ctc import CTCTask
from .dense_tasks import MaskTask, SegmentTask

CONFIDENT_P = 0.5
CONFIDENT_MARGIN = 0.2
SUM_TOLERANCE = 1e-3  # an output of values in [0, 1] summing to 1 within this is already probabilities


class Task(Protocol):
    name: str

    def record(self, reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> dict: ...

    def summarize(self, names: Sequence[str], records: Sequence[dict], labels: Sequence[int | None]) -> dict: ...

    def failures(self, summary: dict, thresholds: Mapping[str, float]) -> list[str]: ...


@dataclass(frozen=True)
class RawTask:
    """Tensors only: the per-output tensor metrics are the whole verdict."""

    name: str = "raw"

    def record(self, reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> dict:
        return {}

    def summarize(self, names: Sequence[str], records: Sequence[dict], labels: Sequence[int | None]) -> dict:
        return {}

    def failures(self, summary: dict, thresholds: Mapping[str, float]) -> list[str]:
        return []


def probabilities(scores: np.ndarray) -> tuple[np.ndarray, bool]:
    """Class probabilities of one output (softmax unless it already is probabilities), and whether it was."""
    x = np.ravel(scores).astype(np.float64)
    if x.size and x.min() >= 0.0 and x.max() <= 1.0 and abs(x.sum() - 1.0) <= SUM_TOLERANCE:
        return x, True
    e = np.exp(x - x.max())
    return e / e.sum(), False


@dataclass(frozen=True)
class ClassificationTask:
    """Top-1/top-5 agreement of int8 with float on ``output``, overall and where the float model is confident;
    accuracy of both when labels exist."""

    output: str
    name: str = "classification"
    class_names: tuple[str, ...] = ()

    def record(self, reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> dict:
        ref, got = np.ravel(reference[self.output]), np.ravel(candidate[self.output])
        k = min(5, ref.size)
        top = np.argsort(-ref, kind="stable")[:k]
        probs, given = probabilities(ref)
        p2 = float(probs[top[1]]) if k > 1 else 0.0
        return {"float_top5": [int(i) for i in top], "int8_top5": [int(i) for i in np.argsort(-got, kind="stable")[:k]],
                "float_p": float(probs[top[0]]), "float_margin": float(probs[top[0]]) - p2, "probabilities": given,
                "classes": int(ref.size)}

    def summarize(self, names: Sequence[str], records: Sequence[dict], labels: Sequence[int | None]) -> dict:
        if not records:
            return {}
        f1 = np.array([r["float_top5"][0] for r in records])
        q1 = np.array([r["int8_top5"][0] for r in records])
        agree = f1 == q1
        p = np.array([r["float_p"] for r in records])
        margin = np.array([r["float_margin"] for r in records])
        clear = margin >= CONFIDENT_MARGIN
        binary = all(r.get("classes") == 2 for r in records)  # with two classes every top-1 has p >= 0.5
        confident = p >= CONFIDENT_P if not binary else clear
        rule = (f"float top-1 probability >= {CONFIDENT_P}" if not binary else
                f"float top-1 probability >= {0.5 + CONFIDENT_MARGIN / 2:g} (two classes: a lead of {CONFIDENT_MARGIN})")
        out: dict[str, Any] = {
            "output": self.output, "samples": len(records),
            "top1_agreement": float(np.mean(agree)),
            # the float model's top-1 class is among the int8 model's top 5
            "top5_agreement": float(np.mean([r["float_top5"][0] in r["int8_top5"] for r in records])),
            "probabilities": ("the output itself (already probabilities)" if all(r["probabilities"] for r in records)
                              else "softmax of the output"),
            "confident_rule": rule, "confident_samples": int(confident.sum()),
            "top1_agreement_confident": float(np.mean(agree[confident])) if confident.any() else None,
            "margin_rule": f"float top-1 minus top-2 probability >= {CONFIDENT_MARGIN}",
            "margin_samples": int(clear.sum()),
            "top1_agreement_margin": float(np.mean(agree[clear])) if clear.any() else None,
        }
        known = [(i, lab) for i, lab in enumerate(labels) if lab is not None]
        if known:
            idx = np.array([i for i, _ in known])
            lab = np.array([lab for _, lab in known])
            out["labelled_samples"] = len(known)
            out["accuracy_float"] = float(np.mean(f1[idx] == lab))
            out["accuracy_int8"] = float(np.mean(q1[idx] == lab))
            out["accuracy_drop_points"] = 100.0 * (out["accuracy_float"] - out["accuracy_int8"])
        flips = sorted(np.flatnonzero(~agree), key=lambda i: -p[i])  # confident flips first, surest first
        out["disagreements"] = [
            {"sample": names[i], "float_top1": int(f1[i]), "int8_top1": int(q1[i]),
             "float_class": self._name(int(f1[i])), "int8_class": self._name(int(q1[i])),
             "float_p": round(float(p[i]), 4), "float_margin": round(float(margin[i]), 4),
             "confident": bool(confident[i]), "label": labels[i] if i < len(labels) else None}
            for i in flips]
        return out

    def failures(self, summary: dict, thresholds: Mapping[str, float]) -> list[str]:
        fails = []
        for key in ("top1_agreement", "top5_agreement"):
            need = thresholds.get(key)
            if need is not None and key in summary and summary[key] < need:
                fails.append(f"{key.replace('_', ' ')} {summary[key]:.3f} < {need} on output '{self.output}' "
                             f"({len(summary['disagreements'])} of {summary['samples']} samples change top-1 class)")
        need = thresholds.get("top1_agreement_confident")
        got = summary.get("top1_agreement_confident")
        if need is not None and got is not None and got < need:
            flips = [d for d in summary["disagreements"] if d["confident"]]
            shown = "; ".join(flip_text(d) for d in flips[:3])
            fails.append(f"top-1 agreement on confident samples {got:.3f} < {need} on output '{self.output}': "
                         f"{len(flips)} of {summary['confident_samples']} samples where the "
                         f"{summary['confident_rule']} change class ({shown})")
        drop = thresholds.get("accuracy_drop_points")
        if drop is not None and summary.get("accuracy_drop_points", 0.0) > drop:
            fails.append(f"labelled accuracy drops {summary['accuracy_drop_points']:.2f} points "
                         f"({summary['accuracy_float']:.4f} -> {summary['accuracy_int8']:.4f}), more than {drop}")
        return fails

    def _name(self, i: int) -> str | None:
        return self.class_names[i] if 0 <= i < len(self.class_names) else None


def flip_text(d: Mapping[str, Any]) -> str:
    """One disagreement in words: ``photo.jpg: float 'tabby' (p 0.93) -> int8 'tiger cat'``."""
    def cls(side: str) -> str:
        return repr(d[f"{side}_class"]) if d.get(f"{side}_class") else f"class {d[f'{side}_top1']}"

    p = f" (p {d['float_p']:.2f})" if "float_p" in d else ""
    return f"{d['sample']}: float {cls('float')}{p} -> int8 {cls('int8')}"


TASK_CHOICES = tuple(t for t in TASKS if t != "detect")  # detection is set up by verify() itself


@dataclass(frozen=True)
class OutputInfo:
    """What the reference says about an output: its shape (reference layout) and the op that makes it."""

    shape: tuple[int, ...]
    op: str | None = None  # Softmax, LogSoftmax, Sigmoid, ... (None: unknown)
    axis: int | None = None  # the softmax axis, normalised to be >= 0


def onnx_outputs(onnx_path: str | Path) -> dict[str, OutputInfo]:
    """Shape and producing op of every output of an ONNX model."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    producer = {o: n for n in model.graph.node for o in n.output}
    out = {}
    for o in model.graph.output:
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in o.type.tensor_type.shape.dim)
        node = producer.get(o.name)
        while node is not None and node.op_type in ("Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze") \
                and node.input and node.input[0] in producer:
            node = producer[node.input[0]]  # look through layout ops to the op that computes the values
        axis = None
        if node is not None and node.op_type in ("Softmax", "LogSoftmax"):
            axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
            axis = axis % len(shape) if shape else axis
        out[o.name] = OutputInfo(shape, node.op_type if node is not None else None, axis)
    return out


def choose_task(task: str, outputs: Mapping[str, OutputInfo | Sequence[int]], class_names: Sequence[str] = (), *,
                input_size: tuple[int, int] | None = None, blank: int = 0, mask_threshold: float = 0.5) -> Task:
    """The task ``task`` names, on the outputs it fits (``outputs``: name -> OutputInfo, or just a shape);
    ``auto`` picks one only when the outputs leave no doubt:

    * classify: one (1, K>1) output, or one such output made by a Softmax among others (a face net's
      probabilities beside its box regression);
    * ctc: one (1, T, C) output made by a Softmax/LogSoftmax over its last axis;
    * segment: one (1, K>1, H, W) output at the input's size, or made by a Softmax over axis 1;
    * mask: every output (1, 1, H, W) and made by a Sigmoid;
    * raw (tensor metrics only) otherwise.
    """
    if task not in TASK_CHOICES:
        raise InputError(f"unknown task {task!r}; choose {', '.join(TASK_CHOICES)}")
    outputs = {n: o if isinstance(o, OutputInfo) else OutputInfo(tuple(o)) for n, o in outputs.items()}
    shapes = {n: tuple(i.shape) for n, i in outputs.items()}
    cls = sorted((n for n, s in shapes.items() if len(s) == 2 and s[0] == 1 and s[1] > 1),
                 key=lambda n: outputs[n].op != "Softmax")  # a softmax output first: that one holds the classes
    seqs = [n for n, s in shapes.items() if len(s) == 3 and 1 in s[:2] and s[-1] > 2]
    maps = [n for n, s in shapes.items() if len(s) == 4 and s[0] == 1 and s[1] > 1 and min(s[2:]) > 1]
    masks = [n for n, s in shapes.items() if len(s) == 4 and s[0] == 1 and s[1] == 1 and min(s[2:]) > 1]
    if task == "auto":
        task = _auto(outputs, cls, seqs, maps, masks, input_size)
    if task == "classify":
        if not cls:
            raise InputError(f"--task classify needs an output of shape (1, classes); outputs are {shapes}")
        return ClassificationTask(cls[0], class_names=tuple(class_names))
    if task == "ctc":
        if not seqs:
            raise InputError(f"--task ctc needs an output of shape (1, T, classes) or (T, 1, classes); outputs are "
                             f"{shapes}")
        return CTCTask(seqs[0], blank=blank, class_names=tuple(class_names))
    if task == "segment":
        if not maps:
            raise InputError(f"--task segment needs an output of shape (1, classes, H, W); outputs are {shapes}")
        return SegmentTask(maps[0])
    if task == "mask":
        if not masks:
            raise InputError(f"--task mask needs outputs of shape (1, 1, H, W) (probability maps); outputs are "
                             f"{shapes}")
        return MaskTask(tuple(masks), threshold=mask_threshold)
    return RawTask()


def _auto(outputs: Mapping[str, OutputInfo], cls: list, seqs: list, maps: list, masks: list,
          input_size: tuple[int, int] | None) -> str:
    single = len(outputs) == 1
    if (single and cls) or sum(outputs[n].op == "Softmax" for n in cls) == 1:
        return "classify"
    if single and seqs and outputs[seqs[0]].op in ("Softmax", "LogSoftmax") and \
            outputs[seqs[0]].axis == len(outputs[seqs[0]].shape) - 1:
        return "ctc"
    if single and maps and (tuple(outputs[maps[0]].shape[2:]) == tuple(input_size or ()) or
                            (outputs[maps[0]].op == "Softmax" and outputs[maps[0]].axis == 1)):
        return "segment"
    if masks and len(masks) == len(outputs) and all(outputs[n].op == "Sigmoid" for n in masks):
        return "mask"
    return "raw"


def read_class_names(path: str | Path) -> list[str]:
    """One class name per line (line i = class i)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"class-names file {p} does not exist")
    # a line of only spaces is a class too (a CTC recognizer's space); other names lose surrounding blanks
    names = [ln.strip() or ln for ln in p.read_text(errors="replace").splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise InputError(f"class-names file {p} is empty")
    return names


def read_labels(source: str | Path, class_names: Sequence[str] = ()) -> dict[str, int]:
    """Labels by file name: a CSV ``file,label`` or a folder with one sub-folder per class.

    A label (or folder name) is a class index, or a name found in ``class_names``.
    """
    p = Path(source)
    index = {n: i for i, n in enumerate(class_names)}

    def to_index(value: str, where: str) -> int:
        value = value.strip()
        if value.lstrip("-").isdigit():
            return int(value)
        if value in index:
            return index[value]
        hint = " (give --class-names to map names to indices)" if not index else ""
        raise InputError(f"{where}: label {value!r} is neither a class index nor a known class name{hint}")

    labels: dict[str, int] = {}
    if p.is_dir():
        for sub in sorted(d for d in p.iterdir() if d.is_dir()):
            cls = to_index(sub.name, f"{p}")
            for img in list_images(sub).paths:
                labels[str(Path(img).resolve())] = cls
        if not labels:
            raise InputError(f"{p} has no class sub-folders with images")
        return labels
    if not p.is_file():
        raise InputError(f"labels {p} do not exist (give a CSV file,label or a folder of class folders)")
    with open(p, newline="", errors="replace") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 2:
                raise InputError(f"{p} line {n}: expected 'file,label', got {row}")
            if n == 1 and row[0].strip().lower() in ("file", "filename", "image", "path"):
                continue
            labels[row[0].strip()] = to_index(row[1], f"{p} line {n}")
    if not labels:
        raise InputError(f"{p} holds no labels")
    return labels


def label_for(sample_path: str | None, sample_name: str, labels: Mapping[str, int]) -> int | None:
    """The label of a sample (views share their photo's label), by resolved path, file name or name."""
    if sample_path is not None:
        resolved = str(Path(sample_path).resolve())
        if resolved in labels:
            return labels[resolved]
        if Path(sample_path).name in labels:
            return labels[Path(sample_path).name]
    base = sample_name.split("#view")[0]
    return labels.get(base)
