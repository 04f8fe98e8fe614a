"""Run a bundle on "the device" with LiteRT's Python interpreter and write the results document.

Used by ``android arm64-check`` inside an arm64 Debian root, where only numpy and
ai-edge-litert are installed: this file is copied there beside ``bundle_format.py``
and ``qmath.py`` and run as a script::

    python _device_runner.py BUNDLE RESULTS.json [--warmup 3] [--runs 20] [--threads 1]

It does what the Java core does on a phone: checks its own quantization of the
float inputs against the bundle's, runs every sample with XNNPACK (the default
runtime) for the compared outputs, and times both XNNPACK and the builtin kernels.
"""
from __future__ import annotations

import argparse
import json
import os
import itertools
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

try:
    from . import bundle_format as bf
    from .timing import interleaved
except ImportError:  # run as a script beside bundle_format.py and timing.py
    import bundle_format as bf  # type: ignore[no-redef]
    from timing import interleaved  # type: ignore[no-redef]


def _interpreter(model: Path, xnnpack: bool, threads: int) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = Interpreter(model_path=str(model), num_threads=threads, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    return interp


def _invoke(interp: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    for d, x in zip(interp.get_input_details(), inputs):
        interp.set_tensor(d["index"], x)
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


def run(bundle: Path, *, warmup: int = 3, runs: int = 20, threads: int = 1) -> dict[str, Any]:
    manifest = bf.read_manifest(bundle)
    model = bundle / manifest["model"]["file"]
    checked = mismatches = 0
    samples = []
    for s in manifest["samples"]:
        xs = []
        for tensor, entry in zip(manifest["inputs"], s["inputs"]):
            q = bf.read_tensor(bundle / entry["file"], tensor)
            if "float_file" in entry:
                mine = bf.quantize(bf.read_tensor(bundle / entry["float_file"], tensor, as_float=True), tensor)
                checked += mine.size
                mismatches += int(np.count_nonzero(mine != q))
            xs.append(q)
        samples.append(xs)
    per_mode, calls = {}, []
    for xnnpack in (True, False):
        interp = _interpreter(model, xnnpack, threads)
        per_mode[xnnpack] = [[bf.to_bytes(o, t["dtype"]) for o, t in zip(_invoke(interp, xs), manifest["outputs"])]
                             for xs in samples]
        cycle = itertools.cycle(samples)
        calls.append(lambda interp=interp, cycle=cycle: _invoke(interp, next(cycle)))
    # both runtimes timed interleaved (one timing rule with the host: timing.py)
    timing = [{"xnnpack": xnnpack, "threads": threads, **t}
              for xnnpack, t in zip((True, False), interleaved(calls, runs=runs, warmup=warmup))]
    outputs = per_mode[True]
    same = sum(a == b for sa, sb in zip(per_mode[True], per_mode[False]) for a, b in zip(sa, sb))
    device = {"runner": "python-litert", "arch": platform.machine(), "system": platform.platform(),
              "python": platform.python_version(), "runtime": f"ai-edge-litert {_version()}",
              "numpy": np.__version__, "cpus": os.cpu_count(),
              "xnnpack_vs_builtin_identical_outputs": f"{same}/{len(samples) * len(manifest['outputs'])}"}
    return bf.results(bundle, manifest, outputs, device=device, timing=timing,
                      input_check={"checked": checked, "mismatches": mismatches})


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - the version is only informative
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("bundle")
    p.add_argument("results")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    try:
        doc = run(Path(a.bundle), warmup=a.warmup, runs=a.runs, threads=a.threads)
    except bf.BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tmp = Path(a.results + ".partial")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, a.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
