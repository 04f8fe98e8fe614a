"""Assertions for users' own test suites: int8 parity with the float model, and full-integer files.

``assert_int8_parity(reference, tflite_path, inputs, top1_agreement=..., cosine=..., max_abs_err=...)``
runs a PyTorch module (or factory), an ONNX file or a float .tflite and the int8 .tflite (through
the adapter) on the same float inputs; a failure says which metric failed, by how much, and on
which samples.  ``assert_full_integer(path)`` says which ops/tensors are float when it fails.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .config.preprocess import PreprocessSpec
from .data.readers import Sample
from .runtime.adapter import read_io
from .runtime.describe import describe
from .runtime.interpreter import probe
from .verify.engines import reference_spec, shared_output_names
from .verify.ladder import LadderJob, run_samples
from .verify.tasks import ClassificationTask, RawTask

WORST = 5


def assert_full_integer(tflite_path: str | Path) -> dict[str, Any]:
    """AssertionError unless every compute op and every input/output of the file is integer."""
    info = describe(tflite_path)
    if info["verdict"] != "full-integer":
        io = ", ".join(f"{t['name']} {t['dtype']}" for t in info["inputs"] + info["outputs"])
        ops = "; ".join(f"#{d['index']} {d['op']} ({', '.join(d['float_tensors'][:3])})"
                        for d in info["float_op_detail"][:8])
        raise AssertionError(f"{tflite_path} is not full-integer: it is {info['verdict']}. I/O: {io}."
                             + (f" Float ops: {ops}" if ops else ""))
    return info


def assert_int8_parity(reference: Any, tflite_path: str | Path, inputs: Any, *, top1_agreement: float | None = None,
                       cosine: float | None = None, max_abs_err: float | None = None,
                       spec: PreprocessSpec | None = None) -> dict[str, Any]:
    """AssertionError when the int8 model drifts from ``reference`` on ``inputs``; the metrics otherwise.

    ``inputs``: float samples, shape (N, *input shape without batch) or a list of batch-1 arrays, in the
    reference's layout (NCHW for PyTorch/ONNX, NHWC for a .tflite reference) unless ``spec`` says.
    ``cosine`` is a floor on the mean cosine of each output, ``max_abs_err`` a ceiling on the largest
    absolute error (float units), ``top1_agreement`` a floor on the share of samples whose argmax agrees.
    """
    if top1_agreement is None and cosine is None and max_abs_err is None:
        raise ValueError("assert_int8_parity needs at least one of top1_agreement, cosine, max_abs_err")
    ref_spec = reference_spec(reference)
    for path in [tflite_path] + ([ref_spec.source] if ref_spec.kind == "tflite" else []):
        probe(path)  # corrupt files become an InputError, not a crashed test process
    samples = _samples(inputs)
    spec = spec or _spec_for(samples[0], "NHWC" if ref_spec.kind == "tflite" else "NCHW")
    names = shared_output_names(ref_spec, tflite_path)
    first = read_io(tflite_path)[1][0].shape
    task = ClassificationTask(names[0]) if len(first) == 2 and first[0] == 1 and first[1] > 1 else RawTask()
    job = LadderJob((ref_spec, reference_spec(str(tflite_path), "tflite-int8")), spec, tuple(names), task)
    records = run_samples(job, [Sample(f"#{i}", x) for i, x in enumerate(samples)])
    per = {n: [r["end_to_end"][n] for r in records] for n in names}
    tops = [(r["task"]["float_top5"][0], r["task"]["int8_top5"][0]) for r in records] if task.name != "raw" else []
    return _judge(per, tops, top1_agreement, cosine, max_abs_err, Path(tflite_path).name)


def _judge(per: dict[str, list[dict[str, float]]], tops: list[tuple[int, int]], top1: float | None,
           cosine: float | None, max_abs: float | None, label: str) -> dict[str, Any]:
    metrics: dict[str, Any] = {"samples": len(next(iter(per.values()))), "outputs": {}}
    fails = []
    for name, ms in per.items():
        cos = np.array([m["cosine"] for m in ms])
        err = np.array([m["max_abs_err"] for m in ms])
        metrics["outputs"][name] = {"cosine": float(cos.mean()), "cosine_min": float(cos.min()),
                                    "max_abs_err": float(err.max())}
        if cosine is not None and cos.mean() < cosine:
            worst = ", ".join(f"#{i} {cos[i]:.7f}" for i in np.argsort(cos)[:WORST])
            fails.append(f"cosine of output '{name}': mean {cos.mean():.7f} < {cosine} (short by "
                         f"{cosine - cos.mean():.3g}); worst samples: {worst}")
        if max_abs is not None and err.max() > max_abs:
            worst = ", ".join(f"#{i} {err[i]:.4g}" for i in np.argsort(-err)[:WORST])
            fails.append(f"max_abs_err of output '{name}': {err.max():.4g} > {max_abs} (over by "
                         f"{err.max() - max_abs:.4g}); worst samples: {worst}")
    if tops:
        agree = float(np.mean([a == b for a, b in tops]))
        metrics["top1_agreement"] = agree
        if top1 is not None and agree < top1:
            changed = [f"#{i} (float {a} -> int8 {b})" for i, (a, b) in enumerate(tops) if a != b]
            fails.append(f"top1_agreement: {agree:.3f} < {top1} (short by {top1 - agree:.3f}); class changed on "
                         f"{len(changed)} of {len(tops)} samples: {', '.join(changed[:WORST])}")
    elif top1 is not None:
        fails.append("top1_agreement was asked for, but the first output is not a (1, classes) score vector")
    if fails:
        raise AssertionError(f"int8 parity failed for {label} on {metrics['samples']} samples:\n  " + "\n  ".join(fails))
    return metrics


def _samples(inputs: Any) -> list[np.ndarray]:
    if isinstance(inputs, np.ndarray):
        arr = inputs.astype(np.float32, copy=False)
        return [arr[i:i + 1] for i in range(arr.shape[0])]
    out = [np.asarray(x, dtype=np.float32) for x in inputs]
    if not out:
        raise ValueError("assert_int8_parity got no inputs")
    return [x if x.ndim == 4 or x.shape[:1] == (1,) else x[None] for x in out]


def _spec_for(x: np.ndarray, layout: str) -> PreprocessSpec:
    """A spec that only declares layout/size/channels, for inputs that are already preprocessed floats."""
    if x.ndim != 4:
        return PreprocessSpec(layout="NHWC")
    c, h, w = (x.shape[1], x.shape[2], x.shape[3]) if layout == "NCHW" else (x.shape[3], x.shape[1], x.shape[2])
    channels = "L" if c == 1 else "RGB"
    mean = (0.0,) if c == 1 else (0.0, 0.0, 0.0)
    std = (1.0,) if c == 1 else (1.0, 1.0, 1.0)
    return PreprocessSpec(size=(h, w), layout=layout, channels=channels, mean=mean, std=std, resize="stretch")
