"""Activation ranges that minimise int8 error (MSE) instead of the calibration's plain min/max.

The TF converter quantizes in two steps: it calibrates (runs the float model on the representative
data and records each activation tensor's min/max in the flatbuffer), then quantizes from those
ranges.  :func:`use_mse_ranges` puts one step in between on a converter: every recorded activation
range is replaced by the range whose int8 grid gives the smallest expected squared error on the same
calibration data (clipping the rare extremes buys a finer step for everything else); a converter asked
for the calibrated model only (TF's quantization debugger, which quantizes it itself) gets it with the
MSE ranges already in.  Model inputs
and outputs keep their min/max (inputs are the preprocessing's range; clipping an output would clip
the top logit).  The model stays full-integer; nothing else about the conversion changes.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from ..config.inputs import in_tensor_order
from .calibration_hook import edit_calibrated

Feeds = Callable[[], Iterable[dict[str, np.ndarray] | list[np.ndarray]]]  # by signature name, or [x] for one input

BINS = 2048
FRACTIONS = np.linspace(0.3, 1.0, 36)  # candidate ends, as fractions of the observed min / max


def use_mse_ranges(converter: Any, dataset: Feeds) -> None:
    """Make ``converter`` quantize from MSE-optimal activation ranges measured on ``dataset``."""
    edit_calibrated(converter, lambda calibrated: (mse_ranges(calibrated, dataset), None))


def mse_ranges(calibrated: bytes, dataset: Feeds) -> bytes:
    """A calibrated (float, min/max-annotated) TFLite model with each inner activation range MSE-optimised."""
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    graph = model.subgraphs[0]
    ends = set(graph.inputs) | set(graph.outputs)
    ranged = {i: (float(t.quantization.min[0]), float(t.quantization.max[0])) for i, t in enumerate(graph.tensors)
              if i not in ends and t.quantization is not None and t.quantization.min is not None
              and len(t.quantization.min) == 1 and t.quantization.max[0] > t.quantization.min[0]}
    if not ranged:
        return calibrated
    interp = Interpreter(model_content=bytes(calibrated), experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    inputs = [(d["index"], d["dtype"]) for d in interp.get_input_details()]
    hist = {i: np.zeros(BINS, np.float64) for i in ranged}
    zeros = {i: 0 for i in ranged}
    for feed in dataset():
        for (idx, dtype), x in zip(inputs, in_tensor_order(interp, feed)):  # float32, or an integer's own type
            interp.set_tensor(idx, np.asarray(x, dtype))
        interp.invoke()
        for i, (lo, hi) in ranged.items():
            v = interp.get_tensor(i).ravel()
            zeros[i] += int(np.count_nonzero(v == 0))
            hist[i] += np.histogram(v[v != 0], BINS, (lo, hi))[0]
    for i, (lo, hi) in ranged.items():
        new_lo, new_hi = best_range(hist[i], lo, hi)
        graph.tensors[i].quantization.min = [new_lo]
        graph.tensors[i].quantization.max = [new_hi]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def best_range(counts: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """The (lo, hi) among shrunk versions of the observed range with the least expected squared int8 error.

    ``counts``: histogram of the non-zero values over [lo, hi] (zero is always exact on the grid).  A value
    inside the range costs step**2 / 12 (uniform rounding error), one outside it its distance to the range.
    """
    edges = np.linspace(lo, hi, len(counts) + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    lows = [0.0] if lo >= 0 else [lo * f for f in FRACTIONS]
    highs = [0.0] if hi <= 0 else [hi * f for f in FRACTIONS]
    best = (np.inf, lo, hi)
    for a in lows:
        for b in highs:
            step = (max(b, 0.0) - min(a, 0.0)) / 255.0
            clip = np.clip(centers, a, b)
            inside = (centers >= a) & (centers <= b)
            err = float((counts * ((centers - clip) ** 2 + inside * step * step / 12.0)).sum())
            if err < best[0]:
                best = (err, a, b)
    return best[1], best[2]
