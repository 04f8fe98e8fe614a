"""How long a .tflite takes: median invoke time of several files, timed interleaved in this process.

The conditions are fixed so that figures compare: one thread, the interpreter's default delegate (XNNPACK:
what phones run), zero-valued inputs of each file's own dtype, warm-up runs, then the median of timed runs
with the files interleaved (:func:`tflite_int8.portable.timing.interleaved`), so a ratio of two files
measured in one call is fair even on a busy machine.  The CPU is recorded with the figures.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..portable.timing import RUNS, WARMUP, interleaved
from .adapter import Runner
from .versions import cpu


def conditions(*, threads: int = 1, runs: int = RUNS, warmup: int = WARMUP) -> dict[str, Any]:
    """What a latency figure was measured under (stored next to it in reports)."""
    return {"threads": threads, "delegate": "XNNPACK (the interpreter's default)", "runs": runs, "warmup": warmup,
            "interleaved": True, "statistic": "median", "cpu": cpu()}


def median_latency_ms(paths: Sequence[str | Path], *, threads: int = 1, runs: int = RUNS,
                      warmup: int = WARMUP) -> list[float]:
    """Median milliseconds per invoke of each file (files this run made or checked: opened trusted)."""
    calls = []
    for path in paths:
        runner = Runner(path, num_threads=threads, trusted=True)
        raw = [np.zeros(i.shape, dtype=i.dtype) for i in runner.inputs]
        calls.append(lambda runner=runner, raw=raw: runner.invoke(raw))
    return [round(t["median_ms"], 4) for t in interleaved(calls, runs=runs, warmup=warmup)]
