"""Accuracy recovery: strategies tried in order of cost, each verified, the first that passes wins."""
from __future__ import annotations

import json

import pytest

from tests.models import TINY_SPEC, tiny
from tflite_int8.cli import main
from tflite_int8.cli.summaries import recovery_summary
from tflite_int8.recover.strategies import recover, winner


def test_strategies_run_in_order_and_int16x8_passes_but_cannot_win_on_latency(tmp_path, photos):
    # int8 cannot reach this SQNR on the tiny model; 16-bit activations can, at many times the latency
    # (no int16 kernels in XNNPACK), so with the default budget nothing wins.
    result = recover(tiny(), tmp_path / "r", spec=TINY_SPEC, data=photos, verify_data=photos,
                     thresholds={"sqnr_db": 50.0, "top1_agreement": None, "top5_agreement": None})
    names = [a["strategy"] for a in result.attempts]
    assert names == ["baseline", "calibration", "bias-correction", "weight-rounding", "int16x8"]  # adaround: by name
    assert [a["passed"] for a in result.attempts] == [False, False, False, False, True]
    assert result.attempts[-1]["sqnr_db"] >= 50 > result.attempts[0]["sqnr_db"]
    # every attempt timed against the baseline int8 file; the int8 ones cost about the same, int16x8 does not
    assert result.attempts[0]["latency_ratio"] == 1.0 and "1x by definition" in result.attempts[0]["latency_note"]
    assert all(a["within_budget"] and a["latency_ratio"] < 1.5 for a in result.attempts[:4])
    last = result.attempts[-1]
    assert last["within_budget"] is False and last["latency_ratio"] > 3
    assert f"over latency budget: {last['latency_ratio']:.1f}x the baseline int8 (limit 1.5x)" == last["latency_note"]
    assert result.winner is None and not result.passed
    doc = json.loads((tmp_path / "r" / "recovery.json").read_text())
    assert doc["winner"] is None and doc["max_latency_ratio"] == 1.5
    assert doc["latency_conditions"]["threads"] == 1 and "XNNPACK" in doc["latency_conditions"]["delegate"]
    assert doc["attempts"][-1]["latency_ratio"] == last["latency_ratio"]
    # the same rows with int16x8 inside a budget: it is the winner (one rule, over the rows in table order)
    assert winner(result.attempts[:4] + [{**last, "within_budget": True}]) == "int16x8"
    table = recovery_summary(result)
    assert "x base" in table and f"{last['latency_ratio']:.2f}x!" in table
    assert "int16x8 passed verification but cannot win: over latency budget" in table
    assert "no strategy passed within the latency budget" in table
    assert (tmp_path / "r" / doc["attempts"][-1]["file"]).is_file()
    assert "bias correction of" in result.attempts[2]["how"] and "GPTQ rounding" in result.attempts[3]["how"]
    assert "sequential bias correction" in result.attempts[3]["how"]
    assert "MSE-optimal activation ranges" in result.attempts[1]["how"]
    # changed weights are judged against the original ones: the changed float model itself differs from them
    assert [a["reference"].startswith("baseline/model.onnx") for a in result.attempts] == [False, False] + [True] * 3
    assert all(20 < a["float_change_sqnr_db"] < 200 for a in result.attempts[2:])


def test_the_winner_is_the_first_passing_row_within_budget():
    rows = [{"strategy": "baseline", "passed": False, "within_budget": True},
            {"strategy": "slow", "passed": True, "within_budget": False},
            {"strategy": "failed", "passed": False, "error": "refused"},
            {"strategy": "fast", "passed": True, "within_budget": True},
            {"strategy": "later", "passed": True, "within_budget": True}]
    assert winner(rows) == "fast"
    assert winner(rows[:3]) is None


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


