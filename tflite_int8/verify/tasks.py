"""Task metrics: what "as good as the float model" means for a task.

A task turns each sample's reference and int8 outputs into a small record
(:meth:`Task.record`, run where the sample was run, possibly in a worker) and
the records into metrics (:meth:`Task.summarize`) checked against thresholds
(:meth:`Task.failures`).  Classification and raw tensors live here; a detection
task plugs in through the same three methods.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from ..data.images import list_images
from ..errors import InputError


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


@dataclass(frozen=True)
class ClassificationTask:
    """Top-1/top-5 agreement of int8 with float on ``output``; accuracy of both when labels exist."""

    output: str
    name: str = "classification"
    class_names: tuple[str, ...] = ()

    def record(self, reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> dict:
        ref, got = np.ravel(reference[self.output]), np.ravel(candidate[self.output])
        k = min(5, ref.size)
        return {"float_top5": [int(i) for i in np.argsort(-ref, kind="stable")[:k]],
                "int8_top5": [int(i) for i in np.argsort(-got, kind="stable")[:k]]}

    def summarize(self, names: Sequence[str], records: Sequence[dict], labels: Sequence[int | None]) -> dict:
        if not records:
            return {}
        f1 = np.array([r["float_top5"][0] for r in records])
        q1 = np.array([r["int8_top5"][0] for r in records])
        out: dict[str, Any] = {
            "output": self.output, "samples": len(records),
            "top1_agreement": float(np.mean(f1 == q1)),
            # the float model's top-1 class is among the int8 model's top 5
            "top5_agreement": float(np.mean([r["float_top5"][0] in r["int8_top5"] for r in records])),
        }
        known = [(i, lab) for i, lab in enumerate(labels) if lab is not None]
        if known:
            idx = np.array([i for i, _ in known])
            lab = np.array([lab for _, lab in known])
            out["labelled_samples"] = len(known)
            out["accuracy_float"] = float(np.mean(f1[idx] == lab))
            out["accuracy_int8"] = float(np.mean(q1[idx] == lab))
            out["accuracy_drop_points"] = 100.0 * (out["accuracy_float"] - out["accuracy_int8"])
        out["disagreements"] = [
            {"sample": names[i], "float_top1": int(f1[i]), "int8_top1": int(q1[i]),
             "float_class": self._name(int(f1[i])), "int8_class": self._name(int(q1[i])),
             "label": labels[i] if i < len(labels) else None}
            for i in np.flatnonzero(f1 != q1)]
        return out

    def failures(self, summary: dict, thresholds: Mapping[str, float]) -> list[str]:
        fails = []
        for key in ("top1_agreement", "top5_agreement"):
            need = thresholds.get(key)
            if need is not None and key in summary and summary[key] < need:
                fails.append(f"{key.replace('_', ' ')} {summary[key]:.3f} < {need} on output '{self.output}' "
                             f"({len(summary['disagreements'])} of {summary['samples']} samples change top-1 class)")
        drop = thresholds.get("accuracy_drop_points")
        if drop is not None and summary.get("accuracy_drop_points", 0.0) > drop:
            fails.append(f"labelled accuracy drops {summary['accuracy_drop_points']:.2f} points "
                         f"({summary['accuracy_float']:.4f} -> {summary['accuracy_int8']:.4f}), more than {drop}")
        return fails

    def _name(self, i: int) -> str | None:
        return self.class_names[i] if 0 <= i < len(self.class_names) else None


def choose_task(task: str, output_shapes: Mapping[str, Sequence[int]], class_names: Sequence[str] = ()) -> Task:
    """``auto``: classification when the model has one (1, K>1) output, raw tensors otherwise."""
    if task not in ("auto", "classify", "raw"):
        raise InputError(f"unknown task {task!r}; choose auto, classify or raw")
    cls = [n for n, s in output_shapes.items() if len(s) == 2 and s[0] == 1 and s[1] > 1]
    if task == "classify" or (task == "auto" and len(output_shapes) == 1 and cls):
        if not cls:
            raise InputError(f"--task classify needs an output of shape (1, classes); outputs are "
                             f"{dict(output_shapes)}")
        return ClassificationTask(cls[0], class_names=tuple(class_names))
    return RawTask()


def read_class_names(path: str | Path) -> list[str]:
    """One class name per line (line i = class i)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"class-names file {p} does not exist")
    names = [ln.strip() for ln in p.read_text(errors="replace").splitlines()]
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
