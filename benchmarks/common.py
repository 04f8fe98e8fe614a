"""Machine and version facts for BENCHMARKS.md."""
from __future__ import annotations

import datetime
import os
import platform
import time
from typing import Any, Callable


def machine() -> str:
    from tflite_int8.runtime.versions import versions

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


def confident_cell(m: dict[str, Any], none: str = "-") -> str:
    """A table cell: top-1 agreement on the float model's confident samples, and how many there were."""
    conf = m["top1_agreement_confident"]
    return f"{none if conf is None else f'{conf:.1%}'} ({m['confident_samples']})"


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """Median seconds of ``fn`` (the project's one timing rule: tflite_int8.portable.timing)."""
    from tflite_int8.portable.timing import interleaved

    return interleaved([fn], runs=repeats, warmup=warmup)[0]["median_ms"] / 1e3


def peer_oiqt(onnx_path: Any, pixels01_nhwc: Any, spec: Any, work: Any) -> tuple[float, dict, Any]:
    """onnx2tf's own `-oiqt` on our model.onnx with the same calibration data: (wall s, files, full-int8 path).

    Calibration goes in as raw 0..1 NHWC with our mean/std (onnx2tf normalises itself), in a folder
    holding its sample-image file (otherwise it downloads one from GitHub).
    """
    import json
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np

    from tflite_int8.convert.translate import ONNX2TF_SAMPLE_FILE

    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "calib.npy", pixels01_nhwc.astype(np.float32))
    np.save(work / ONNX2TF_SAMPLE_FILE, pixels01_nhwc[:20].astype(np.float32))
    mean, std = json.dumps([[[list(spec.mean)]]]), json.dumps([[[list(spec.std)]]])
    import onnx

    name = onnx.load(str(onnx_path)).graph.input[0].name  # the model's own input name (forward's argument)
    cmd = [str(Path(sys.executable).with_name("onnx2tf")), "-i", str(onnx_path), "-o", str(work / "out"), "-oiqt",
           "-cind", name, str(work / "calib.npy"), mean, std, "-nuo", "-v", "error"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"onnx2tf -oiqt failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    files = {p.name: p.stat().st_size for p in sorted((work / "out").glob("*.tflite"))}
    return wall, files, next((work / "out").glob("*_full_integer_quant.tflite"))