def test_a_recognizer_whose_text_changed_fails_and_a_refused_strategy_is_a_row(tmp_path, photos, capsys):
    # ctc_fragile: near-uniform log-probabilities, so int8 keeps cosine ~1 but changes the decoded text; its
    # LOG_SOFTMAX has no 16x8-bit kernel, so the int16x8 strategy is refused by the converter.
    code = main(["recover", "tests.models:ctc_fragile", "-o", str(tmp_path / "r"), "--data", str(photos),
                 "--verify-data", str(photos), "--strategies", "int16x8"])
    assert code == 1
    doc = json.loads((tmp_path / "r" / "recovery.json").read_text())
    base, int16 = doc["attempts"]
    assert base["strategy"] == "baseline" and not base["passed"] and base["mean_cosine"] > 0.95
    assert any(f.startswith("ctc: decoded text identical on") for f in base["failures"]), base["failures"]
    assert base["sequence_match"] < 0.9
    assert int16["strategy"] == "int16x8" and not int16["passed"]
    assert "16x8-bit not yet supported for op: 'LOG_SOFTMAX'" in int16["error"]
    assert doc["winner"] is None and "no strategy passed" in capsys.readouterr().out


def test_bad_arguments_are_refused(tmp_path, capsys):
    with pytest.raises(Exception, match="float_layers must be at least 1"):
        recover(tiny(), tmp_path / "x", spec=TINY_SPEC, float_layers=0)
    assert main(["recover", "tests.models:tiny", "-o", str(tmp_path / "y"), "--max-latency-ratio", "0.9"]) == 2
    assert "max_latency_ratio must be at least 1" in capsys.readouterr().err
    with pytest.raises(Exception, match="unknown recovery strategy wishful; choose from baseline, calibration"):
        recover(tiny(), tmp_path / "x", spec=TINY_SPEC, strategies=["wishful"])
    assert main(["recover", "tests.models:tiny", "-o", str(tmp_path / "z"), "--rounding-iterations", "0"]) == 2
    assert "rounding_iterations must be at least 1" in capsys.readouterr().err


def test_a_qat_model_is_not_recovered_by_requantizing(tmp_path, photos):
    """A quantization-aware baseline that fails stops the run: every later strategy would re-calibrate it."""
    from tests.models import qdq_onnx

    path = qdq_onnx(tmp_path / "qdq.onnx")
    result = recover(path, tmp_path / "r", spec=TINY_SPEC, data=photos, thresholds={"cosine": 1.01})
    assert not result.passed and [a["strategy"] for a in result.attempts] == ["baseline"]
    saved = json.loads((tmp_path / "r" / "recovery.json").read_text())
    assert "quantization-aware" in saved["stopped"] == result.stopped
    assert "stopped after the baseline: the model is quantization-aware" in recovery_summary(result)


def test_recover_takes_the_input_flags_of_convert(tmp_path, capsys):
    """A VAD with a rank-0 sample rate: --input-value reaches the baseline (from the user's ONNX) and is not applied
    again to the attempts made from the baseline's model.onnx, where sr is already folded (new-user report)."""
    import numpy as np

    from tests.models import vad_onnx

    vad_onnx(tmp_path / "vad.onnx")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((16, 32)).astype(np.float32),
             state=(rng.standard_normal((16, 2, 1, 8)) * 0.5).astype(np.float32))
    code = main(["recover", str(tmp_path / "vad.onnx"), "-o", str(tmp_path / "r"), "--data", str(tmp_path / "d.npz"),
                 "--verify-data", str(tmp_path / "d.npz"), "--input-value", "sr=16000", "--strategies", "baseline,weight-rounding", "--thresholds",
                 str(_impossible(tmp_path))])
    doc = json.loads((tmp_path / "r" / "recovery.json").read_text())
    assert code == 1, capsys.readouterr()
    assert [a["strategy"] for a in doc["attempts"]] == ["baseline", "weight-rounding"]
    assert all("error" not in a for a in doc["attempts"]), doc["attempts"]
