"""The ctc task: judged by the decoded text, so a recognizer whose text changed cannot pass on its cosine."""
from __future__ import annotations

import numpy as np

from tflite_int8.config.thresholds import DEFAULTS
from tflite_int8.runtime.metrics import combine, compare
from tflite_int8.verify.ctc import CTCTask, edit_distance, greedy_decode


def _logprobs(path: list[int], classes: int = 6, margin: float = 4.0) -> np.ndarray:
    x = np.zeros((1, len(path), classes), np.float32)
    x[0, np.arange(len(path)), path] = margin
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_greedy_decode_merges_repeats_and_drops_blanks():
    assert greedy_decode(_logprobs([0, 3, 3, 0, 3, 5, 5, 0])) == [3, 3, 5]
    assert greedy_decode(_logprobs([1, 1, 2]), blank=1) == [2]
    assert greedy_decode(_logprobs([2, 4]).transpose(1, 0, 2)) == [2, 4]  # (T, 1, C)


def test_edit_distance():
    assert edit_distance([1, 2, 3], [1, 3]) == 1 and edit_distance([], [4, 4]) == 2 and edit_distance([5], [5]) == 0


def test_text_that_changed_on_most_lines_fails_although_the_cosine_is_high():
    # the case: log-probabilities nearly uniform, so int8 keeps them close while their argmax changes
    task = CTCTask("out", class_names=("_", "a", "b", "c", "d", "e"))
    rng = np.random.default_rng(0)
    records, tensor = [], []
    for i in range(25):
        path = list(rng.integers(0, 6, 10))
        ref = _logprobs(path, margin=0.05)
        got = _logprobs(list(np.roll(path, 1)), margin=0.05)
        records.append(task.record({"out": ref}, {"out": got}))
        tensor.append(compare(ref, got))
    assert combine(tensor)["cosine"] > 0.99  # a tensor metric alone would pass this
    summary = task.summarize([f"line{i}" for i in range(25)], records, [None] * 25)
    assert summary["lines"] == 25 and summary["sequence_match"] < 0.2
    fails = task.failures(summary, DEFAULTS)
    assert fails[0].startswith("ctc: decoded text identical on") and "< 0.9" in fails[0]
    assert any("character error rate" in f for f in fails)
    assert summary["changed"][0]["float"] != summary["changed"][0]["int8"]


def test_lines_without_text_are_listed_not_judged_and_no_text_at_all_cannot_pass():
    task = CTCTask("out")
    blank = _logprobs([0, 0, 0])
    recs = [task.record({"out": blank}, {"out": _logprobs([0, 2, 0])}), task.record({"out": _logprobs([1, 0])},
                                                                                      {"out": _logprobs([1, 0])})]
    summary = task.summarize(["empty", "one"], recs, [None, None])
    assert summary["lines"] == 1 and summary["sequence_match"] == 1.0 and summary["skipped_samples"] == ["empty"]
    assert summary["spurious_int8_text"] == ["empty"] and task.failures(summary, DEFAULTS) == []
    none = task.summarize(["empty"], recs[:1], [None])
    assert "reads no text on any" in task.failures(none, DEFAULTS)[0]
