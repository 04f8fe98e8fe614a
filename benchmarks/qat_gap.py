"""Issue 27: the MobileNetV2 QAT gap (BENCHMARKS.md once read "simulation 77.7 % vs int8 file 61.7 %") measured
against the true reference, every model pairwise on the same 300 held-out views (25 of each odd photo).

The QAT model is bench_qat's (``--cache`` saves/loads it: 40 steps of distillation take ~5-15 minutes on 2 cores).
Rows: the QDQ model as float fake-quant (ONNX Runtime, graph optimizations off: the reference), the same on ONNX
Runtime's default path (QLinear integer kernels: the old reference), the QAT weights with fake-quant removed
(``model_float.onnx``, what ``verify`` compares a QAT folder's int8 file with), and the int8 file; each against
the original float MobileNetV2 and against the simulation (top-1 agreement, mean logits cosine).

    .venv/bin/python -m benchmarks.qat_gap [--cache /tmp/mnv2_qat40.pt]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

SIM = "simulation (ORT, optimizations off: the reference)"


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def run(cache: Path | None) -> dict[str, Any]:
    import torch

    from benchmarks.bench_qat import CHECK_VIEWS, VERIFY_VIEWS, _extra_photos, train_qat
    from tflite_int8 import Runner, convert
    from tflite_int8.data.images import list_images
    from tflite_int8.data.readers import default_data_dir, open_reader
    from tflite_int8.runtime.reference import ort_session
    from tflite_int8.zoo.models import mobilenet_v2

    photos = list_images(default_data_dir()).paths
    calib, held = photos[0::2], photos[1::2]
    spec = mobilenet_v2.preprocess_spec
    with tempfile.TemporaryDirectory(prefix="qat-gap-") as tmp:
        tmp = Path(tmp)
        model, info = train_qat(calib + _extra_photos(tmp), steps=40, cache=cache)
        conv = convert(model, tmp / "qat", spec=spec, data=calib, views=CHECK_VIEWS)
        xs = [s.x for s in open_reader(held, spec, views=VERIFY_VIEWS, seed=1, warn_few=False)]
        with torch.no_grad():
            ref = np.concatenate([mobilenet_v2()(torch.from_numpy(x)).numpy() for x in xs])
        logits = {}
        for key, path, optimize in ((SIM, "model.onnx", False),
                                    ("ORT default optimizations (integer kernels: the old reference)", "model.onnx",
                                     True),
                                    ("QAT weights, fake-quant removed (model_float.onnx)", "model_float.onnx", False)):
            s = ort_session(conv.out_dir / path, optimize=optimize)
            name = s.get_inputs()[0].name
            logits[key] = np.concatenate([s.run(None, {name: x})[0] for x in xs])
        runner = Runner(conv.int8_path, layout="source")
        logits["int8 file"] = np.concatenate([next(iter(runner.feed({runner.inputs[0].name: x}).values()))
                                              for x in xs])
    rows = {k: {"top1_vs_float": float(np.mean(v.argmax(1) == ref.argmax(1))), "cosine_vs_float": _cosine(v, ref),
                "top1_vs_simulation": float(np.mean(v.argmax(1) == logits[SIM].argmax(1))),
                "cosine_vs_simulation": _cosine(v, logits[SIM])} for k, v in logits.items()}
    return {"training": info, "views": len(xs), "rows": rows}


def table(r: dict[str, Any]) -> list[str]:
    lines = ["| model (same 300 views) | top-1 vs float | cosine vs float | top-1 vs simulation | cosine vs simulation |",
             "|---|---|---|---|---|"]
    for k, m in r["rows"].items():
        lines.append(f"| {k} | {m['top1_vs_float']:.1%} | {m['cosine_vs_float']:.4f} | {m['top1_vs_simulation']:.1%} "
                     f"| {m['cosine_vs_simulation']:.4f} |")
    return lines


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, help="the fine-tuned QAT model (state dict): loaded if there, else saved")
    out = run(ap.parse_args().cache)
    print(json.dumps(out, indent=1))
    print("\n".join(table(out)))
