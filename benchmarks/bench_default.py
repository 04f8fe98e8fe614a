"""Which int8 recipe should `convert` use by default?  Candidates measured on all three benchmark models.

EfficientNet-Lite0 and MobileNetV2: calibration on the even half of the bundled photos (10 views each), top-1
agreement (overall and where the float model is confident: top-1 probability >= 0.5) and logits cosine on 25 views
of each odd photo (300 samples never calibrated on), against the float model (ONNX Runtime on the exported ONNX).
The detector: bench_detector's data (200 generated calibration images, 300 labelled val images), mAP50-95 drop.
Each candidate's conversion wall time is measured in the same run, as a ratio to today's default (min/max ranges).
Rule (issue 19): the new default is the most accurate candidate whose conversion time stays <= 2x today's and that
does not make the detector's mAP50-95 drop worse.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import confident_cell

CANDIDATES = {"minmax": "min/max activation ranges (the converter's own)",
              "mse": "MSE-optimal activation ranges (--ranges mse)"}
IMAGENET = {"efficientnet-lite0": "tflite_int8.zoo:efficientnet_lite0", "mobilenet-v2": "tflite_int8.zoo:mobilenet_v2"}
CALIB_VIEWS, VERIFY_VIEWS = 10, 25
MAX_TIME_RATIO = 2.0


def classification_scores(reference: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    """Top-1 agreement overall and on confident samples (verify's own rule), mean cosine: verify's classification
    task and metrics on ``(samples, classes)`` logits."""
    from tflite_int8.runtime.metrics import compare
    from tflite_int8.verify.tasks import ClassificationTask

    task = ClassificationTask("logits")
    records = [task.record({"logits": r}, {"logits": c}) for r, c in zip(reference, candidate)]
    s = task.summarize([str(i) for i in range(len(records))], records, [None] * len(records))
    return {"samples": s["samples"], "top1_agreement": s["top1_agreement"], "confident_samples": s["confident_samples"],
            "top1_agreement_confident": s["top1_agreement_confident"],
            "cosine": float(np.mean([compare(r, c)["cosine"] for r, c in zip(reference, candidate)]))}


def score_classifier(reference_onnx: Any, tflite: Any, spec: Any, samples: list[np.ndarray]) -> dict[str, Any]:
    from tflite_int8.runtime.adapter import Runner
    from tflite_int8.runtime.reference import run_onnx

    ref = np.concatenate([r[0] for r in run_onnx(reference_onnx, samples)])
    runner = Runner(tflite, spec, trusted=True)
    got = np.concatenate([next(iter(runner(x).values())) for x in samples])
    return classification_scores(ref, got)


def run_imagenet() -> dict[str, Any]:
    from tflite_int8 import Recipe, convert
    from tflite_int8.data.images import list_images
    from tflite_int8.data.readers import default_data_dir, open_reader

    photos = list_images(default_data_dir()).paths
    calib, held_out = photos[0::2], photos[1::2]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-default-") as tmp:
        for name, factory in IMAGENET.items():
            rows = {}
            (Path(tmp) / name).mkdir()
            for cand in CANDIDATES:
                t = time.perf_counter()
                conv = convert(factory, Path(tmp) / name / cand, data=calib, views=CALIB_VIEWS,
                               recipe=Recipe(ranges=cand))
                wall = time.perf_counter() - t
                samples = [s.x for s in open_reader(held_out, _spec(conv), views=VERIFY_VIEWS,
                                                    seed=1, warn_few=False)]
                rows[cand] = {"wall_s": wall, "quantize_s": conv.report["stages"]["quantize"]["seconds"],
                              **score_classifier(conv.out_dir / "model.onnx", conv.int8_path, _spec(conv), samples)}
            out[name] = rows
    return out


def _spec(conv: Any) -> Any:
    from tflite_int8 import load_conversion

    return load_conversion(conv.out_dir)[1]


def run_detector() -> dict[str, Any]:
    from benchmarks.bench_detector import CALIB, MODEL_V5, VAL
    from tflite_int8 import Recipe, convert, verify
    from tflite_int8.zoo.shapes_data import write_coco

    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench-default-det-") as tmp:
        tmp = Path(tmp)
        labels = write_coco(tmp / "val", "val", VAL)
        write_coco(tmp / "calib", "train", CALIB, seed=7)
        for cand in CANDIDATES:
            t = time.perf_counter()
            convert(MODEL_V5, tmp / cand, data=tmp / "calib" / "images", task="detect", recipe=Recipe(ranges=cand))
            wall = time.perf_counter() - t
            d = verify(tmp / cand, data=tmp / "val" / "images", labels=labels, layers=False, workers=2).report
            rows[cand] = {"wall_s": wall, **{k: d["detection"][k] for k in
                                            ("map50_95_float", "map50_95_int8", "map50_95_drop_points", "box_agreement")}}
    return rows


def run() -> dict[str, Any]:
    return {"imagenet": run_imagenet(), "detector": run_detector()}


def decide(r: dict[str, Any]) -> tuple[str, list[str]]:
    """The best candidate by the rule in the module docstring, and why each other one lost."""
    base = "minmax"
    reasons, ok = [], []
    for cand in CANDIDATES:
        times = [m[cand]["wall_s"] / m[base]["wall_s"] for m in r["imagenet"].values()]
        times.append(r["detector"][cand]["wall_s"] / r["detector"][base]["wall_s"])
        worse_det = r["detector"][cand]["map50_95_drop_points"] > r["detector"][base]["map50_95_drop_points"] + 0.05
        if max(times) > MAX_TIME_RATIO:
            reasons.append(f"{cand}: conversion {max(times):.2f}x today's (limit {MAX_TIME_RATIO}x)")
        elif worse_det:
            reasons.append(f"{cand}: detector mAP50-95 drop {r['detector'][cand]['map50_95_drop_points']:.2f} points "
                           f"vs {r['detector'][base]['map50_95_drop_points']:.2f}")
        else:
            ok.append(cand)

    def accuracy(cand: str) -> float:  # the worse of the two ImageNet models decides
        return min(m[cand]["top1_agreement"] for m in r["imagenet"].values())

    best = max(ok, key=accuracy)
    return best, reasons


def table(r: dict[str, Any]) -> list[str]:
    lines = ["| model | recipe | top-1 agreement | confident (n) | logits cosine | conversion s (ratio) |",
             "|---|---|---|---|---|---|"]
    for model, rows in r["imagenet"].items():
        for cand, m in rows.items():
            lines.append(f"| {model} | {cand} | {m['top1_agreement']:.1%} | {confident_cell(m)} | {m['cosine']:.4f} | "
                         f"{m['wall_s']:.0f} ({m['wall_s'] / rows['minmax']['wall_s']:.2f}x) |")
    lines += ["", "| detector recipe | mAP50-95 float | int8 | drop (points) | box agreement | conversion s (ratio) |",
              "|---|---|---|---|---|---|"]
    det = r["detector"]
    for cand, m in det.items():
        lines.append(f"| {cand} | {m['map50_95_float']:.4f} | {m['map50_95_int8']:.4f} | "
                     f"{m['map50_95_drop_points']:.2f} | {m['box_agreement']:.3f} | {m['wall_s']:.0f} "
                     f"({m['wall_s'] / det['minmax']['wall_s']:.2f}x) |")
    best, reasons = decide(r)
    lines += ["", f"Best default by the rule (most accurate on the worse ImageNet model, conversion <= "
              f"{MAX_TIME_RATIO}x today's, detector drop not worse): **{best}** ({CANDIDATES[best]})."
              + (" Not eligible: " + "; ".join(reasons) + "." if reasons else ""), ""]
    return lines


if __name__ == "__main__":
    res = run()
    print(json.dumps(res, indent=2))
    print("\n".join(table(res)))
