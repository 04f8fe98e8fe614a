"""Accuracy recovery: strategies tried in order of cost, each verified, the first that passes wins."""
from __future__ import annotations

import json

import pytest

from tests.models import TINY_SPEC, tiny
from tflite_int8.cli import main
from tflite_int8.recover.strategies import recover


def test_strategies_run_in_order_until_one_passes(tmp_path, photos):
    # int8 cannot reach this SQNR on the tiny model; 16-bit activations can.
    result = recover(tiny(), tmp_path / "r", spec=TINY_SPEC, data=photos, verify_data=photos,
                     thresholds={"sqnr_db": 50.0, "top1_agreement": None, "top5_agreement": None})
    names = [a["strategy"] for a in result.attempts]
    assert names == ["baseline", "calibration", "bias-correction", "weight-rounding", "int16x8"]
    assert [a["passed"] for a in result.attempts] == [False, False, False, False, True]
    assert result.winner == "int16x8" and result.attempts[-1]["sqnr_db"] >= 50 > result.attempts[0]["sqnr_db"]
    doc = json.loads((tmp_path / "r" / "recovery.json").read_text())
    assert doc["winner"] == "int16x8" and doc["full_integer"] is True
    assert (tmp_path / "r" / doc["attempts"][-1]["file"]).is_file()
    assert "bias correction of" in result.attempts[2]["how"] and "GPTQ rounding" in result.attempts[3]["how"]
    assert "sequential bias correction" in result.attempts[3]["how"]
    assert "MSE-optimal activation ranges" in result.attempts[1]["how"]
    # changed weights are judged against the original ones: the changed float model itself differs from them
    assert [a["reference"].startswith("baseline/model.onnx") for a in result.attempts] == [False, False] + [True] * 3
    assert all(20 < a["float_change_sqnr_db"] < 200 for a in result.attempts[2:])


def test_float_fallback_only_with_consent_and_named_as_such(tmp_path, photos, capsys):
    code = main(["recover", "tests.models:tiny", "-o", str(tmp_path / "r"), "--data", str(photos),
                 "--verify-data", str(photos), "--allow-float-ops", "--float-layers", "2", "--thresholds",
                 str(_impossible(tmp_path))])
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "r" / "recovery.json").read_text())
    assert code == 1 and doc["winner"] is None
    last = doc["attempts"][-1]
    assert last["strategy"] == "float-fallback" and last["full_integer"] is False and "NOT full-integer" in last["how"]
    assert "no strategy passed" in out


def _impossible(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"cosine": 1.01}))
    return path


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(Exception, match="float_layers must be at least 1"):
        recover(tiny(), tmp_path / "x", spec=TINY_SPEC, float_layers=0)
