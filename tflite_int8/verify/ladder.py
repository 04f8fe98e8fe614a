"""The parity ladder: the same inputs through every stage of the conversion, error of each step.

PyTorch float -> ONNX Runtime -> TFLite float32 -> TFLite int8 (through the
adapter).  Each available step is compared with the previous available one (so
a loss is attributed to export, translation or quantization) and the last one
with the first (the end-to-end error).  Samples run in this process or in
worker processes (one interpreter each); a sample's numbers do not depend on
where it ran.
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..config.inputs import InputTable
from ..config.preprocess import PreprocessSpec
from ..errors import Int8Error
from ..progress import Progress
from ..runtime.metrics import combine, compare, step_agreement
from .engines import Engine, EngineSpec, aligned

HIST_EDGES = np.linspace(-8.0, 8.0, 65)  # int8 - float error, in output quantization steps
THUMB = 96


@dataclass(frozen=True)
class LadderJob:
    """Everything a worker needs to run its share of the samples (picklable)."""

    steps: tuple[EngineSpec, ...]
    spec: PreprocessSpec
    output_names: tuple[str, ...]
    task: Any
    num_threads: int = 1
    inputs: InputTable | None = None  # the model's inputs (names, layouts); None: one input in spec's layout
    in_steps_vs: str | None = None  # the step the last (quantized) one is also measured against in output steps


def run_samples(job: LadderJob, reader: Any, tick: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """One record per sample: step-to-step metrics, int8-vs-reference metrics, task record, thumbnail."""
    first = Engine(job.steps[0], job.spec, job.output_names, num_threads=job.num_threads, inputs=job.inputs)
    names = job.output_names or first.names  # explicit reference: its output names, by position
    engines = [first] + [Engine(s, job.spec, names, num_threads=job.num_threads, inputs=job.inputs)
                         for s in job.steps[1:]]
    steps_q = _output_steps(engines[-1])
    in_names = job.inputs.names if job.inputs is not None else ["input"]
    records = []
    for i, sample in enumerate(reader):
        feed = dict(zip(in_names, sample.arrays(in_names)))
        outs = [engines[0](feed)]
        for eng in engines[1:]:
            outs.append(aligned(outs[0], eng(feed)))
        rec: dict[str, Any] = {"index": i, "name": sample.name, "source": sample.source, "steps": {}}
        for k in range(1, len(engines)):
            rec["steps"][job.steps[k].step] = {n: compare(outs[k - 1][n], outs[k][n]) for n in outs[0]}
        if job.in_steps_vs is not None and len(engines) > 1 and job.steps[-2].step == job.in_steps_vs:
            for n, m in rec["steps"][job.steps[-1].step].items():
                if steps_q.get(n):
                    m.update(step_agreement((outs[-1][n].astype(np.float64) - outs[-2][n]) / steps_q[n]))
        ref, q = outs[0], outs[-1]
        rec["end_to_end"] = {}
        for n in ref:
            m = compare(ref[n], q[n])
            scale = steps_q.get(n)
            diff = (q[n].astype(np.float64) - ref[n].astype(np.float64)).ravel()
            if scale:
                m["step"] = scale
                m["max_abs_err_steps"] = m["max_abs_err"] / scale
                m["mean_abs_err_steps"] = m["mean_abs_err"] / scale
                hist = np.histogram(np.clip(diff / scale, HIST_EDGES[0], HIST_EDGES[-1]), HIST_EDGES)[0]
            else:
                hist = np.zeros(len(HIST_EDGES) - 1, dtype=np.int64)
            m["histogram"] = hist.tolist()
            rec["end_to_end"][n] = m
        rec["task"] = job.task.record(ref, q)
        rec["thumbnail"] = _thumbnail(sample.pixels)
        records.append(rec)
        if tick is not None:
            tick()
    return records


def _output_steps(engine: Engine) -> dict[str, float]:
    """Per-tensor output scale of the (quantized) last step, by output name."""
    runner = getattr(engine, "runner", None)
    if runner is None:
        return {}
    return {o.name: o.scales[0] for o in runner.outputs if o.quantized and not o.per_axis}


def _thumbnail(pixels: np.ndarray | None) -> str | None:
    if pixels is None or pixels.ndim != 3:
        return None
    from PIL import Image

    im = Image.fromarray(pixels if pixels.shape[-1] == 3 else pixels[..., 0])
    im.thumbnail((THUMB, THUMB))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def run_shard(job: LadderJob, reader: Any, indices: Sequence[int]) -> list[dict[str, Any]]:
    """The records of these samples (a worker's share), indexed as in the whole reader."""
    records = run_samples(job, reader.subset(indices))
    for rec, idx in zip(records, indices):
        rec["index"] = int(idx)
    return records


def run_ladder(job: LadderJob, reader: Any, *, workers: int = 1,
               progress: Progress | None = None) -> list[dict[str, Any]]:
    """All samples, in order; ``workers`` > 1 shares them among processes (one interpreter each)."""
    bar = progress("verify", len(reader)) if progress else None
    tick = (lambda: bar.update(1)) if bar is not None else None
    try:
        if workers <= 1 or len(reader) < 2:
            return run_samples(job, reader, tick=tick)
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        n = len(reader)
        chunks = [list(c) for c in np.array_split(np.arange(n), min(n, workers * 2)) if len(c)]
        records: list[dict[str, Any]] = []
        from concurrent.futures.process import BrokenProcessPool

        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {pool.submit(run_shard, job, reader, c): len(c) for c in chunks}
                for fut in as_completed(futures):
                    records.extend(fut.result())
                    if bar is not None:
                        bar.update(futures[fut])
        except BrokenProcessPool:
            raise Int8Error(f"a verification worker process died ({workers} workers). If you call verify(workers>1) "
                            f"from a script, put the call under `if __name__ == '__main__':`; or use workers=1") from None
        return sorted(records, key=lambda r: r["index"])
    finally:
        if bar is not None:
            bar.close()


def summarize_steps(step_names: Sequence[str], records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per ladder step and output: the samples' metrics combined (:func:`~tflite_int8.runtime.metrics.combine`)."""
    out: dict[str, dict[str, Any]] = {}
    names = [r["name"] for r in records]
    for step in step_names:
        per_out: dict[str, Any] = {}
        for name in records[0]["steps"].get(step, {}) if records else {}:
            # the last step is the int8 model: a sample below a few of its quantization steps has no signal
            q = records[0]["end_to_end"].get(name, {}).get("step") if step == step_names[-1] else None
            ms = [r["steps"][step][name] for r in records]
            per_out[name] = _with_steps(_lean(combine(ms, names, q)), ms)
        out[step] = per_out
    return out


def summarize_outputs(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per output, int8 vs the reference over all samples: data-set SQNR, cosine over the samples with a signal
    (the others listed as skipped), error in quantization steps, an error histogram and the worst samples."""
    out = {}
    names = [r["name"] for r in records]
    for name in records[0]["end_to_end"] if records else {}:
        ms = [r["end_to_end"][name] for r in records]
        summary = combine(ms, names, ms[0].get("step"))
        summary["histogram"] = {"edges_steps": HIST_EDGES.tolist(),
                                "counts": np.sum([m["histogram"] for m in ms], axis=0).tolist()}
        skipped = {s["sample"] for s in summary["skipped_samples"]}
        judged = [i for i in range(len(ms)) if names[i] not in skipped] or list(range(len(ms)))
        by = (lambda i: -ms[i]["max_abs_err"]) if summary.get("one_value_per_sample") else (lambda i: ms[i]["cosine"])
        worst = sorted(judged, key=by)[:5]
        summary["worst_samples"] = [{"sample": records[i]["name"], "cosine": ms[i]["cosine"],
                                     "max_abs_err": ms[i]["max_abs_err"]} for i in worst]
        out[name] = _lean(summary)
    return out


def _with_steps(summary: dict[str, Any], ms: Sequence[dict[str, float]]) -> dict[str, Any]:
    """Add the QAT step agreement (exact, within one output step, largest gap) when every sample has it."""
    if ms and all("within_1_step" in m for m in ms):  # equal-sized samples: the mean of fractions is the fraction
        summary.update(exact=float(np.mean([m["exact"] for m in ms])),
                       within_1_step=float(np.mean([m["within_1_step"] for m in ms])),
                       max_steps=max(m["max_steps"] for m in ms))
    return summary


def _lean(summary: dict[str, Any], keep: int = 20) -> dict[str, Any]:
    """At most ``keep`` skipped samples named (a data set of blank images would list them all)."""
    skipped = summary.get("skipped_samples", [])
    if len(skipped) > keep:
        summary["skipped_samples"] = skipped[:keep]
        summary["skipped_samples_total"] = len(skipped)
    return summary
