"""Data-set metrics: a sample whose reference output is ~0 is skipped for cosine (and said so), not failed."""
from __future__ import annotations

import numpy as np

from tflite_int8.runtime.metrics import combine, compare, skipped_note


def test_a_sample_without_signal_does_not_decide_the_cosine(rng):
    # the text detector: one photo without text gives ~0 everywhere; float rounding is then all of it
    signal = [rng.random((1, 1, 8, 8)) for _ in range(3)]
    blank = [np.full((1, 1, 8, 8), 1e-6)]
    refs = signal + blank
    gots = [r + rng.normal(0, 1e-5, r.shape) for r in refs]
    per = [compare(r, g) for r, g in zip(refs, gots)]
    assert per[-1]["cosine"] < 0.9 and per[-1]["rel_max_err"] > 1  # per sample: looks broken
    m = combine(per, ["a", "b", "c", "blank"])
    assert m["samples_judged"] == 3 and m["skipped_samples"][0]["sample"] == "blank"
    assert m["cosine"] > 0.9999 and m["cosine_min"] > 0.9999 and m["rel_max_err"] < 1e-3
    assert m["sqnr_db"] > 60 and "1 of 4 samples skipped for cosine" in skipped_note(m)


def test_data_set_sqnr_and_error_in_quantization_steps():
    refs = [np.array([1.0, -1.0]), np.array([2.0, 0.0])]
    gots = [np.array([1.1, -1.0]), np.array([2.0, 0.2])]
    m = combine([compare(r, g) for r, g in zip(refs, gots)], step=0.1)
    assert np.isclose(m["sqnr_db"], 10 * np.log10(6.0 / 0.05))
    assert np.isclose(m["max_abs_err_steps"], 2.0) and np.isclose(m["mean_abs_err_steps"], 0.75)


def test_one_value_per_sample_is_judged_over_the_data_set(rng):
    """A probability [1, 1] per sample: each sample's cosine is 1 whatever the error (only its sign); the data set's
    cosine sees the error (Silero VAD's int8 output: 1.0000 per sample, 0.966 over 647 frames)."""
    refs = [np.array([[p]]) for p in rng.random(50)]
    gots = [np.array([[min(1.0, r[0, 0] + 0.5)]]) for r in refs]  # every probability off by up to 0.5
    per = [compare(r, g) for r, g in zip(refs, gots)]
    assert all(np.isclose(p["cosine"], 1.0) for p in per)
    m = combine(per)
    assert m["cosine"] == m["cosine_min"] == m["cosine_dataset"] < 0.95
