"""recover judges by the task, as verify does: a detector by its boxes, never passed on tensor metrics."""
from __future__ import annotations

import json

import pytest

from tests.models import TINY_SPEC, tiny_detector_v8
from tflite_int8.cli import main
from tflite_int8.cli.summaries import recovery_summary
from tflite_int8.errors import InputError
from tflite_int8.recover.strategies import recover


def _recovery(out):
    return json.loads((out / "recovery.json").read_text())


def _conversion(folder):
    return json.loads((folder / "conversion.json").read_text())


def test_a_yolo_head_under_task_auto_is_not_passed_on_cosine(tmp_path, det_data, capsys):
    # [1, 4+2, 48]: boxes in pixels and sigmoid scores share one int8 scale; the cosine stays ~1
    code = main(["recover", "tests.models:tiny_detector_v8", "-o", str(tmp_path / "r"), "--data",
                 str(det_data / "images"), "--verify-data", str(det_data / "images"), "--strategies",
                 "bias-correction"])
    out = capsys.readouterr().out
    doc = _recovery(tmp_path / "r")
    (base,) = doc["attempts"]  # nothing else tried: no strategy can be judged either
    assert code == 1 and doc["winner"] is None and base["strategy"] == "baseline"
    assert base["mean_cosine"] > 0.95 and not base["passed"]  # cosine alone would have passed it
    assert base["task"] == "raw" and base["decided_by"].startswith("nothing: tensor metrics cannot judge")
    assert "output 'output' [1, 6, 48] has a YOLO detector's layout [1, 4+classes, N]" in doc["stopped"]
    assert "of 256 levels" in doc["stopped"] and "give --task detect" in doc["stopped"]
    assert doc["stopped"] in base["failures"]
    assert "decided by nothing" in out and "stopped after the baseline: output 'output' [1, 6, 48]" in out


def test_a_detector_with_its_head_as_exported_fails_on_box_agreement(tmp_path, det_data):
    images = det_data / "images"
    result = recover(tiny_detector_v8(), tmp_path / "r", spec=TINY_SPEC, data=images, verify_data=images,
                     task="detect", head_fix=False, strategies=["bias-correction"])
    base, corrected = result.attempts
    assert not result.passed and [a["strategy"] for a in result.attempts] == ["baseline", "bias-correction"]
    for row in (base, corrected):  # the tensors pass, the boxes do not: the boxes decide
        assert row["mean_cosine"] > 0.95 and row["task"] == "detection" and not row["passed"]
        assert row["box_agreement"] < 0.9 and row["decided_by"].startswith("detection: box_agreement 0.")
        assert any(f.startswith("box agreement 0.") for f in row["failures"]), row["failures"]
    # the attempt made from the baseline's ONNX file was converted for the same task, head as exported
    head = _conversion(tmp_path / "r" / "bias-correction")["head"]
    assert head["fix"] is None and head["decode"]["boxes"] == head["decode"]["scores"] == "output"
    assert "decided by detection: box_agreement" in recovery_summary(result)


def test_a_split_head_is_judged_by_box_agreement_and_carried_to_later_attempts(tmp_path, det_data):
    # box agreement 1.01 cannot be met: the baseline (box agreement 1.0 with its head split) fails on it and the
    # next strategy starts from the baseline's already split ONNX file
    images = det_data / "images"
    result = recover(tiny_detector_v8(), tmp_path / "r", spec=TINY_SPEC, data=images, verify_data=images,
                     task="detect", strategies=["bias-correction"], thresholds={"box_agreement": 1.01})
    base, corrected = result.attempts
    assert base["box_agreement"] >= 0.9 > 0.661  # the default threshold passes it; as exported: 0.661
    for row in result.attempts:
        assert row["task"] == "detection" and row["decided_by"].startswith("detection: box_agreement")
        assert any(f.startswith("box agreement 1.000 < 1.01") for f in row["failures"]), row["failures"]
    made = _conversion(tmp_path / "r" / "bias-correction")
    assert made["task"] == "detect" and made["onnx"]["outputs"] == ["boxes", "scores"]
    assert made["head"]["carried_from"] == "../baseline" and made["head"]["decode"]["boxes"] == "boxes"
    assert any(a.startswith("head not split again") for a in made["adjustments"])


def test_task_reaches_convert_and_verify_for_every_attempt(tmp_path, photos, capsys):
    # two_outputs: a feature map and a (1, 3) output; auto would judge it raw, --task classify by top-1
    limits = tmp_path / "t.json"
    limits.write_text(json.dumps({"top1_agreement": 1.01}))
    code = main(["recover", "tests.models:two_outputs", "-o", str(tmp_path / "r"), "--data", str(photos),
                 "--verify-data", str(photos), "--size", "32", "--resize", "stretch", "--task", "classify",
                 "--strategies", "bias-correction", "--thresholds", str(limits)])
    doc = _recovery(tmp_path / "r")
    assert code == 1 and [a["strategy"] for a in doc["attempts"]] == ["baseline", "bias-correction"]
    for row in doc["attempts"]:
        assert row["task"] == "classification" and row["decided_by"].startswith("classification: top1_agreement")
        assert _conversion(tmp_path / "r" / row["strategy"])["task"] == "classify"
    assert "decided by classification: top1_agreement" in capsys.readouterr().out


def test_bad_task_arguments_are_refused(tmp_path, capsys):
    for flag, value in (("--task", "guess"), ("--decode", "gpu")):  # the choices come from the tables
        with pytest.raises(SystemExit) as exit_:
            main(["recover", "tests.models:tiny", "-o", str(tmp_path / "x"), flag, value])
        assert exit_.value.code == 2 and f"invalid choice: '{value}'" in capsys.readouterr().err
    with pytest.raises(InputError, match="unknown decode 'gpu'; choose model, host"):
        recover(tiny_detector_v8(), tmp_path / "z", spec=TINY_SPEC, decode="gpu")
    with pytest.raises(InputError, match="unknown task 'guess'"):
        recover(tiny_detector_v8(), tmp_path / "z", spec=TINY_SPEC, task="guess")
    assert not (tmp_path / "z").exists()
