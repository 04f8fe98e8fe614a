"""Verification thresholds: defaults, files, validation, and the checks they drive."""
from __future__ import annotations

import pytest

from tflite_int8.errors import InputError
from tflite_int8.config.thresholds import DEFAULTS, check_outputs, resolve_thresholds


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
