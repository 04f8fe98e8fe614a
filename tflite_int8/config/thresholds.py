"""Pass/fail thresholds of verification: sane defaults, overridable by a file or by arguments."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from ..errors import InputError

# A quantization-aware (QDQ) conversion is judged against its own simulation (the QDQ model as float fake-quant),
# not by "every output within one step": integer kernels round requantization ties differently and deep models
# grow those one-step differences (issue 27: MobileNetV2 quantized by ONNX Runtime, 27 % of logits within one step
# of the simulation, while int8 and simulation agree with the float model alike, top-1 83.3 % vs 82.2 %, cosine
# 0.981 vs 0.982).  Judged instead: the first tensors near the input, each computed locally (the simulation's op fed the
# int8 file's own input tensors), where a wrong parameter shows at once; and the task, int8 vs the float model
# no worse than the simulation's own vs the float model by more than a margin.
QAT_DEFAULTS: dict[str, float] = {
    "qat_within_1_step": 0.99,       # each of the first tensors, locally: share of values within one QAT step
    "qat_tensors": 3,                # how many fake-quantized tensors, in graph order from the input, are judged
    # cosine with the float model, int8 vs the simulation's own: rounding differences move it little (MobileNetV2
    # quantized by quantize_static, 60 held-out views: 0.962 vs 0.962; issue 27: 0.981 vs 0.982); a wrong scale
    # or weight grid costs far more
    "qat_cosine_margin": 0.02,
    # top-1 agreement with the float model, int8 vs the simulation's, in points (never less than one sample's
    # worth: on the 8 check samples of `convert` one flip is 12.5 points); measured on that MobileNetV2: 60.0 % vs
    # 63.3 %, near-ties flipping either way
    "qat_top1_margin_points": 5.0,
}

DEFAULTS: dict[str, float] = {
    "cosine": 0.95,                # mean cosine similarity of each int8 output with the float reference
    "sqnr_db": 10.0,               # mean signal-to-quantization-noise ratio of each output, dB
    "top1_agreement": 0.75,        # int8 top-1 class == float top-1 class
    "top5_agreement": 0.95,        # float top-1 class within the int8 top-5
    # top-1 agreement on the samples where the float model is confident (top-1 probability >= 0.5): a flip
    # there is an error a user sees, not a near-tie, so the bar is near 1 (one flip in 50 confident samples);
    # not judged when no sample is confident
    "top1_agreement_confident": 0.98,
    "accuracy_drop_points": 1.0,   # labelled accuracy, float minus int8, in percentage points
    "box_agreement": 0.90,         # detection: shown boxes (score >= 0.25) matched between float and int8
    "map50_95_drop_points": 1.5,   # detection: labelled mAP50-95, float minus int8, in points
    **QAT_DEFAULTS,                # quantization-aware conversions (above)
    "sequence_match": 0.90,        # ctc: lines whose int8 decoded text equals the float one
    "char_error_rate": 0.05,       # ctc: edit distance of the int8 text over the float text's length
    "pixel_agreement": 0.95,       # segment: pixels whose int8 class equals the float class
    "miou": 0.80,                  # segment: mean IoU of the int8 class map against the float one
    "mask_iou": 0.85,              # mask: IoU of the int8 binary mask against the float one
}


# The conversion's own int8 check (int8 vs float32 TFLite on a few check samples, judged over the samples as a
# whole): limits that only a broken int8 model misses; ``verify`` holds the real acceptance thresholds.
CHECK_DEFAULTS: dict[str, float] = {
    "cosine": 0.90,   # mean cosine per output over the check samples that have a signal
    "sqnr_db": 5.0,   # SQNR per output over all check samples together, dB
    # QAT conversions are judged against their own simulation instead (the float model is not their reference)
    **QAT_DEFAULTS,
}


def resolve_check_thresholds(given: Mapping[str, float | None] | None) -> dict[str, float | None]:
    """CHECK_DEFAULTS updated by ``given`` (None disables a check); unknown keys and non-numbers are errors."""
    out: dict[str, float | None] = dict(CHECK_DEFAULTS)
    for key, value in (given or {}).items():
        if key not in CHECK_DEFAULTS:
            raise InputError(f"unknown int8-check threshold {key!r}; known: {', '.join(CHECK_DEFAULTS)}")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise InputError(f"int8-check threshold {key} must be a number, got {value!r}")
        out[key] = None if value is None else float(value)
    return out


def resolve_thresholds(given: Mapping[str, float] | str | Path | None) -> dict[str, float]:
    """Defaults updated by a mapping or a .json/.toml file; unknown keys and non-numbers are errors."""
    values: Mapping[str, Any]
    source = "thresholds"
    if given is None:
        return dict(DEFAULTS)
    if isinstance(given, (str, Path)):
        path, source = Path(given), str(given)
        if not path.is_file():
            raise InputError(f"thresholds file {path} does not exist")
        try:
            if path.suffix.lower() == ".toml":
                import tomllib

                values = tomllib.loads(path.read_text())
            else:
                values = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read thresholds file {path}: {exc}") from None
        if isinstance(values, dict) and isinstance(values.get("thresholds"), dict):
            values = values["thresholds"]
    else:
        values = given
    if not isinstance(values, Mapping):
        raise InputError(f"{source}: expected a table of name = number")
    out = dict(DEFAULTS)
    for key, value in values.items():
        if key not in DEFAULTS:
            raise InputError(f"{source}: unknown threshold {key!r}; known: {', '.join(DEFAULTS)}")
        if value is None:
            out[key] = None  # type: ignore[assignment]  # disables the check
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{source}: threshold {key} must be a number, got {value!r}")
        out[key] = float(value)
    return out


def check_outputs(outputs: Mapping[str, Mapping[str, Any]], limits: Mapping[str, float | None]) -> list[str]:
    """Failure messages for outputs whose cosine (mean over the samples with a signal; over the samples as one
    vector when each has one value) or SQNR (over all samples together) is below the limits; samples whose
    reference output is ~0 are named as skipped, not judged."""
    fails = []
    for name, m in outputs.items():
        if limits.get("cosine") is not None and m["cosine"] < limits["cosine"]:
            fails.append(_cosine_failure(name, m, limits["cosine"]))
        if limits.get("sqnr_db") is not None and m["sqnr_db"] < limits["sqnr_db"]:
            steps = f", max error {m['max_abs_err_steps']:.1f} quantization steps" if "max_abs_err_steps" in m else ""
            sqnr = f"{m['sqnr_db']:.2f}" if round(m["sqnr_db"], 2) < limits["sqnr_db"] else f"{m['sqnr_db']:.5f}"
            fails.append(f"output '{name}': SQNR {sqnr} dB over all samples < {limits['sqnr_db']} dB{steps}")
    return fails


def _cosine_failure(name: str, m: Mapping[str, Any], limit: float) -> str:
    worst = m.get("worst_samples", [])[:3]
    if m.get("one_value_per_sample"):  # a probability or score per sample: no per-sample direction
        errors = ", ".join(f"{w['sample']} ({w['max_abs_err']:.3f})" for w in worst)
        return (f"output '{name}': cosine {m['cosine']:.4f} over the samples as one vector (one value per sample) < "
                f"{limit}" + (f"; largest errors: {errors}" if errors else ""))
    judged = m.get("samples_judged", m.get("samples"))
    of = f" over {judged} of {m['samples']} samples" if judged != m.get("samples") else ""
    cosines = ", ".join(f"{w['sample']} ({w['cosine']:.3f})" for w in worst)
    skipped = m.get("skipped_samples") or []
    skip = (f"; {m.get('skipped_samples_total', len(skipped))} sample(s) with a ~0 reference output not judged "
            f"by cosine ({', '.join(str(x['sample']) for x in skipped[:3])})") if skipped else ""
    return (f"output '{name}': mean cosine {m['cosine']:.4f}{of} < {limit}"
            + (f"; worst samples: {cosines}" if cosines else "") + skip)


def check_qat(check: Mapping[str, Any], limits: Mapping[str, float | None]) -> list[str]:
    """Failure messages of a QAT conversion against its simulation (``check``: convert.qat_check's ``tensors`` and
    ``outputs``): the first ``qat_tensors`` fake-quantized tensors, locally, and each output's task figures
    against the simulation's own (None disables a limit)."""
    return _check_tensors(check.get("tensors", []), limits) + [
        f for name, m in check.get("outputs", {}).items() for f in _check_task(name, m, limits)]


