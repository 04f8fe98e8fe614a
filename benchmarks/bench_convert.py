"""Conversion wall time per stage and file sizes: ours vs onnx2tf's own `-oiqt` CLI, same ONNX, same data.

The peer runs as `onnx2tf -i model.onnx -oiqt -cind input calib.npy MEAN STD` on our exported
model.onnx, with the same 120 calibration samples (raw 0..1 RGB, NHWC; onnx2tf applies mean/std
itself), in a folder holding its sample-image file (else it downloads one from GitHub).
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import peer_oiqt


def size_breakdown(path: Any) -> dict[str, int]:
    """Bytes of a .tflite by what they hold: tensor data per dtype, quantization parameters, tensor names, the rest."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    dtype = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    path = Path(path)
    model = flatbuffer_utils.read_model(str(path))
    out = {"file": path.stat().st_size, "scales": 0, "zero_points": 0, "names": 0}
    seen: set[int] = set()
    for t in (t for g in model.subgraphs for t in g.tensors):
        out["names"] += len(t.name or b"")
        q = t.quantization
        out["scales"] += 0 if q is None or q.scale is None else np.asarray(q.scale, np.float32).nbytes
        out["zero_points"] += 0 if q is None or q.zeroPoint is None else np.asarray(q.zeroPoint, np.int64).nbytes
        data = model.buffers[t.buffer].data
        if data is not None and t.buffer not in seen:
            seen.add(t.buffer)
            out[f"{dtype[t.type]}_data"] = out.get(f"{dtype[t.type]}_data", 0) + len(data)
    out["rest"] = out["file"] - sum(v for k, v in out.items() if k != "file")
    return out


def run() -> dict:
    from tflite_int8 import Recipe, convert, load_conversion
    from tflite_int8.data.readers import open_reader
    from tflite_int8.zoo.demo import CALIB_VIEWS, agreement, demo_photos, top1_agreement
    from tflite_int8.zoo.models import DEMO_MODEL

    results = {}
    calib, _ = demo_photos()  # the demo's calibration half of the bundled photos
    models = {"efficientnet-lite0": DEMO_MODEL, "mobilenet-v2": "tflite_int8.zoo:mobilenet_v2"}
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        tmp = Path(tmp)
        for name, model in models.items():
            (tmp / name).mkdir()
            t = time.perf_counter()
            ours = convert(model, tmp / name / "ours", data=calib, views=CALIB_VIEWS, recipe=Recipe())
            ours_wall = time.perf_counter() - t
            _, spec = load_conversion(ours.out_dir)
            reader = open_reader(calib, spec, views=CALIB_VIEWS, warn_few=False)
            raw = np.concatenate([s.pixels[None].astype(np.float32) / 255.0 for s in reader])  # NHWC 0..1
            peer_wall, peer_files, peer_int8 = peer_oiqt(ours.out_dir / "model.onnx", raw, spec, tmp / name / "peer")
            demo = model == DEMO_MODEL  # top-1 on the 24 photos here; both models' accuracy: bench_accuracy
            results[name] = {
                "ours": {"wall_s": ours_wall, "stages": {k: v["seconds"] for k, v in ours.report["stages"].items()},
                         "simplify_s": ours.report["stages"]["export"]["simplify_seconds"],
                         "files": {f["file"]: f["bytes"] for f in ours.report["files"].values()},
                         "float32_bytes": ours.report["stages"]["translate"]["float32_tflite_bytes"],
                         "int8_breakdown": size_breakdown(ours.int8_path),
                         "top1_agreement": agreement(ours)["top1_agreement"] if demo else None},
                "peer": {"wall_s": peer_wall, "files": peer_files, "int8_file": peer_int8.name,
                         "top1_agreement": top1_agreement(peer_int8, spec)["top1_agreement"] if demo else None},
            }
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
