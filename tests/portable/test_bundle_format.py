"""The bundle/results formats: tensor files, comparisons, and what is refused."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tflite_int8.portable import bundle_format as bf

SCORES = {"name": "logits", "shape": [1, 4], "dtype": "int8", "scale": [0.5], "zero_point": [-2],
          "quantized_dimension": 0}


def test_compare_counts_steps_values_and_top1():
    e = np.array([[10, 20, 30, 5]], np.int8)
    a = np.array([[10, 21, 29, 5]], np.int8)
    row = bf.compare_output(e, a, SCORES)
    assert row["max_step_diff"] == 1 and row["differing_values"] == 2 and row["same_top1"] is True
    assert 0.99 < row["cosine"] < 1.0
    flipped = bf.compare_output(e, np.array([[10, 40, 30, 5]], np.int8), SCORES)
    assert flipped["max_step_diff"] == 20 and flipped["same_top1"] is False


def test_int8_extremes_do_not_overflow():
    row = bf.compare_output(np.array([[-128, 127, 0, 0]], np.int8), np.array([[127, -128, 0, 0]], np.int8), SCORES)
    assert row["max_step_diff"] == 255


def test_per_axis_dequantize_uses_the_quantized_dimension():
    t = {"name": "w", "shape": [2, 3], "dtype": "int8", "scale": [1.0, 0.5], "zero_point": [0, 1],
         "quantized_dimension": 0}
    q = np.array([[1, 2, 3], [1, 2, 3]], np.int8)
    assert bf.dequantize(q, t).tolist() == [[1, 2, 3], [0, 0.5, 1]]


def test_only_score_vectors_get_top1():
    assert bf.is_scores(SCORES)
    assert not bf.is_scores({**SCORES, "shape": [1, 10, 4]})
    assert not bf.is_scores({**SCORES, "shape": [1, 1]})


def test_a_wrong_sized_file_is_refused(tmp_path):
    (tmp_path / "x.raw").write_bytes(b"\0" * 3)
    with pytest.raises(bf.BundleError, match="3 values, tensor 'logits' has shape"):
        bf.read_tensor(tmp_path / "x.raw", SCORES)


def test_not_a_bundle_and_wrong_format(tmp_path):
    with pytest.raises(bf.BundleError, match="no manifest.json"):
        bf.read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(bf.BundleError, match="is not 'tflite-int8 android bundle v1'"):
        bf.read_manifest(tmp_path)
