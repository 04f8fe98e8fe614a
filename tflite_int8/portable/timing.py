"""Median latency of calls timed interleaved: the one timing rule of the host and of the device runner.

Standard library only: this file is copied beside ``device_runner.py`` onto devices.  Every call is
warmed up, then each round times every call once, the starting call rotating from round to round, so
a slow period of the machine (other processes, frequency changes) falls on all of them alike and
their ratio stays fair.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Sequence

RUNS = 20
WARMUP = 3


def interleaved(calls: Sequence[Callable[[], Any]], *, runs: int = RUNS, warmup: int = WARMUP) -> list[dict[str, Any]]:
    """Per call: median, min and max milliseconds over ``runs`` timed calls after ``warmup`` untimed ones."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be at least 1 and warmup at least 0, got {runs} and {warmup}")
    n = len(calls)
    for _ in range(warmup):
        for call in calls:
            call()
    times: list[list[float]] = [[] for _ in calls]
    for r in range(runs):
        for k in range(n):
            i = (r + k) % n
            t0 = time.perf_counter()
            calls[i]()
            times[i].append((time.perf_counter() - t0) * 1000.0)
    return [{"median_ms": statistics.median(t), "min_ms": min(t), "max_ms": max(t), "runs": runs, "warmup": warmup}
            for t in times]
