"""Pass/fail thresholds of verification: sane defaults, overridable by a file or by arguments."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from ..errors import InputError

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
    "qat_within_1_step": 0.99,     # QAT: int8 output values within one output step of the model's own simulation
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
    "qat_within_1_step": 0.99,
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
    """Failure messages for outputs whose cosine (mean over the samples with a signal) or SQNR (over all samples
    together) is below the limits; samples whose reference output is ~0 are named as skipped, not judged."""
    fails = []
    for name, m in outputs.items():
        judged = m.get("samples_judged", m.get("samples"))
        of = f" over {judged} of {m['samples']} samples" if judged != m.get("samples") else ""
        worst = ", ".join(f"{w['sample']} ({w['cosine']:.3f})" for w in m.get("worst_samples", [])[:3])
        worst = f"; worst samples: {worst}" if worst else ""
        skipped = m.get("skipped_samples") or []
        skip = (f"; {m.get('skipped_samples_total', len(skipped))} sample(s) with a ~0 reference output not judged "
                f"by cosine ({', '.join(str(x['sample']) for x in skipped[:3])})") if skipped else ""
        if limits.get("cosine") is not None and m["cosine"] < limits["cosine"]:
            fails.append(f"output '{name}': mean cosine {m['cosine']:.4f}{of} < {limits['cosine']}{worst}{skip}")
        if limits.get("sqnr_db") is not None and m["sqnr_db"] < limits["sqnr_db"]:
            steps = f", max error {m['max_abs_err_steps']:.1f} quantization steps" if "max_abs_err_steps" in m else ""
            fails.append(f"output '{name}': SQNR {m['sqnr_db']:.2f} dB over all samples < {limits['sqnr_db']} dB{steps}")
    return fails


def check_simulation(stages: list[dict[str, Any]], step: str, limits: Mapping[str, float | None]) -> list[str]:
    """Failure messages where the int8 outputs stray from a QAT model's own simulation (the ``step`` stage)."""
    fails = []
    for st in stages:
        if st.get("compared_with") == step:
            fails += check_within_steps(st.get("outputs", {}), limits, f"QAT simulation ({step})")
    return fails


def check_within_steps(outputs: Mapping[str, Mapping[str, Any]], limits: Mapping[str, float | None],
                       what: str = "QAT simulation") -> list[str]:
    """Failure messages for outputs with too few int8 values within one output step of ``what``."""
    limit = limits.get("qat_within_1_step")
    if limit is None:
        return []
    return [f"output '{name}': {m['within_1_step']:.2%} of int8 values within 1 output step of the {what} < "
            f"{limit:.0%} (largest gap {m['max_steps']:.0f} steps)"
            for name, m in outputs.items() if "within_1_step" in m and m["within_1_step"] < limit]
