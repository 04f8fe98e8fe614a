"""Machine and version facts for BENCHMARKS.md."""
from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from typing import Callable


def machine() -> str:
    from tflite_int8.pipeline import versions

    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    vers = ", ".join(f"{k} {v}" for k, v in versions().items())
    return (f"{datetime.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores ({cpu}), "
            f"{mem:.0f} GiB, Python {platform.python_version()}; {vers}")


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)
