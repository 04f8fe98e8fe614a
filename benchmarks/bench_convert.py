"""Conversion wall time per stage and file sizes: ours vs onnx2tf's own `-oiqt` CLI, same ONNX, same data.

The peer runs as `onnx2tf -i model.onnx -oiqt -cind input calib.npy MEAN STD` on our exported
model.onnx, with the same 120 calibration samples (raw 0..1 RGB, NHWC; onnx2tf applies mean/std
itself), in a folder holding its sample-image file (else it downloads one from GitHub).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def run() -> dict:
    from tflite_int8 import Recipe, convert, load_conversion
    from tflite_int8.calibrate import default_data_dir, open_reader
    from tflite_int8.demo import DEMO_VIEWS, agreement, top1_agreement
    from tflite_int8.translate import ONNX2TF_SAMPLE_FILE
    from tflite_int8.zoo import DEMO_MODEL

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        ours = convert(DEMO_MODEL, tmp / "ours", views=DEMO_VIEWS, recipe=Recipe())
        ours_wall = time.perf_counter() - t
        _, spec = load_conversion(tmp / "ours")
        reader = open_reader(default_data_dir(), spec, views=DEMO_VIEWS, warn_few=False)
        raw = np.concatenate([s.pixels[None].astype(np.float32) / 255.0 for s in reader])  # NHWC 0..1
        peer_dir = tmp / "peer"
        peer_dir.mkdir()
        np.save(peer_dir / "calib.npy", raw)
        np.save(peer_dir / ONNX2TF_SAMPLE_FILE, raw[:20])
        mean, std = json.dumps([[[list(spec.mean)]]]), json.dumps([[[list(spec.std)]]])
        cmd = [str(Path(sys.executable).with_name("onnx2tf")), "-i", str(tmp / "ours" / "model.onnx"),
               "-o", str(peer_dir / "out"), "-oiqt", "-cind", "input", str(peer_dir / "calib.npy"), mean, std,
               "-nuo", "-v", "error"]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=peer_dir, capture_output=True, text=True, env=env)
        peer_wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise RuntimeError(f"onnx2tf -oiqt failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        peer_files = {p.name: p.stat().st_size for p in sorted((peer_dir / "out").glob("*.tflite"))}
        peer_int8 = next(p for p in (peer_dir / "out").glob("*_full_integer_quant.tflite"))
        # Top-1 agreement with the float model on the 24 bundled photos, both through our adapter.
        peer_agree = top1_agreement(peer_int8, spec)["top1_agreement"]
        results["efficientnet-lite0"] = {
            "ours": {"wall_s": ours_wall, "stages": {k: v["seconds"] for k, v in ours.report["stages"].items()},
                     "files": {f["file"]: f["bytes"] for f in ours.report["files"].values()},
                     "float32_bytes": ours.report["stages"]["translate"]["float32_tflite_bytes"],
                     "top1_agreement": agreement(ours)["top1_agreement"]},
            "peer": {"wall_s": peer_wall, "files": peer_files, "int8_file": peer_int8.name,
                     "top1_agreement": peer_agree},
        }
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
