"""Stage 3, quantize: float SavedModel -> full-integer TFLite (and requested variants) with the TF converter.

The :class:`~tflite_int8.config.recipe.Recipe` says *what* to produce, the variant table
(:data:`~tflite_int8.config.recipe.VARIANTS`) how each file is made, and :mod:`.converter` builds the
converter.  Full-integer uses ``TFLITE_BUILTINS_INT8`` only, so an op that cannot be int8 fails with an
error naming it; the representative dataset is streamed from a data reader, one sample at a time.

The converter and its calibrator run in a child process (:mod:`tflite_int8.runtime.child`): a native crash
there is a :class:`~tflite_int8.errors.CrashError` naming the variant, what it was doing and the op(s) behind it.
"""
from __future__ import annotations

import re
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config.inputs import InputTable
from ..config.preprocess import PreprocessSpec
from ..config.recipe import FULL_INTEGER, VARIANTS, Recipe
from ..errors import ConversionError, CrashError, Int8Error
from ..progress import Progress
from ..runtime import child
from ..runtime.describe import model_ops
from . import converter
from .qat_params import QatPlan

WHAT = {FULL_INTEGER: "full-integer int8 (TFLITE_BUILTINS_INT8 only)", "int8-float-io": "integer with float I/O"}
# Ops the TF calibrator is known to crash on (control flow, state, recurrent kernels): named when it crashes.
CRASH_PRONE_OPS = ("WHILE", "IF", "CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE",
                   "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN",
                   "BIDIRECTIONAL_SEQUENCE_RNN", "CUSTOM", "DELEGATE")


@dataclass
class QuantizeResult:
    files: dict[str, Path]
    calibration_samples: int = 0
    notes: list[str] = field(default_factory=list)
    qat: QatPlan | None = None  # the quantization-aware plan, filled by the converter


@dataclass(frozen=True)
class QuantizeJob:
    """The converter's work, picklable: run in a child process by :func:`quantize`."""

    saved_model: Path
    out_dir: Path
    reader: Any
    spec: PreprocessSpec | InputTable
    recipe: Recipe
    float32_tflite: Path | None = None
    qat: QatPlan | None = None

    def __call__(self, progress: Progress) -> QuantizeResult:
        dataset = converter.calibration_batches(self.reader, self.spec, progress)
        files: dict[str, Path] = {}
        samples = 0
        for name, file_name in self.recipe.file_names().items():
            path = self.out_dir / file_name
            if name == "float32" and self.float32_tflite is not None:  # onnx2tf's own float32 file: already made
                path.write_bytes(Path(self.float32_tflite).read_bytes())
            else:
                bar = progress(f"converting {name}", None)
                qat = self.qat if name == FULL_INTEGER or self.qat is None else replace(self.qat, result={},
                                                                                        adjustments=[])
                c = converter.build(self.saved_model, VARIANTS[name], self.recipe, dataset, qat=qat)
                path.write_bytes(converter.run(c, WHAT.get(name, name)))
                bar.close()
            if name == FULL_INTEGER:
                samples = dataset.count
            files[name] = path
        return QuantizeResult(files, calibration_samples=samples, qat=self.qat)


def quantize(saved_model: str | Path, out_dir: str | Path, reader: Any, spec: PreprocessSpec | InputTable,
             recipe: Recipe = Recipe(), *, float32_tflite: str | Path | None = None,
             progress: Progress | None = None, worker: child.Worker | None = None,
             qat: QatPlan | None = None) -> QuantizeResult:
    """Write the full-integer model (and requested variants) into ``out_dir`` (in ``worker``'s child process, or
    a new one); ``qat``: with the quantization-aware model's own scales (its per-tensor record is that of the
    full-integer file)."""
    job = QuantizeJob(Path(saved_model), Path(out_dir), reader, spec, recipe,
                      Path(float32_tflite) if float32_tflite is not None else None, qat)
    with child.Worker() if worker is None else nullcontext(worker) as w:
        return w.call(job, what="the TF converter", stage="quantize", progress=progress,
                      fail=crash_naming_ops(float32_tflite, "quantize"))


def crash_naming_ops(float_model: str | Path | None, stage: str) -> Any:
    """A child failure -> CrashError naming the op(s) behind it: from the converter's log, else the float model's
    crash-prone ops (``float_model``: the float32 TFLite of the same graph, when there is one)."""
    def fail(f: child.Failure) -> Int8Error:
        logged = sorted(set(re.findall(r"'tfl?\.([A-Za-z0-9_]+)' op", f.log)))
        suspects = [op for op in model_ops(float_model) if op in CRASH_PRONE_OPS] if float_model else []
        ops = logged or sorted(set(suspects))
        if logged:
            where = f"; the converter's last messages name op(s) {', '.join(logged)}"
        elif suspects:
            where = (f"; the float model holds {', '.join(ops)} (control flow, state or recurrent kernels, which "
                     f"the int8 calibrator is known to crash on): unroll or replace them")
        else:
            where = "; it left no op name"
        if f.kind != "crash":
            return ConversionError(f"{f.what} {f.describe()}{where}", stage=stage)
        return CrashError(f"{f.what} {f.describe()}{where}", stage=stage, ops=ops, signal=f.signal)
    return fail
