"""Activation-aware rounding on MobileNetV2: our AdaRound + QDrop (block by block) vs aimet-onnx's AdaRound and
SeqMSE, measured in the same run (issue 19, item 2).

Same split as bench_recover: calibration on the even half of the bundled photos (10 views each, 120 samples: the
rounding and the converter's calibration both use them), verification on 25 views of each odd photo (300 samples
never calibrated on), against the float model (ONNX Runtime on the exported ONNX).  Every row is the float ONNX
with rounded weights, converted with the same recipe (MSE activation ranges), so only the weights differ.
Rows: nearest rounding (the converter's own), ours, aimet AdaRound, aimet SeqMSE.  Per row: top-1 agreement overall
and where the float model is confident (top-1 probability >= 0.5), mean logits cosine, weights off the converter's
grid (re-rounded by it), time to round, latency ratio to the baseline int8 file (convert --ranges minmax; interleaved,
1 thread, XNNPACK, median).  The bundled photos carry no ImageNet labels, so there is no accuracy column: agreement
with the float model is the measure.

    .venv/bin/python -m benchmarks.bench_adaround [--iterations N] [--aimet-iterations N] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from benchmarks.common import confident_cell

CALIB_VIEWS, VERIFY_VIEWS = 10, 25
MODEL = "tflite_int8.zoo:mobilenet_v2"


def _rows(iterations: int, aimet_iterations: int, aimet_samples: int, seqmse_samples: int) -> dict[str, tuple[str, Callable[..., dict[str, Any]]]]:
    from benchmarks.aimet_peer import round_with_aimet
    from tflite_int8.recover.adaround import adaround

    return {
        "ours": (f"AdaRound + QDrop block by block, {iterations} steps per block (tflite_int8.recover.adaround)",
                 lambda src, dst, s: adaround(src, dst, s, iterations=iterations)),
        "aimet-adaround": (f"aimet-onnx apply_adaround, {aimet_iterations} steps per layer, first {aimet_samples} "
                           "calibration samples",
                           lambda src, dst, s: round_with_aimet(src, dst, s[:aimet_samples], "adaround",
                                                                aimet_iterations)),
        "aimet-seqmse": (f"aimet-onnx apply_seq_mse, 20 candidates, first {seqmse_samples} calibration samples",
                         lambda src, dst, s: round_with_aimet(src, dst, s[:seqmse_samples], "seqmse")),
    }


def run(iterations: int = 200, aimet_iterations: int = 200, aimet_samples: int = 120, seqmse_samples: int = 32, only: list[str] | None = None,
        save: Callable[[dict], None] = lambda r: None) -> dict[str, Any]:
    from benchmarks.aimet_peer import weights_off_grid
    from benchmarks.bench_default import score_classifier
    from tflite_int8 import Recipe, convert, load_conversion
    from tflite_int8.data.images import list_images
    from tflite_int8.data.readers import default_data_dir, open_reader
    from tflite_int8.runtime.latency import conditions, median_latency_ms

    photos = list_images(default_data_dir()).paths
    calib, held_out = photos[0::2], photos[1::2]
    mse = Recipe(ranges="mse")
    out: dict[str, Any] = {"conditions": conditions(), "rows": {}}
    with tempfile.TemporaryDirectory(prefix="bench-adaround-") as tmp:
        tmp = Path(tmp)
        base = convert(MODEL, tmp / "float-model", data=calib, views=CALIB_VIEWS, recipe=Recipe(ranges="minmax"))
        _, spec = load_conversion(base.out_dir)
        onnx_path = base.out_dir / "model.onnx"
        samples = [s.x for s in open_reader(calib, spec, views=CALIB_VIEWS, warn_few=False)]
        test = [s.x for s in open_reader(held_out, spec, views=VERIFY_VIEWS, seed=1, warn_few=False)]

        def measure(name: str, how: str, src: Path, info: dict[str, Any], conv: Any = None) -> None:
            conv = conv or convert(src, tmp / name, spec=spec, data=calib, views=CALIB_VIEWS, recipe=mse)
            base_ms, ms = median_latency_ms([base.int8_path, conv.int8_path])
            out["rows"][name] = {"how": how, **info, "weights_off_the_converter_grid": weights_off_grid(src), **score_classifier(onnx_path, conv.int8_path, spec, test),
                                 "latency_ms": ms, "baseline_ms": base_ms, "latency_ratio": ms / base_ms}
            save(out)

        measure("baseline", "convert --ranges minmax (no rounding, the latency reference)", onnx_path, {"seconds": 0.0}, base)
        measure("nearest", "nearest rounding (the converter's own), MSE ranges", onnx_path, {"seconds": 0.0})
        for name, (how, fn) in _rows(iterations, aimet_iterations, aimet_samples, seqmse_samples).items():
            if only and name not in only:
                continue
            t = time.perf_counter()
            info = fn(onnx_path, tmp / f"{name}.onnx", samples)
            info["seconds"] = round(time.perf_counter() - t, 1)
            measure(name, how + ", MSE ranges", tmp / f"{name}.onnx", info)
    return out


def table(r: dict[str, Any]) -> list[str]:
    lines = ["| rounding | top-1 agreement | confident (n) | logits cosine | weights off the grid | time to round s | "
             "ms (1 thread) | x baseline int8 |", "|---|---|---|---|---|---|---|---|"]
    for name, m in r["rows"].items():
        lines.append(f"| {name}: {m['how']} | {m['top1_agreement']:.1%} | {confident_cell(m)} | {m['cosine']:.4f} | "
                     f"{m['weights_off_the_converter_grid']} | {m['seconds']:.0f} | {m['latency_ms']:.2f} | "
                     f"{m['latency_ratio']:.2f}x |")
    return lines


def section(r: dict[str, Any]) -> list[str]:
    """The BENCHMARKS.md section: machine and CPU flags, then the table."""
    from benchmarks.common import machine

    cpu = r["conditions"]["cpu"]
    return ["## Activation-aware rounding: ours vs aimet-onnx (MobileNetV2, `python -m benchmarks.bench_adaround`)", "",
            f"{machine()}; CPU flags {', '.join(cpu.get('int8_flags', cpu.get('flags', [])))}. Calibration: even "
            f"half of the bundled photos x {CALIB_VIEWS} views (120 samples, used by every rounding and by the "
            f"converter); verification: {VERIFY_VIEWS} views of each odd photo (300 samples), against the float "
            "model. Every row but the baseline: the same conversion with MSE activation ranges; only the weights "
            "differ. Confident: samples where the float model's top-1 probability >= 0.5. Latency: interleaved with "
            "the baseline int8 file, 1 thread, XNNPACK, median.", "", *table(r), ""]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=200, help="steps per block of our rounding (recover's default)")
    ap.add_argument("--aimet-iterations", type=int, default=200)
    ap.add_argument("--aimet-samples", type=int, default=120, help="calibration samples aimet's AdaRound gets")
    ap.add_argument("--seqmse-samples", type=int, default=32, help="calibration samples aimet's SeqMSE gets")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()

    def save(res: dict) -> None:
        if a.json:
            a.json.write_text(json.dumps(res, indent=2, default=str))

    res = run(a.iterations, a.aimet_iterations, a.aimet_samples, a.seqmse_samples, a.only, save)
    save(res)
    print("\n".join(table(res)))
