"""Stage 3, quantize: float SavedModel -> full-integer TFLite with the TF converter.

A :class:`Recipe` says *what* to produce (I/O dtype, per-channel weights, extra
variants); one small function per variant says *how* (converter settings).
Full-integer uses ``TFLITE_BUILTINS_INT8`` only, so an op that cannot be int8
fails with an error naming it; the representative dataset is streamed from a
:class:`~tflite_int8.calibrate.DataReader`, one sample at a time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .calibrate import DataReader
from .errors import ConversionError, InputError, UnsupportedOpError
from .preprocess import PreprocessSpec

IO_DTYPES = ("int8", "uint8")
RANGES = ("minmax", "mse")
VARIANTS = ("float32", "float16", "dynamic-range", "int16x8", "int8-float-io")


@dataclass(frozen=True)
class Recipe:
    """What to produce. ``variants`` are extra files besides the full-integer model."""

    io_dtype: str = "int8"
    per_channel: bool = True
    variants: tuple[str, ...] = ()
    ranges: str = "minmax"  # activation ranges: calibration min/max, or MSE-optimal (:mod:`.ranges`)

    def __post_init__(self) -> None:
        if self.io_dtype not in IO_DTYPES:
            raise InputError(f"model I/O dtype must be int8 or uint8, got {self.io_dtype!r}")
        if self.ranges not in RANGES:
            raise InputError(f"activation ranges must be one of {', '.join(RANGES)}, got {self.ranges!r}")
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise InputError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")

    def file_names(self) -> dict[str, str]:
        """Each file named for what it really is."""
        main = "model_int8.tflite" if self.io_dtype == "int8" else "model_int8_uint8io.tflite"
        names = {"full-integer": main}
        extra = {"float32": "model_float32.tflite", "float16": "model_float16.tflite",
                 "dynamic-range": "model_dynamic_range.tflite", "int16x8": "model_int16x8.tflite",
                 "int8-float-io": "model_int8_float_io.tflite"}
        names.update({v: extra[v] for v in self.variants})
        return names


class Progress:
    """No-op progress reporting; the CLI passes a tqdm-backed one."""

    def __call__(self, description: str, total: int | None) -> "Progress":
        return self

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class QuantizeResult:
    files: dict[str, Path]
    calibration_samples: int = 0
    notes: list[str] = field(default_factory=list)


def quantize(saved_model: str | Path, out_dir: str | Path, reader: DataReader, spec: PreprocessSpec,
             recipe: Recipe = Recipe(), *, float32_tflite: str | Path | None = None,
             progress: Callable[[str, int | None], Any] | None = None) -> QuantizeResult:
    """Write the full-integer model (and requested variants) into ``out_dir``."""
    saved_model, out_dir = Path(saved_model), Path(out_dir)
    progress = progress or Progress()
    names = recipe.file_names()
    files: dict[str, Path] = {}
    counter = {"n": 0}

    def dataset() -> Iterator[list[np.ndarray]]:
        bar = progress("calibrating", len(reader))
        counter["n"] = 0  # MSE ranges read the data twice (calibrate, then histograms)
        try:
            for sample in reader:
                counter["n"] += 1
                bar.update(1)
                yield [spec.to_nhwc(sample.x)]
        finally:
            bar.close()

    files["full-integer"] = _write(out_dir / names["full-integer"], _full_integer(saved_model, dataset, recipe))
    for variant in recipe.variants:
        path = out_dir / names[variant]
        if variant == "float32" and float32_tflite is not None:
            path.write_bytes(Path(float32_tflite).read_bytes())
            files[variant] = path
            continue
        make = {"float32": _float32, "float16": _float16, "dynamic-range": _dynamic_range, "int16x8": _int16x8,
                "int8-float-io": _full_integer_float_io}[variant]
        files[variant] = _write(path, make(saved_model, dataset, recipe))
    return QuantizeResult(files, calibration_samples=counter["n"])


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _converter(saved_model: Path) -> Any:
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_saved_model(str(saved_model))


def _convert(converter: Any, what: str) -> bytes:
    from ._quiet import native_stderr_captured

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


def _full_integer(saved_model: Path, dataset: Callable, recipe: Recipe) -> bytes:
    import tensorflow as tf

    c = _converter(saved_model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = dataset
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = tf.int8 if recipe.io_dtype == "int8" else tf.uint8
    c.inference_output_type = c.inference_input_type
    _activation_settings(c, dataset, recipe)
    return _convert(c, "full-integer int8 (TFLITE_BUILTINS_INT8 only)")


def _activation_settings(c: Any, dataset: Callable, recipe: Recipe) -> None:
    if not recipe.per_channel:
        c._experimental_disable_per_channel = True
    if recipe.ranges == "mse":
        from .ranges import use_mse_ranges

        use_mse_ranges(c, dataset)


def _full_integer_float_io(saved_model: Path, dataset: Callable, recipe: Recipe) -> bytes:
    """Integer compute, float I/O: the converter puts QUANTIZE/DEQUANTIZE inside the graph."""
    import tensorflow as tf

    c = _converter(saved_model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = dataset
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    _activation_settings(c, dataset, recipe)
    return _convert(c, "integer with float I/O")


def _float32(saved_model: Path, dataset: Callable, recipe: Recipe) -> bytes:
    return _convert(_converter(saved_model), "float32")


def _float16(saved_model: Path, dataset: Callable, recipe: Recipe) -> bytes:
    import tensorflow as tf

    c = _converter(saved_model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.target_spec.supported_types = [tf.float16]
    return _convert(c, "float16")


def _dynamic_range(saved_model: Path, dataset: Callable, recipe: Recipe) -> bytes:
    import tensorflow as tf

    c = _converter(saved_model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    return _convert(c, "dynamic-range")


def _int16x8(saved_model: Path, dataset: Callable, recipe: Recipe) -> bytes:
    import tensorflow as tf

    c = _converter(saved_model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = dataset
    c.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return _convert(c, "int16x8")
