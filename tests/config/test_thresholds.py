"""Verification thresholds: defaults, files, validation, and the checks they drive."""
from __future__ import annotations

import pytest

from tflite_int8.errors import InputError
from tflite_int8.config.thresholds import CHECK_DEFAULTS, DEFAULTS, check_outputs, check_qat, resolve_thresholds


def test_defaults_and_overrides(tmp_path):
    assert resolve_thresholds(None) == DEFAULTS
    toml = tmp_path / "t.toml"
    toml.write_text("[thresholds]\ncosine = 0.99\ntop1_agreement = 0.9\n")
    got = resolve_thresholds(toml)
    assert got["cosine"] == 0.99 and got["top1_agreement"] == 0.9 and got["sqnr_db"] == DEFAULTS["sqnr_db"]
    assert resolve_thresholds({"sqnr_db": None})["sqnr_db"] is None  # a check can be switched off


@pytest.mark.parametrize("given, message", [({"cosin": 0.9}, "unknown threshold 'cosin'"),
                                            ({"cosine": "high"}, "must be a number"),
                                            ({"cosine": True}, "must be a number")])
def test_bad_thresholds(given, message):
    with pytest.raises(InputError, match=message):
        resolve_thresholds(given)


def test_output_checks_name_the_output_and_worst_samples():
    outputs = {"logits": {"cosine": 0.9, "sqnr_db": 12.0, "worst_samples": [{"sample": "cat.jpg", "cosine": 0.5}]}}
    fails = check_outputs(outputs, DEFAULTS)
    assert len(fails) == 1 and "'logits'" in fails[0] and "0.9000 < 0.95" in fails[0] and "cat.jpg (0.500)" in fails[0]
    assert check_outputs(outputs, dict(DEFAULTS, cosine=0.85)) == []


def _qat_row(name: str, local: float) -> dict:
    return {"onnx": name, "tflite": f"tfl/{name}", "local_within_1_step": local, "local_max_steps": 3.0}


def test_qat_judges_the_first_tensors_and_the_task_against_the_simulation():
    tensors = [_qat_row("a", 1.0), _qat_row("b", 0.97), _qat_row("c", 0.5), _qat_row("d", 0.1)]
    out = {"y": {"within_1_step": 0.27, "samples": 8,  # far from the simulation end to end: reported, not judged
                 "int8_vs_float": {"cosine": 0.981, "top1_agreement": 0.75},
                 "simulation_vs_float": {"cosine": 0.982, "top1_agreement": 0.875}}}
    fails = check_qat({"tensors": tensors, "outputs": out}, CHECK_DEFAULTS)
    assert len(fails) == 1 and fails[0].startswith("tensor 'b' (TFLite 'tfl/b'), the first that departs"), fails
    assert check_qat({"tensors": tensors, "outputs": out}, {**CHECK_DEFAULTS, "qat_tensors": 1}) == []
    # top-1: one flip of 8 samples (12.5 points) is within the margin, which is never less than one sample
    worse = {"y": {**out["y"], "int8_vs_float": {"cosine": 0.95, "top1_agreement": 0.625}}}
    fails = check_qat({"tensors": tensors[:1], "outputs": worse}, CHECK_DEFAULTS)
    assert [f.split(":")[0] for f in fails] == ["output 'y'"] * 2 and "cosine" in fails[0] and "top-1" in fails[1]
    assert check_qat({"outputs": worse}, {**CHECK_DEFAULTS, "qat_cosine_margin": None,
                                          "qat_top1_margin_points": 30}) == []