def _check_tensors(rows: list[Mapping[str, Any]], limits: Mapping[str, float | None]) -> list[str]:
    limit, count = limits.get("qat_within_1_step"), limits.get("qat_tensors")
    if limit is None or count is None:
        return []
    first = list(dict.fromkeys(r["onnx"] for r in rows))[:int(count)]
    for r in rows:
        if r["onnx"] in first and r["local_within_1_step"] < limit:
            return [f"tensor '{r['onnx']}' (TFLite '{r['tflite']}'), the first that departs from the QAT simulation: "
                    f"{r['local_within_1_step']:.2%} of its int8 values within 1 step of the simulation's op fed the "
                    f"int8 file's own inputs < {limit:.0%} (largest gap {r['local_max_steps']:.0f} steps); its "
                    f"scale, zero point or weights differ from the QDQ model's (conversion.json qat section; "
                    f"limit: --check-min-qat-within-1-step / --min-qat-within-1-step)"]
    return []


def _check_task(name: str, m: Mapping[str, Any], limits: Mapping[str, float | None]) -> list[str]:
    q, sim = m.get("int8_vs_float", {}), m.get("simulation_vs_float", {})
    fails = []
    margin = limits.get("qat_cosine_margin")
    if margin is not None and "cosine" in q and q["cosine"] < sim["cosine"] - margin:
        fails.append(f"output '{name}': cosine with the float model {q['cosine']:.4f}, the QAT simulation's "
                     f"{sim['cosine']:.4f}: more than {margin} worse (qat_cosine_margin)")
    points = limits.get("qat_top1_margin_points")
    if points is not None and "top1_agreement" in q and "top1_agreement" in sim:
        allowed = max(points / 100, 1 / max(m.get("samples", 1), 1))  # never less than one sample's worth
        if q["top1_agreement"] < sim["top1_agreement"] - allowed - 1e-9:
            fails.append(f"output '{name}': top-1 agreement with the float model {q['top1_agreement']:.1%}, the "
                         f"QAT simulation's {sim['top1_agreement']:.1%}: more than {allowed * 100:.1f} points worse "
                         f"(qat_top1_margin_points)")
    return fails
