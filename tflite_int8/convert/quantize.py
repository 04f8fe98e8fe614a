"""Stage 3, quantize: float SavedModel -> full-integer TFLite (and requested variants) with the TF converter.

The :class:`~tflite_int8.config.recipe.Recipe` says *what* to produce, the variant table
(:data:`~tflite_int8.config.recipe.VARIANTS`) how each file is made, and :mod:`.converter` builds the
converter.  Full-integer uses ``TFLITE_BUILTINS_INT8`` only, so an op that cannot be int8 fails with an
error naming it; the representative dataset is streamed from a data reader, one sample at a time.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config.inputs import InputTable
from ..config.preprocess import PreprocessSpec
from ..config.recipe import FULL_INTEGER, VARIANTS, Recipe
from ..progress import Progress
from . import converter
from .qat_params import QatPlan

WHAT = {FULL_INTEGER: "full-integer int8 (TFLITE_BUILTINS_INT8 only)", "int8-float-io": "integer with float I/O"}


@dataclass
class QuantizeResult:
    files: dict[str, Path]
    calibration_samples: int = 0
    notes: list[str] = field(default_factory=list)


def quantize(saved_model: str | Path, out_dir: str | Path, reader: Any, spec: PreprocessSpec | InputTable,
             recipe: Recipe = Recipe(), *, float32_tflite: str | Path | None = None,
             progress: Progress | None = None, qat: QatPlan | None = None) -> QuantizeResult:
    """Write the full-integer model (and requested variants) into ``out_dir``; ``qat``: with the
    quantization-aware model's own scales (its per-tensor record is that of the full-integer file)."""
    saved_model, out_dir = Path(saved_model), Path(out_dir)
    dataset = converter.calibration_batches(reader, spec, progress)
    files: dict[str, Path] = {}
    samples = 0
    for name, file_name in recipe.file_names().items():
        path = out_dir / file_name
        if name == "float32" and float32_tflite is not None:  # onnx2tf's own float32 file: already made
            path.write_bytes(Path(float32_tflite).read_bytes())
        else:
            plan = qat if name == FULL_INTEGER or qat is None else replace(qat, result={}, adjustments=[])
            c = converter.build(saved_model, VARIANTS[name], recipe, dataset, qat=plan)
            path.write_bytes(converter.run(c, WHAT.get(name, name)))
        if name == FULL_INTEGER:
            samples = dataset.count
        files[name] = path
    return QuantizeResult(files, calibration_samples=samples)
