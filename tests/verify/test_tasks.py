"""Task metrics and labels: classification agreement/accuracy, label files, class names."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tflite_int8.errors import InputError
from tflite_int8.verify.ctc import CTCTask
from tflite_int8.verify.dense_tasks import MaskTask, SegmentTask
from tflite_int8.verify.tasks import (ClassificationTask, OutputInfo, RawTask, choose_task, label_for,
                                      read_class_names, read_labels)


def _logits(top: list[int], k: int = 10) -> dict[str, np.ndarray]:
    x = np.zeros((1, k), np.float32)
    for rank, i in enumerate(top):
        x[0, i] = 10.0 - rank
    return {"out": x}


def test_classification_agreement_and_accuracy():
    task = ClassificationTask("out", class_names=tuple(f"c{i}" for i in range(10)))
    recs = [task.record(_logits([1, 2]), _logits([1, 3])),      # agree
            task.record(_logits([4, 5]), _logits([5, 4])),      # top-1 changes, float top-1 in int8 top-5
            task.record(_logits([7, 0, 1, 2, 3]), _logits([8, 9, 0, 1, 2]))]  # float top-1 not in int8 top-5
    s = task.summarize(["a", "b", "c"], recs, [1, 4, None])
    assert s["top1_agreement"] == pytest.approx(1 / 3) and s["top5_agreement"] == pytest.approx(2 / 3)
    assert s["labelled_samples"] == 2 and s["accuracy_float"] == 1.0 and s["accuracy_int8"] == 0.5
    assert s["accuracy_drop_points"] == pytest.approx(50.0)
    assert [d["sample"] for d in s["disagreements"]] == ["b", "c"]
    assert s["disagreements"][0]["float_class"] == "c4" and s["disagreements"][0]["int8_class"] == "c5"
    fails = task.failures(s, {"top1_agreement": 0.9, "top5_agreement": 0.5, "accuracy_drop_points": 1.0})
    assert len(fails) == 2 and "top1 agreement 0.333 < 0.9" in fails[0] and "50.00 points" in fails[1]


def _probs(p: list[float], k: int = 5) -> dict[str, np.ndarray]:
    """An output that already is probabilities: p on the first classes, the rest spread evenly."""
    rest = (1.0 - sum(p)) / (k - len(p))
    return {"out": np.array([p + [rest] * (k - len(p))], np.float32)}


def test_agreement_where_the_float_model_is_confident():
    task = ClassificationTask("out", class_names=("cat", "dog", "fox", "owl", "bee"))
    cases = [  # (float probabilities over classes 0.., int8 top-1)
        ([0.9, 0.05], 0),   # confident, clear margin, agrees
        ([0.8, 0.1], 1),    # confident, clear margin: a real flip
        ([0.55, 0.4], 1),   # confident (p >= 0.5) but margin 0.15 < 0.2: a near-tie flip
        ([0.4, 0.1], 0),    # not confident, margin 0.3, agrees
        ([0.3, 0.29], 1),   # unsure near-tie flip
    ]
    recs = []
    for p, q in cases:
        got = np.zeros((1, 5), np.float32)
        got[0, q] = 1.0
        recs.append(task.record(_probs(p), {"out": got}))
    s = task.summarize(list("abcde"), recs, [None] * 5)
    assert s["probabilities"] == "the output itself (already probabilities)"
    assert s["top1_agreement"] == pytest.approx(2 / 5)
    assert s["confident_samples"] == 3 and s["top1_agreement_confident"] == pytest.approx(1 / 3)
    assert s["margin_samples"] == 3 and s["top1_agreement_margin"] == pytest.approx(2 / 3)
    # flips, the surest first: the confident ones lead
    assert [(d["sample"], d["confident"]) for d in s["disagreements"]] == [("b", True), ("c", True), ("e", False)]
    assert s["disagreements"][0]["float_p"] == pytest.approx(0.8) and s["disagreements"][0]["float_margin"] == \
        pytest.approx(0.7)
    fails = task.failures(s, {"top1_agreement": None, "top1_agreement_confident": 0.98})
    assert fails == ["top-1 agreement on confident samples 0.333 < 0.98 on output 'out': 2 of 3 samples where the "
                     "float top-1 probability >= 0.5 change class (b: float 'cat' (p 0.80) -> int8 'dog'; "
                     "c: float 'cat' (p 0.55) -> int8 'dog')"]
    assert task.failures(s, {"top1_agreement_confident": None}) == []


def test_with_two_classes_confident_needs_a_lead():
    """p >= 0.5 holds for every top-1 of a binary output (a face score): there the margin rule decides."""
    task = ClassificationTask("out")
    recs = [task.record({"out": np.array([[p, 1 - p]], np.float32)}, {"out": np.array([[0.0, 1.0]], np.float32)})
            for p in (0.9, 0.55, 0.51)]
    s = task.summarize(list("abc"), recs, [None] * 3)
    assert s["confident_samples"] == 1 and s["top1_agreement_confident"] == 0.0
    assert s["confident_rule"] == "float top-1 probability >= 0.6 (two classes: a lead of 0.2)"


def test_logits_go_through_softmax_and_no_confident_sample_is_not_judged():
    task = ClassificationTask("out")
    # logits 2, 0, 0: softmax p = e^2 / (e^2 + 2) = 0.787, margin 0.787 - 0.107 = 0.68
    rec = task.record({"out": np.array([[2.0, 0.0, 0.0]])}, {"out": np.array([[0.0, 2.0, 0.0]])})
    assert rec["float_p"] == pytest.approx(np.e ** 2 / (np.e ** 2 + 2)) and not rec["probabilities"]
    assert rec["float_margin"] == pytest.approx((np.e ** 2 - 1) / (np.e ** 2 + 2))
    flat = task.record({"out": np.array([[0.1, 0.0, 0.0]])}, {"out": np.array([[0.1, 0.0, 0.0]])})  # p 0.36
    s = task.summarize(["x"], [flat], [None])
    assert s["probabilities"] == "softmax of the output" and s["confident_samples"] == 0
    assert s["top1_agreement_confident"] is None and task.failures(s, {"top1_agreement_confident": 0.98}) == []
    s = task.summarize(["y"], [rec], [None])
    assert s["top1_agreement_confident"] == 0.0 and "int8 class 1" in task.failures(s, {"top1_agreement_confident": 1})[0]


def _outs(**outputs):
    return {n: o if isinstance(o, OutputInfo) else OutputInfo(o) for n, o in outputs.items()}


def test_task_choice():
    assert isinstance(choose_task("auto", _outs(logits=(1, 1000))), ClassificationTask)
    assert isinstance(choose_task("auto", _outs(a=(1, 10), b=(1, 4, 8, 8))), RawTask)
    assert isinstance(choose_task("auto", _outs(y=(1, 6300, 85))), RawTask)  # a detector's raw head: ambiguous
    with pytest.raises(InputError, match="needs an output of shape"):
        choose_task("classify", _outs(y=(1, 6300, 85)))
    with pytest.raises(InputError, match="--task segment needs an output of shape"):
        choose_task("segment", _outs(y=(1, 10)))
    with pytest.raises(InputError, match="unknown task"):
        choose_task("depth", _outs(y=(1, 10)))


def test_auto_picks_ctc_segment_and_mask_only_when_the_outputs_leave_no_doubt():
    ctc = choose_task("auto", _outs(rec=OutputInfo((1, 40, 97), "Softmax", 2)), blank=3)
    assert isinstance(ctc, CTCTask) and ctc.output == "rec" and ctc.blank == 3
    assert isinstance(choose_task("auto", _outs(rec=OutputInfo((1, 40, 97), "MatMul"))), RawTask)
    seg = choose_task("auto", _outs(seg=(1, 21, 64, 64)), input_size=(64, 64))
    assert isinstance(seg, SegmentTask)
    assert isinstance(choose_task("auto", _outs(feat=(1, 256, 8, 8)), input_size=(64, 64)), RawTask)
    assert isinstance(choose_task("auto", _outs(seg=OutputInfo((1, 21, 8, 8), "Softmax", 1))), SegmentTask)
    masks = choose_task("auto", _outs(d0=OutputInfo((1, 1, 32, 32), "Sigmoid"), d1=OutputInfo((1, 1, 32, 32),
                                                                                               "Sigmoid")),
                        mask_threshold=0.3)
    assert isinstance(masks, MaskTask) and masks.outputs == ("d0", "d1") and masks.threshold == 0.3
    assert isinstance(choose_task("auto", _outs(depth=OutputInfo((1, 1, 32, 32), "Relu"))), RawTask)
    assert isinstance(choose_task("mask", _outs(depth=OutputInfo((1, 1, 32, 32), "Relu"))), MaskTask)
    face = choose_task("auto", _outs(box=OutputInfo((1, 4), "Gemm"), prob=OutputInfo((1, 2), "Softmax")))
    assert isinstance(face, ClassificationTask) and face.output == "prob"


def test_labels_from_csv_and_folders(tmp_path):
    names = tmp_path / "classes.txt"
    names.write_text("cat\ndog\n\n")
    assert read_class_names(names) == ["cat", "dog"]
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label\na.jpg,1\nb.png,cat\n")
    assert read_labels(csv, ["cat", "dog"]) == {"a.jpg": 1, "b.png": 0}
    with pytest.raises(InputError, match="give --class-names"):
        read_labels(csv)
    root = tmp_path / "by_class"
    for cls in ("0", "1"):
        (root / cls).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / cls / f"img{cls}.png")
    labels = read_labels(root)
    assert sorted(labels.values()) == [0, 1]
    assert label_for(str(root / "1" / "img1.png"), "img1.png#view3", labels) == 1
    assert label_for(None, "img0.png#view2", {"img0.png": 0}) == 0


@pytest.mark.parametrize("content, message", [("a.jpg\n", "expected 'file,label'"), ("", "holds no labels"),
                                              ("a.jpg,zebra\n", "neither a class index")])
def test_bad_label_files(tmp_path, content, message):
    p = tmp_path / "l.csv"
    p.write_text(content)
    with pytest.raises(InputError, match=message):
        read_labels(p)
