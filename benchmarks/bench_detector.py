"""The reference detector (tflite_int8/zoo/detector.py): mAP of float and full-int8, head fix vs naive vs onnx2tf -oiqt.

Data: 200 generated training-split images calibrate every int8 model (seed 7, never seen in training);
300 generated val images (background photos disjoint from training) with exact labels verify them.
Conversion wall time per stage: ours (head split, and naive) vs onnx2tf's own `-oiqt` on the naive
model.onnx with the same calibration data.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import peer_oiqt

MODEL_V5, MODEL_V8 = "tflite_int8.zoo.detector:yolo_shapes", "tflite_int8.zoo.detector:yolo_shapes_v8"
VAL, CALIB = 300, 200


def _figures(result: Any) -> dict[str, Any]:
    d = result.report["detection"]
    keys = ("map50_float", "map50_int8", "map50_95_float", "map50_95_int8", "map50_95_drop_points", "box_agreement",
            "map50_95_vs_float", "labelled_samples")
    return {k: d[k] for k in keys} | {"passed": result.passed, "verify_s": result.report["seconds"]}


def run() -> dict[str, Any]:
    from tflite_int8.zoo.shapes_data import write_coco
    from tflite_int8.zoo.detector import SPEC
    from tflite_int8 import convert, verify
    from tflite_int8.data.readers import open_reader

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-detector-") as tmp:
        tmp = Path(tmp)
        labels = write_coco(tmp / "val", "val", VAL)
        write_coco(tmp / "calib", "train", CALIB, seed=7)
        val, calib = tmp / "val" / "images", tmp / "calib" / "images"
        runs = {}
        for key, model, fix, dec in (("fix", MODEL_V5, True, "model"), ("host", MODEL_V5, True, "host"),
                                     ("naive", MODEL_V5, False, "model"), ("v8-fix", MODEL_V8, True, "model")):
            t = time.perf_counter()
            conv = convert(model, tmp / key, data=calib, task="detect", head_fix=fix, decode=dec)
            wall = time.perf_counter() - t
            res = verify(tmp / key, data=val, labels=labels, layers=False, workers=2)
            runs[key] = {"wall_s": wall, "stages": {k: v["seconds"] for k, v in conv.report["stages"].items()},
                         "simplify_s": conv.report["stages"]["export"]["simplify_seconds"],
                         "int8_bytes": conv.int8_path.stat().st_size, **_figures(res)}
        reader = open_reader(calib, SPEC, warn_few=False)
        raw = np.concatenate([s.pixels[None].astype(np.float32) / 255.0 for s in reader])
        peer_wall, peer_files, peer_int8 = peer_oiqt(tmp / "naive" / "model.onnx", raw, SPEC, tmp / "peer")
        res = verify(tmp / "naive", tflite=peer_int8, data=val, labels=labels, layers=False, workers=2)
        runs["peer"] = {"wall_s": peer_wall, "files": peer_files, "int8_bytes": peer_int8.stat().st_size,
                        **_figures(res)}
        out["yolo-shapes"] = runs
    return out


def table(r: dict[str, Any]) -> list[str]:
    runs = r["yolo-shapes"]
    rows = [("ours, head split, decode in the model (default for --task detect)", runs["fix"]),
            ("ours, head split, decode on the host (--decode host)", runs["host"]),
            ("ours, naive (--no-head-fix)", runs["naive"]), ("onnx2tf -oiqt (naive model.onnx)", runs["peer"]),
            ("ours, head split, YOLOv8 layout [1, 4+nc, N]", runs["v8-fix"])]
    lines = [f"Float (ONNX Runtime on the exported model) on {runs['fix']['labelled_samples']} labelled val images: "
             f"mAP50 {runs['fix']['map50_float']:.4f}, mAP50-95 {runs['fix']['map50_95_float']:.4f}.", "",
             "| int8 model (full-integer, int8 I/O) | mAP50 | mAP50-95 | mAP50-95 drop (points) | box agreement | "
             "conversion wall s | int8 MB |", "|---|---|---|---|---|---|---|"]
    for name, m in rows:
        lines.append(f"| {name} | {m['map50_int8']:.4f} | {m['map50_95_int8']:.4f} | "
                     f"{m['map50_95_drop_points']:.2f} | {m['box_agreement']:.3f} | {m['wall_s']:.1f} | "
                     f"{m['int8_bytes'] / 1e6:.2f} |")
    fix, peer = runs["fix"], runs["peer"]
    drops = {"--decode model": fix["map50_95_drop_points"], "--decode host": runs["host"]["map50_95_drop_points"]}
    best = min(drops, key=drops.get)
    met = "yes" if drops[best] <= 1.5 else "no"
    lines += ["", "Goal: mAP50-95 drop <= 1.5 points with the head fix. Without the fix, boxes (pixels) and scores "
              "(0..1) share one int8 scale and the scores collapse. The fix splits the head convolution itself: "
              "x/y, w/h and score logits are computed by convolutions of their own, so each gets its own int8 scale "
              "(box logits no longer share one with objectness/class logits, which reach -15). Decoding in the "
              "model costs more than on the host: TFLite's int8 LOGISTIC has a fixed output step (1/256), and "
              "w, h = (2 sigmoid)^2 x anchor turns one step into ~anchor/64 px; the decoded boxes then share one "
              "int8 tensor (x, y, w, h up to ~1.6 x the input size: ~1.6 px per step at 256 px), which mAP50-95's "
              "tight IoU thresholds feel on 14-100 px objects. With --decode host the int8 model ends at the split "
              f"head convolutions and decode.onnx does that math in float. Goal met: {met} (best "
              f"{drops[best]:.2f} points, {best}).",
              "", "Our stages (s), head split: " + ", ".join(f"{k} {v:.1f}" for k, v in fix["stages"].items()),
              f"Wall time ours / onnx2tf -oiqt: {fix['wall_s'] / peer['wall_s']:.2f}x (peer writes "
              f"{len(peer['files'])} .tflite variants).", ""]
    return lines


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
