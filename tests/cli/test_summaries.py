"""The terminal summaries: classification figures overall and on confident samples, flips confident first."""
from __future__ import annotations

import numpy as np

from tflite_int8.cli.summaries import batch_summary, classification_lines
from tflite_int8.verify.tasks import ClassificationTask


def test_classification_lines_show_both_agreements_and_confident_flips_first():
    task = ClassificationTask("out", class_names=("cat", "dog", "fox"))

    def rec(float_logits, int8_top1):
        got = np.zeros((1, 3))
        got[0, int8_top1] = 1.0
        return task.record({"out": np.array([float_logits])}, {"out": got})

    recs = [rec([0.0, 0.1, 0.0], 0), rec([4.0, 0.0, 0.0], 1), rec([0.0, 0.0, 3.0], 2)]
    summary = task.summarize(["unsure.jpg", "sure.jpg", "ok.jpg"], recs, [None] * 3)
    lines = classification_lines(summary, {"count": 3, "source": "given"})
    assert lines[0] == "top-1 agreement 33.3% (3 samples), top-5 agreement 100.0%"
    assert lines[1] == ("  where the float model is confident (float top-1 probability >= 0.5): top-1 agreement 50.0% "
                        "(2 samples); by margin (float top-1 minus top-2 probability >= 0.2): 50.0% (2 samples)")
    assert lines[2] == "  2 sample(s) change top-1 class, 1 where the float model was confident:"
    assert lines[3].startswith("    ! sure.jpg: float 'cat' (p 0.96) -> int8 'dog'")
    assert lines[4].startswith("      unsure.jpg: float 'dog' (p 0.36) -> int8 'cat'")
    assert "give --class-names" in classification_lines(summary, None)[2]


def test_batch_table_says_where_a_cut_message_is_whole():
    row = {"model": "qat", "status": "bad input", "seconds": 5.0, "stage": "convert", "error": "refused " + "x" * 300}
    short = {"model": "ok", "status": "passed", "seconds": 1.0, "failures": []}
    lines = batch_summary({"models": [short, row], "exit_code": 2, "executor": {"executor": "local"}}, "out/").splitlines()
    assert lines[1].endswith("1.0  ") and "batch.json" not in lines[1]
    assert lines[2].endswith("... (whole in batch.json)") and "refused " + "x" * 100 in lines[2]
