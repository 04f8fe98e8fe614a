"""Per-layer diagnosis: which layers lose the most to int8, with TF's quantization debugger.

The debugger quantizes the float SavedModel with the same settings (the same converter builder,
per-channel weights and activation ranges) and the same calibration data as the shipped model, then runs it with a float shadow of every
quantized op and measures each op's own error (not the error accumulated from
earlier layers).  ``rmse / scale`` is that error in quantization steps: about
0.29 (= 1/sqrt(12), pure rounding) is ideal, above 0.7 the layer is hurt.  Each
layer gets its TFLite tensor name and, when onnx2tf's log names it, the ONNX node.  The debugger runs in a
child process (it calibrates natively): a crash there is a CrashError of stage ``diagnose``.
"""
from __future__ import annotations

import csv
import io
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..config.inputs import InputTable, in_tensor_order
from ..config.preprocess import PreprocessSpec
from ..config.recipe import VARIANTS, Recipe
from ..convert import converter
from ..convert.quantize import crash_naming_ops
from ..convert.translate import onnx_nodes_for
from ..errors import ConversionError
from ..progress import Progress
from ..runtime import child
from ..runtime.quiet import native_stderr_captured

IDEAL = 1.0 / np.sqrt(12.0)
BAD = 0.7


@dataclass(frozen=True)
class DebugJob:
    """TF's quantization debugger on the shipped recipe, picklable: it runs in a child process (it calibrates
    and quantizes natively, which can crash); returns the per-layer statistics as CSV text."""

    saved_model: Path
    calibration: Any
    debug_inputs: tuple[Any, ...]
    spec: PreprocessSpec | InputTable
    recipe: Recipe

    def __call__(self, progress: Progress) -> str:
        import tensorflow as tf

        dataset = converter.calibration_batches(self.calibration, self.spec, progress, "layer diagnosis: calibrating")

        def debug_data() -> Iterable[list[np.ndarray]]:  # the debugger feeds lists, in its model's tensor order
            for x in self.debug_inputs:
                yield in_tensor_order(debugger._quant_interpreter, dataset.batch(x))  # noqa: SLF001 - no public one

        conv = converter.build(self.saved_model, VARIANTS["int8-float-io"], self.recipe, dataset)
        buf = io.StringIO()
        try:
            with native_stderr_captured(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                debugger = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=debug_data)
                debugger.run()
                debugger.layer_statistics_dump(buf)
        except Exception as exc:  # the debugger is a diagnosis: its failure must say so, not look like a parity loss
            raise ConversionError(f"TF's quantization debugger failed on {self.saved_model}: {str(exc)[:400]}",
                                  stage="diagnose") from None
        return buf.getvalue()


def diagnose(saved_model: str | Path, calibration: Any, debug_inputs: Sequence[Any],
             spec: PreprocessSpec | InputTable, *, recipe: Recipe = Recipe(), node_map: dict[str, str] | None = None,
             progress: Progress | None = None, worker: child.Worker | None = None) -> list[dict[str, Any]]:
    """Every quantized layer's error on ``debug_inputs``, worst first (in ``worker``'s child process, or a new one).

    ``calibration``: the shipped model's calibration reader (a DataReader, streamed);
    ``debug_inputs``: preprocessed samples (arrays in the spec's layout, {input name: array}, or a reader's
    Samples); ``spec``: the model's inputs or its one image input's preprocessing; ``recipe``: the shipped
    model's settings (per-channel weights, activation ranges), applied by the same converter builder.
    """
    job = DebugJob(Path(saved_model), calibration, tuple(debug_inputs), spec, recipe)
    with child.Worker() if worker is None else nullcontext(worker) as w:
        table = w.call(job, what="TF's quantization debugger", stage="diagnose", progress=progress,
                       fail=crash_naming_ops(None, "diagnose"))
    layers = []
    for row in csv.DictReader(io.StringIO(table)):
        scale = float(row["scale"])
        mse = float(row["mean_squared_error"])
        ratio = float(np.sqrt(mse) / scale) if scale > 0 else float("inf")
        name = row["tensor_name"]
        layers.append({"op": row["op_name"], "tensor": name, "rmse_over_scale": ratio,
                       "max_abs_error": float(row["max_abs_error"]), "mean_error": float(row["mean_error"]),
                       "scale": scale, "zero_point": int(float(row["zero_point"])),
                       "onnx_nodes": onnx_nodes_for(name, node_map or {}),
                       "verdict": "bad" if ratio > BAD else "fair" if ratio > 0.45 else "good"})
    layers.sort(key=lambda r: -r["rmse_over_scale"])
    return layers
