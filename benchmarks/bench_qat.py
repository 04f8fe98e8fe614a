"""Quantization-aware training vs the PTQ recipes on MobileNetV2 (ImageNet weights), same held-out views.

No labelled ImageNet images can be had offline, so the labels are the float model's own: MobileNetV2 is
fine-tuned with torch.ao FX-mode QAT by distillation from the float model (KL divergence to its soft outputs,
the teacher's outputs computed once and cached) on random views of the even half of the bundled photos plus
three skimage photos that are not bundled (colorwheel, logo, horse); the odd half stays held out.  The QAT
setup is tflite_int8's TFLite-matched one (``tflite_int8.prepare_qat_fx``: symmetric per-channel
int8 weights on -127..127 with zero point 0, 256-level activations, one fake-quant after each ReLU6 that
TFLite fuses into its conv); ``--setup pytorch`` trains with PyTorch's default ``onednn`` QAT mapping instead,
for comparison.  The observers are first run on a few batches (no gradient), then train with the weights
for the first third of the steps, then are frozen.

Every int8 model is measured like bench_recover: 25 views of each odd photo (300 samples), against the float
PyTorch model (top-1 / top-5 agreement, overall and where the float model is confident; logits cosine;
"accuracy" against the float model's labels is the top-1 agreement).

Rows: PTQ with ``--ranges minmax``, with ``--ranges mse`` (the default), recover's ``weight-rounding`` (GPTQ + bias correction,
MSE ranges) — each calibrated on the even photos x 10 views — and the QAT model converted with its own
scales (``quantization_source: qat``), whose int8 file is also checked against its own QDQ simulation
(values within 1 output step, overall and tensor by tensor).
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import confident_cell

CALIB_VIEWS, VERIFY_VIEWS, TRAIN_VIEWS, CHECK_VIEWS = 10, 25, 40, 2
QAT_ROW = "QAT (own scales)"
MODEL = "tflite_int8.zoo:mobilenet_v2"
STEPS, BATCH, LR = 240, 8, 3e-5  # Adam; observers train for the first third of the steps, then are frozen
OBSERVER_BATCHES = 8  # no-gradient batches that set the observers' first ranges
EXTRA_PHOTOS = ("colorwheel", "logo", "horse")  # skimage photos that representative_data/ does not hold


def _extra_photos(folder: Path) -> list[Path]:
    import skimage.data
    from PIL import Image

    paths = []
    for name in EXTRA_PHOTOS:
        im = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        paths.append(folder / f"skimage_{name}.png")
        im.save(paths[-1])
    return paths


def prepared_mobilenet_v2(example: Any, setup: str = "tflite") -> Any:
    """MobileNetV2 with ImageNet weights, prepared for FX-mode QAT (train mode, BN statistics frozen);
    ``setup``: ``tflite`` (tflite_int8's TFLite-matched setup) or ``pytorch`` (PyTorch's onednn default)."""
    import torch
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_qat_fx

    from tflite_int8 import prepare_qat_fx as tflite_prepare_qat_fx
    from tflite_int8.zoo.models import mobilenet_v2

    if setup == "tflite":
        model = tflite_prepare_qat_fx(mobilenet_v2().train(), (example,))
    else:
        model = prepare_qat_fx(mobilenet_v2().train(), get_default_qat_qconfig_mapping("onednn"), (example,))
    return model.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)  # a few photos: keep ImageNet's BN statistics


def _teacher_outputs(pool: np.ndarray, cache: Path | None) -> Any:
    """The float model's logits on the training pool, computed once (cached beside ``cache``)."""
    import torch

    from tflite_int8.zoo.models import mobilenet_v2

    path = cache.with_name(f"{cache.stem}_teacher_{len(pool)}.npy") if cache is not None else None
    if path is not None and path.is_file():
        return torch.from_numpy(np.load(path))
    teacher = mobilenet_v2()
    with torch.no_grad():
        targets = torch.cat([teacher(torch.from_numpy(pool[i:i + 32])) for i in range(0, len(pool), 32)])
    if path is not None:
        np.save(path, targets.numpy())
    return targets


