"""segment and mask tasks: class maps and binary masks, int8 against float, counted over the data set."""
from __future__ import annotations

import numpy as np

from tflite_int8.config.thresholds import DEFAULTS
from tflite_int8.verify.dense_tasks import MaskTask, SegmentTask


def test_segment_agreement_and_miou():
    task = SegmentTask("seg")
    ref = np.zeros((1, 3, 4, 4), np.float32)
    ref[0, 0] = 1.0
    ref[0, 1, :2] = 2.0  # top half class 1, bottom half class 0
    got = ref.copy()
    got[0, 2, 0, 0] = 5.0  # one pixel becomes class 2
    summary = task.summarize(["a"], [task.record({"seg": ref}, {"seg": got})], [None])
    assert summary["pixel_agreement"] == 15 / 16
    assert summary["class_iou"] == {0: 1.0, 1: 7 / 8, 2: 0.0}
    assert np.isclose(summary["miou"], (1 + 7 / 8 + 0) / 3)
    fails = task.failures(summary, DEFAULTS)
    assert any("per-pixel class agreement 0.9375 < 0.95" in f for f in fails) and any("mean IoU" in f for f in fails)


def test_mask_iou_over_the_data_set_with_empty_masks_skipped():
    task = MaskTask(("prob",), threshold=0.5)
    full = np.zeros((1, 1, 4, 4), np.float32)
    full[..., :2, :] = 0.9  # 8 pixels
    shrunk = full.copy()
    shrunk[..., 1, :] = 0.4  # int8 lost 4 of them
    empty = np.zeros_like(full)
    recs = [task.record({"prob": full}, {"prob": shrunk}), task.record({"prob": empty}, {"prob": empty})]
    summary = task.summarize(["text", "blank"], recs, [None, None])
    out = summary["outputs"]["prob"]
    assert out["mask_iou"] == 0.5 and out["samples_judged"] == 1 and out["skipped_samples"] == ["blank"]
    assert task.failures(summary, DEFAULTS)[0].startswith("mask: IoU of the int8 vs float masks (> 0.5) 0.5000 < 0.85")
    nothing = task.summarize(["blank"], recs[1:], [None])
    assert any("no verification sample gives any mask" in f for f in task.failures(nothing, DEFAULTS))
