"""The TF converter, set up in one place: every .tflite this tool writes is built here.

:func:`calibration_batches` turns a data reader into the converter's representative dataset (streamed,
one sample at a time, with a progress bar); :func:`build` configures a ``TFLiteConverter`` for a
:class:`~tflite_int8.config.recipe.Variant` and a :class:`~tflite_int8.config.recipe.Recipe` (I/O types,
per-channel weights, activation ranges); :func:`run` converts and turns the converter's errors into typed
ones naming the ops.  quantize, diagnose (through TF's quantization debugger) and recover's float fallback
use these, so a diagnosis sees the shipped model's settings.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..config.inputs import InputTable, signature_name
from ..config.preprocess import PreprocessSpec
from ..config.recipe import Recipe, Variant
from ..errors import ConversionError, UnsupportedOpError
from ..progress import Progress, or_silent
from ..runtime.quiet import native_stderr_captured
from .qat_params import QatPlan, use_qat_params
from .ranges import use_mse_ranges

Dataset = Callable[[], Iterator[dict[str, np.ndarray] | list[np.ndarray]]]


class calibration_batches:
    """The representative dataset of ``reader``: each call streams the samples again, each as {signature name:
    array} (the calibrator matches the names to its input tensors, whose order is the converter's own;
    :func:`~tflite_int8.config.inputs.in_tensor_order` does it for an interpreter) or, for one input, [array];
    each in the TFLite layout, float32 or (token ids, masks) the input's integer dtype.

    ``spec``: the model's inputs (or one image input's preprocessing).  ``count`` is the number of samples the
    last pass yielded (MSE ranges read the data twice).
    """

    def __init__(self, reader: Any, spec: PreprocessSpec | InputTable, progress: Progress | None = None,
                 label: str = "calibrating") -> None:
        self.reader, self.label = reader, label
        self.table = spec if isinstance(spec, InputTable) else InputTable.single(spec)
        self.progress = or_silent(progress)
        self.count = 0

    def batch(self, sample: Any) -> dict[str, np.ndarray] | list[np.ndarray]:
        """One sample (a reader's Sample, an array, or {name: array}, source layout) as the converter takes it."""
        if hasattr(sample, "arrays"):
            arrays = dict(zip(self.table.names, sample.arrays(self.table.names)))
        else:
            arrays = self.table.feed(sample)
        tflite = {signature_name(n): s.to_tflite(np.asarray(arrays[n], dtype=s.dtype))
                  for n, s in zip(self.table.names, self.table)}
        return list(tflite.values()) if len(tflite) == 1 else tflite

    def __call__(self) -> Iterator[dict[str, np.ndarray] | list[np.ndarray]]:
        bar = self.progress(self.label, len(self.reader))
        self.count = 0
        try:
            for sample in self.reader:
                self.count += 1
                bar.update(1)
                yield self.batch(sample)
        finally:
            bar.close()


def build(saved_model: str | Path, variant: Variant, recipe: Recipe, dataset: Dataset | None,
          qat: QatPlan | None = None) -> Any:
    """A TFLiteConverter for ``variant`` (what) with ``recipe``'s settings, calibrated on ``dataset``;
    with ``qat``, the activation ranges and weight grids are the quantization-aware model's own."""
    import tensorflow as tf

    c = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if variant.optimize:
        c.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant.float16:
        c.target_spec.supported_types = [tf.float16]
    if variant.calibrate:
        if dataset is None:
            raise ValueError(f"{variant.file_name} needs calibration data")
        c.representative_dataset = dataset
    ops = {"int8": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8],
           "int16x8": [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]}.get(variant.ops)
    if ops is not None:
        c.target_spec.supported_ops = ops
    if variant.io == "integer":
        c.inference_input_type = tf.int8 if recipe.io_dtype == "int8" else tf.uint8
        c.inference_output_type = c.inference_input_type
    if variant.uses_recipe_ranges:
        if not recipe.per_channel:
            c._experimental_disable_per_channel = True
        if qat is not None:
            use_qat_params(c, qat)
        elif recipe.range_method == "mse":
            use_mse_ranges(c, dataset)
    return c


def run(converter: Any, what: str) -> bytes:
    """``converter.convert()``; its failures as UnsupportedOpError (naming the ops) or ConversionError."""
    try:
        with native_stderr_captured():
            return converter.convert()
    except Exception as exc:  # ConverterError and friends
        msg = str(exc)
        ops = sorted(set(re.findall(r"'tfl?\.([A-Za-z0-9_]+)' op", msg)) |
                     set(re.findall(r"[Qq]uantization (?:is )?not (?:yet )?supported for op: '?([A-Za-z0-9_]+)", msg)))
        if ops:
            raise UnsupportedOpError(
                f"the TF converter cannot make op(s) {', '.join(ops)} {what}; replace them in the model, or allow "
                f"float ops explicitly. Converter said: {msg.strip().splitlines()[0][:300]}",
                ops=ops) from None
        raise ConversionError(f"the TF converter failed ({what}): {msg.strip()[:600]}", stage="quantize") from None