def train_qat(train_photos: list[Path], steps: int = STEPS, seed: int = 0, cache: Path | None = None,
              setup: str = "tflite") -> tuple[Any, dict[str, Any]]:
    """MobileNetV2 fine-tuned with FX-mode QAT by distillation from its float self; the prepared module.
    ``cache``: a state dict saved by an earlier run with the same settings is loaded instead of training."""
    import torch

    from tflite_int8.data.readers import open_reader
    from tflite_int8.zoo.models import mobilenet_v2

    torch.manual_seed(seed)
    spec = mobilenet_v2.preprocess_spec
    pool = np.stack([s.x[0] for s in open_reader(train_photos, spec, views=TRAIN_VIEWS, seed=3, warn_few=False)])
    model = prepared_mobilenet_v2(torch.from_numpy(pool[:1]), setup)
    if cache is not None and cache.is_file():
        model.load_state_dict(torch.load(cache, weights_only=True))
        return model.eval(), json.loads(cache.with_suffix(".json").read_text())
    t0 = time.perf_counter()
    targets = _teacher_outputs(pool, cache)
    teacher_seconds = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for _ in range(OBSERVER_BATCHES):
            model(torch.from_numpy(pool[rng.choice(len(pool), BATCH, replace=False)]))
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    t0, losses = time.perf_counter(), []
    for step in range(steps):
        if step == steps // 3:
            model.apply(torch.ao.quantization.disable_observer)  # scales settle; weights keep learning
        idx = rng.choice(len(pool), BATCH, replace=False)
        logits = model(torch.from_numpy(pool[idx]))
        loss = torch.nn.functional.kl_div(torch.log_softmax(logits, 1), torch.softmax(targets[idx], 1),
                                          reduction="batchmean")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if (step + 1) % 20 == 0 or step + 1 == steps:  # progress on long work (minutes on a CPU)
            print(f"QAT step {step + 1}/{steps}: loss {np.mean(losses[-20:]):.4f}, "
                  f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t0
    info = {"setup": setup, "steps": steps, "batch": BATCH, "lr": LR, "observer_batches": OBSERVER_BATCHES,
            "pool": len(pool), "teacher_seconds": round(teacher_seconds, 1), "train_seconds": round(seconds, 1),
            "seconds_per_step": round(seconds / max(steps, 1), 2), "loss_first_20": float(np.mean(losses[:20])),
            "loss_last_20": float(np.mean(losses[-20:]))}
    if cache is not None:
        torch.save(model.state_dict(), cache)
        cache.with_suffix(".json").write_text(json.dumps(info))
    return model.eval(), info


def _measure(tflite: Path, spec: Any, held_out: list[Path]) -> dict[str, Any]:
    from tflite_int8 import verify

    res = verify(tflite=tflite, reference=MODEL, spec=spec, data=held_out, views=VERIFY_VIEWS, seed=1, layers=False,
                 workers=2, thresholds={"top5_agreement": None, "sqnr_db": None})
    c, out = res.report["classification"], next(iter(res.report["outputs"].values()))
    return {"top1_agreement": c["top1_agreement"], "top5_agreement": c["top5_agreement"],
            "top1_agreement_confident": c["top1_agreement_confident"], "confident_samples": c["confident_samples"],
            "samples": c.get("samples"), "cosine": out["cosine"], "sqnr_db": out["sqnr_db"],
            "bytes": tflite.stat().st_size}


def _ptq_rows(tmp: Path, calib: list[Path], held_out: list[Path], spec: Any) -> dict[str, Any]:
    """PTQ with min/max ranges, with MSE ranges (the default), and recover's weight rounding (GPTQ + bias correction, MSE)."""
    from tflite_int8 import Recipe, convert
    from tflite_int8.data.readers import open_reader
    from tflite_int8.recover.weight_rounding import round_weights

    rows: dict[str, Any] = {}
    t = time.perf_counter()
    base = convert(MODEL, tmp / "ptq", data=calib, views=CALIB_VIEWS, recipe=Recipe(ranges="minmax"))
    rows["PTQ --ranges minmax"] = _measure(base.int8_path, spec, held_out) | {"seconds": time.perf_counter() - t}
    t = time.perf_counter()
    mse = convert(MODEL, tmp / "mse", data=calib, views=CALIB_VIEWS, recipe=Recipe(ranges="mse"))
    rows["PTQ --ranges mse"] = _measure(mse.int8_path, spec, held_out) | {"seconds": time.perf_counter() - t}
    t = time.perf_counter()
    samples = [s.x for s in open_reader(calib, spec, views=CALIB_VIEWS, num_samples=128, seed=0, warn_few=False)]
    round_weights(tmp / "ptq" / "model.onnx", tmp / "rounded.onnx", samples)
    wr = convert(tmp / "rounded.onnx", tmp / "wr", spec=spec, data=calib, views=CALIB_VIEWS,
                 recipe=Recipe(ranges="mse"))
    rows["PTQ weight-rounding (recover)"] = (_measure(wr.int8_path, spec, held_out)
                                             | {"seconds": time.perf_counter() - t})
    return rows


def run(steps: int = STEPS, cache: Path | None = None, ptq: bool = True, setup: str = "tflite") -> dict[str, Any]:
    """Every row (``ptq=False``: the QAT row alone, for a first figure on a busy machine)."""
    from tflite_int8 import convert, verify
    from tflite_int8.data.images import list_images
    from tflite_int8.data.readers import default_data_dir
    from tflite_int8.zoo.models import mobilenet_v2

    photos = list_images(default_data_dir()).paths
    calib, held_out = photos[0::2], photos[1::2]
    spec = mobilenet_v2.preprocess_spec
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-qat-") as tmp:
        tmp = Path(tmp)
        if ptq:
            rows.update(_ptq_rows(tmp, calib, held_out, spec))
        extra = _extra_photos(tmp)
        model, training = train_qat(calib + extra, steps=steps, cache=cache, setup=setup)
        t = time.perf_counter()
        qat = convert(model, tmp / "qat", spec=spec, data=calib, views=CHECK_VIEWS)  # data: for the checks only
        rows[QAT_ROW] = _measure(qat.int8_path, spec, held_out) | {"seconds": time.perf_counter() - t}
        own = verify(tmp / "qat", data=held_out, views=VERIFY_VIEWS, seed=1, workers=2,
                     thresholds={"top5_agreement": None, "sqnr_db": None})
        sim = next(st for st in own.report["stages"] if st.get("compared_with") == "qat-simulation")["outputs"]
        fq = next(st for st in own.report["stages"] if st["step"] == "qat-simulation")["outputs"]
        section = qat.report["qat"]
        result = {"rows": rows, "training": training,
                  "qat_vs_simulation": next(iter(sim.values())),
                  "qat_float_vs_simulation_top1": own.report["classification"]["top1_agreement"],
                  "qat_simulation_cosine_vs_its_float": next(iter(fq.values()))["cosine"],
                  "tensors_vs_simulation": [{k: r[k] for k in ("onnx", "exact", "within_1_step", "max_steps")}
                                            for r in own.report.get("qat_layers", [])],
                  "qat_params": {k: section[k] for k in ("activations_exact", "activations_in_tflite",
                                                         "weights_exact", "weights_in_tflite")},
                  "adjustments": [a for a in qat.report["adjustments"] if "weight" in a or "activation" in a]}
    return result


def table(r: dict[str, Any]) -> list[str]:
    lines = ["| model | top-1 agreement | top-1, confident samples | top-5 agreement | mean logits cosine | SQNR dB | "
             "size MB |", "|---|---|---|---|---|---|---|"]
    for name, m in r["rows"].items():
        lines.append(f"| {name} | {m['top1_agreement']:.1%} | {confident_cell(m, 'n/a')} | "
                     f"{m['top5_agreement']:.1%} | {m['cosine']:.4f} | {m['sqnr_db']:.1f} | {m['bytes'] / 1e6:.2f} |")
    ptq = {k: v for k, v in r["rows"].items() if k.startswith("PTQ")}
    q = r["rows"][QAT_ROW]
    if ptq:
        best = max(ptq, key=lambda k: (ptq[k]["top1_agreement"], ptq[k]["cosine"]))
        gain = 100 * (q["top1_agreement"] - ptq[best]["top1_agreement"])
        lines += ["", f"QAT {'beats' if gain > 0 else 'does not beat'} the best PTQ recipe ({best}): top-1 "
                  f"agreement {q['top1_agreement']:.1%} vs {ptq[best]['top1_agreement']:.1%} ({gain:+.1f} points), "
                  f"logits cosine {q['cosine']:.4f} vs {ptq[best]['cosine']:.4f}."]
    s, p, t = r["qat_vs_simulation"], r["qat_params"], r["training"]
    lines += ["", f"QAT int8 file vs its own QDQ simulation (ONNX Runtime), same 300 views: {s['exact']:.2%} of output "
              f"values equal, {s['within_1_step']:.2%} within 1 output step (largest gap {s['max_steps']:.0f}); "
              f"{p['activations_exact']} of {p['activations_in_tflite']} activation scales and {p['weights_exact']} of "
              f"{p['weights_in_tflite']} weight tensors exactly the trained ones (the others per tensor in "
              f"conversion.json `adjustments`). Training ({t['setup']} setup): {t['steps']} steps of {t['batch']} "
              f"views, {t['train_seconds']:.0f} s ({t['seconds_per_step']} s/step), distillation loss "
              f"{t['loss_first_20']:.3f} -> {t['loss_last_20']:.3f}.", ""]
    return lines


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=STEPS, help=f"QAT fine-tuning steps (default {STEPS})")
    ap.add_argument("--cache", type=Path, help="save the fine-tuned QAT model here (state dict), or load it if there")
    ap.add_argument("--qat-only", action="store_true", help="skip the PTQ rows (a first QAT figure on a busy machine)")
    ap.add_argument("--setup", choices=("tflite", "pytorch"), default="tflite",
                    help="QAT setup: tflite_int8's TFLite-matched one (default) or PyTorch's onednn default")
    args = ap.parse_args()
    out = run(args.steps, args.cache, ptq=not args.qat_only, setup=args.setup)
    print(json.dumps(out, indent=2, default=str))
    print("\n".join(table(out)))
