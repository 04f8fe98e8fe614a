"""verify's samples on a Ray cluster: shards of the reader as Ray tasks (:mod:`tflite_int8.cluster`).

Each shard is one task that builds its engines (interpreters, ONNX session, PyTorch module) once and runs
:func:`.ladder.run_shard` on its samples, so every record is the one a local run makes, bit for bit; the
records come back in sample order.  The model files (TFLite, ONNX, weights) travel once through Ray's object
store and are written into a temporary folder on the node that runs the shard; the verification data is
read where it is (image folders by path: the same path on every node; a ``.npy`` reader travels whole).
Ray re-runs a shard whose worker or node died; the returned description names the shards that were retried.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..cluster import RAY_TIMEOUT, node_address, node_folder, ray_session
from ..errors import InputError
from ..progress import Progress, or_silent
from .ladder import LadderJob, run_shard

MAX_SHARD = 1000  # samples per task at most: a lost worker costs at most this many samples again
FILE_KINDS = ("tflite", "onnxruntime")


def run_ladder_on_ray(job: LadderJob, reader: Any, address: str, *,
                      progress: Progress | None = None,
                      timeout: float = RAY_TIMEOUT) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """All records in sample order, and how they were made: where, how many shards, which were retried."""
    with ray_session(address, timeout=timeout) as ex:
        shards = _shards(len(reader), ex.cpus)
        labels = [f"verification shard {k + 1}/{len(shards)} (samples {s[0]}-{s[-1]})" for k, s in enumerate(shards)]
        bar = or_silent(progress)("verify", len(reader))
        try:
            out = ex.map(_shard, shards, shared=(job, reader, _model_files(job)),
                         done=lambda i, recs: bar.update(len(recs)), labels=labels)
        finally:
            bar.close()
        where = dict(ex.where)
    records = sorted((r for recs in out.results for r in recs), key=lambda r: r["index"])
    where["shards"] = len(shards)
    where["retried"] = [{"shard": k + 1, "samples": [shards[k][0], shards[k][-1]], "attempts": out.attempts[k]}
                        for k in out.retried()]
    return records, where


def _shards(n: int, cpus: int) -> list[list[int]]:
    """Two shards per CPU (a slow one is caught up by the others), more when a shard would exceed MAX_SHARD."""
    count = min(n, max(2 * cpus, math.ceil(n / MAX_SHARD)))
    return [[int(i) for i in c] for c in np.array_split(np.arange(n), count) if len(c)]


def _model_files(job: LadderJob) -> dict[str, bytes]:
    """The bytes of every model file the engines load, by path."""
    paths = {str(s.source) for s in job.steps if s.kind in FILE_KINDS} | {s.weights for s in job.steps if s.weights}
    return {p: Path(p).read_bytes() for p in sorted(paths)}


def _localized(job: LadderJob, files: dict[str, bytes], folder: Path) -> LadderJob:
    """The job with its model paths replaced by copies in ``folder`` (same file names)."""
    local = {}
    for i, (path, data) in enumerate(files.items()):
        target = folder / str(i) / Path(path).name
        target.parent.mkdir()
        target.write_bytes(data)
        local[path] = str(target)
    steps = tuple(replace(s, source=local[str(s.source)] if s.kind in FILE_KINDS else s.source,
                          weights=local[s.weights] if s.weights else None) for s in job.steps)
    return replace(job, steps=steps)


def _shard(shared: tuple[LadderJob, Any, dict[str, bytes]], indices: list[int]) -> list[dict[str, Any]]:
    """One Ray task: this shard's records."""
    job, reader, files = shared
    with node_folder("tflite-int8-shard-") as tmp:
        try:
            return run_shard(_localized(job, files, Path(tmp)), reader, indices)
        except InputError as exc:
            raise InputError(f"{exc} (on Ray node {node_address()}: every node needs the "
                             f"verification data at the same path and the same Python packages)") from None
