"""verify on Ray vs on this machine, and on paper for ImageNet-val on a 64-core cluster.

The same 480 samples (24 bundled photos x 20 views; EfficientNet-Lite0's int8 file against its float32 TFLite,
reports off) through the whole verify() call: in 1 process, with 2 worker processes (``--workers 2``) and as
Ray tasks on a local Ray instance with 2 CPUs (``--ray``).  The instance is started once and its start timed
apart (on a cluster it is already running); its first verify pays the Ray workers' imports ("cold"), a second
one reuses them ("warm").  A fourth run with 1 view per photo gives the marginal cost of one sample on one
core; with Ray's measured efficiency it gives the expected wall time of ImageNet-val (50,000 images x 5 views)
on 64 cores.  The records' size (the driver holds them all for the reports) is measured too.
"""
from __future__ import annotations

import json
import math
import pickle
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

VIEWS = 20
PAPER_SAMPLES = 50_000 * 5
PAPER_CORES = 64


def _seconds(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _record_bytes(int8: Path, f32: Path, spec: Any, reader: Any) -> float:
    """Mean pickled size of one sample's record (metrics, histogram, task record, thumbnail)."""
    from tflite_int8.runtime.adapter import read_io
    from tflite_int8.verify.engines import EngineSpec
    from tflite_int8.verify.ladder import LadderJob, run_samples
    from tflite_int8.verify.tasks import choose_task

    outs = read_io(f32)[1]
    job = LadderJob((EngineSpec("reference", "tflite", str(f32)), EngineSpec("tflite-int8", "tflite", str(int8))),
                    spec, (), choose_task("auto", {o.name: tuple(o.shape) for o in outs}, []))
    records = run_samples(job, reader.subset(range(24)))
    return len(pickle.dumps(records)) / len(records)


def run() -> dict[str, Any]:
    from tflite_int8 import Recipe, convert, verify
    from tflite_int8.cluster import start
    from tflite_int8.convert.record import read_conversion
    from tflite_int8.data.readers import default_data_dir, open_reader
    from tflite_int8.zoo.models import DEMO_MODEL

    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        conv = convert(DEMO_MODEL, Path(tmp) / "c", recipe=Recipe(variants=("float32",)))
        int8, f32 = conv.int8_path, conv.out_dir / "model_float32.tflite"
        spec = read_conversion(conv.out_dir).spec
        args = dict(tflite=int8, reference=f32, spec=spec, data=default_data_dir(), seed=3, layers=False)
        reader = open_reader(default_data_dir(), spec, views=VIEWS, seed=3, warn_few=False)
        n = len(reader)
        s: dict[str, float] = {}
        s["one"] = _seconds(lambda: verify(views=VIEWS, **args))
        s["few"] = _seconds(lambda: verify(views=1, **args))
        s["two"] = _seconds(lambda: verify(views=VIEWS, workers=2, **args))
        t = time.perf_counter()
        temp = start("local", num_cpus=2)
        s["ray_start"] = time.perf_counter() - t
        import ray

        try:
            s["ray_cold"] = _seconds(lambda: verify(views=VIEWS, ray="local", **args))
            s["ray_warm"] = _seconds(lambda: verify(views=VIEWS, ray="local", **args))
        finally:
            ray.shutdown()
            shutil.rmtree(str(temp), ignore_errors=True)
        record = _record_bytes(int8, f32, spec, reader)
    rates = {k: n / s[k] for k in ("one", "two", "ray_cold", "ray_warm")}
    per_sample = (s["one"] - s["few"]) / (n - n // VIEWS)  # one core, marginal
    efficiency = rates["ray_warm"] / (2 * rates["one"])
    paper_ideal = PAPER_SAMPLES * per_sample / PAPER_CORES
    return {"samples": n, "seconds": s, "samples_per_s": rates, "per_sample_s": per_sample,
            "ray_cold_vs_workers": rates["ray_cold"] / rates["two"],
            "ray_warm_vs_workers": rates["ray_warm"] / rates["two"], "ray_efficiency_2_cpus": efficiency,
            "paper": {"samples": PAPER_SAMPLES, "cores": PAPER_CORES, "one_core_h": PAPER_SAMPLES * per_sample / 3600,
                      "ideal_min": paper_ideal / 60, "at_measured_efficiency_min": paper_ideal / efficiency / 60,
                      "record_bytes": record, "records_gb": PAPER_SAMPLES * record / 1e9}}


def table(r: dict[str, Any]) -> list[str]:
    from tflite_int8.verify.distributed import MAX_SHARD

    s, q, p = r["seconds"], r["samples_per_s"], r["paper"]
    shards = max(2 * p["cores"], math.ceil(p["samples"] / MAX_SHARD))
    met = r["ray_cold_vs_workers"] >= 0.9
    return [
        f"{r['samples']} samples (24 bundled photos x {VIEWS} views), EfficientNet-Lite0 int8 vs its float32 TFLite, "
        "the whole verify() call, reports off. Ray: a local instance with 2 CPUs, started once "
        f"({s['ray_start']:.1f} s, not counted: on a cluster it is already running).", "",
        "| run | wall s | samples/s | vs --workers 2 |", "|---|---|---|---|",
        f"| 1 process | {s['one']:.1f} | {q['one']:.1f} | {q['one'] / q['two']:.2f}x |",
        f"| --workers 2 | {s['two']:.1f} | {q['two']:.1f} | 1.00x |",
        f"| --ray, first run (Ray workers import the libraries) | {s['ray_cold']:.1f} | {q['ray_cold']:.1f} | "
        f"{r['ray_cold_vs_workers']:.2f}x |",
        f"| --ray, second run (workers reused) | {s['ray_warm']:.1f} | {q['ray_warm']:.1f} | "
        f"{r['ray_warm_vs_workers']:.2f}x |", "",
        f"Goal Ray >= 0.9x --workers 2 (first run): {'met' if met else 'not met'} ({r['ray_cold_vs_workers']:.2f}x; "
        f"second run {r['ray_warm_vs_workers']:.2f}x).", "",
        f"On paper, ImageNet-val x 5 views ({p['samples']:,} samples) on a {p['cores']}-core cluster: the measured "
        f"marginal cost of one sample on one core is {1000 * r['per_sample_s']:.1f} ms (photo decoding and "
        f"resizing, both interpreters, metrics; from a second 1-process run with 1 view per photo), i.e. "
        f"{p['one_core_h']:.1f} h on one core; {p['ideal_min']:.1f} min on {p['cores']} cores if they scale "
        f"perfectly, {p['at_measured_efficiency_min']:.1f} min at the efficiency Ray reached here on 2 CPUs "
        f"({r['ray_efficiency_2_cpus']:.0%} of 2x one process), plus the cluster's start and each shard's model "
        f"loading (shards of at most {MAX_SHARD:,} samples: {shards} tasks, about {shards / p['cores']:.0f} per "
        f"core). The images must be on a "
        f"filesystem every node reads (6.4 GB). The driver holds every sample's record for the reports: "
        f"{p['record_bytes'] / 1e3:.1f} kB each here (with its thumbnail), {p['records_gb']:.1f} GB for "
        f"{p['samples']:,} samples.", ""]


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
