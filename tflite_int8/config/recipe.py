"""What a conversion produces: the :class:`Recipe` and the table of files (variants) it can write.

Each :class:`Variant` is data: its file name, its help text and the converter settings that make it
(``ops``, ``optimize``, ``calibrate``, ``io``).  One converter builder
(:func:`tflite_int8.convert.converter.build`) reads these settings; the CLI's ``--variants`` choices and help
are derived from this table.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError

IO_DTYPES = ("int8", "uint8")
DEFAULT_RANGES = "mse"  # the best measured recipe within 2x the conversion time (BENCHMARKS.md "default recipe")
RANGES = {"mse": "MSE-optimal (default): clips rare extremes for a finer int8 step; reads the calibration data twice",
          "minmax": "the calibration's plain min/max: one pass, every extreme kept (the default before MSE was "
                    "measured better)"}


@dataclass(frozen=True)
class Variant:
    """One .tflite a conversion can write.

    ops: ``int8`` (TFLITE_BUILTINS_INT8 only), ``int16x8`` (16-bit activations, 8-bit weights), ``float``
    (builtin float ops), ``int8+float`` (int8 where possible, float ops allowed).
    io: ``integer`` (the recipe's int8/uint8 I/O) or ``float``.
    """

    file_name: str
    help: str
    ops: str
    optimize: bool = True
    calibrate: bool = True
    io: str = "float"
    float16: bool = False

    @property
    def uses_recipe_ranges(self) -> bool:
        """Whether per-channel/per-tensor weights and the activation-range method apply (int8 activations)."""
        return self.ops in ("int8", "int8+float")


FULL_INTEGER = "full-integer"
VARIANTS: dict[str, Variant] = {
    FULL_INTEGER: Variant("model_int8.tflite", "full-integer, int8 I/O (always written)", "int8", io="integer"),
    "float32": Variant("model_float32.tflite", "float32 (onnx2tf's translation)", "float", optimize=False,
                       calibrate=False),
    "float16": Variant("model_float16.tflite", "float16 weights", "float", calibrate=False, float16=True),
    "dynamic-range": Variant("model_dynamic_range.tflite", "int8 weights, float activations", "float",
                             calibrate=False),
    "int16x8": Variant("model_int16x8.tflite", "16-bit activations, 8-bit weights (integer-only)", "int16x8"),
    "int8-float-io": Variant("model_int8_float_io.tflite", "integer compute with float I/O", "int8"),
}
EXTRA_VARIANTS = tuple(v for v in VARIANTS if v != FULL_INTEGER)  # what --variants may ask for
MIXED_FLOAT = Variant("model_int8_mixed_float.tflite", "int8 with the named layers kept in float (NOT "
                      "full-integer)", "int8+float")  # recover's float-fallback; never asked for by name


@dataclass(frozen=True)
class Recipe:
    """What to produce. ``variants`` are extra files besides the full-integer model."""

    io_dtype: str = "int8"
    per_channel: bool = True
    variants: tuple[str, ...] = ()
    ranges: str | None = None  # activation ranges (convert.ranges); None: not chosen, so MSE-optimal, or a QAT
    #                            model's own learned ranges

    def __post_init__(self) -> None:
        if self.io_dtype not in IO_DTYPES:
            raise InputError(f"model I/O dtype must be int8 or uint8, got {self.io_dtype!r}")
        if self.ranges is not None and self.ranges not in RANGES:
            raise InputError(f"activation ranges must be one of {', '.join(RANGES)}, got {self.ranges!r}")
        unknown = [v for v in self.variants if v not in EXTRA_VARIANTS]
        if unknown:
            raise InputError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(EXTRA_VARIANTS)}")

    @property
    def range_method(self) -> str:
        """The activation-range method calibration uses: the one asked for, else :data:`DEFAULT_RANGES`."""
        return self.ranges or DEFAULT_RANGES

    def file_names(self) -> dict[str, str]:
        """Each file named for what it really is."""
        main = VARIANTS[FULL_INTEGER].file_name
        names = {FULL_INTEGER: main if self.io_dtype == "int8" else main.replace(".tflite", "_uint8io.tflite")}
        names.update({v: VARIANTS[v].file_name for v in self.variants})
        return names

    def to_dict(self) -> dict[str, object]:
        return {"io_dtype": self.io_dtype, "per_channel": self.per_channel, "variants": list(self.variants),
                "ranges": self.range_method}

    @classmethod
    def from_dict(cls, data: dict) -> "Recipe":
        """A recorded recipe; a record without ``ranges`` was written while min/max was the default."""
        return cls(io_dtype=data.get("io_dtype", "int8"), per_channel=data.get("per_channel", True),
                   variants=tuple(data.get("variants", ())), ranges=data.get("ranges", "minmax"))
