"""Quantization-aware conversion: the pipeline's QAT steps (the model's own scales, never re-calibrated).

A QDQ ONNX (or a ``prepare_qat`` module exported to one) is kept as ``model.onnx``: it *is* the QAT
model's simulation, the reference the int8 file must match.  :func:`prepare` writes beside it
``model_float.onnx`` (every fake-quant removed, original float weights: the second reference, for the
accuracy story) and, in the work folder, the graph that is translated (fake-quant removed, weights on
their grid) with the :class:`~.qat_params.QatPlan` the converter follows.  :func:`check_recipe`
refuses settings that would re-calibrate a QAT model; :mod:`.qat_check` measures the int8 file against
the simulation.  The TFLite-matched training setup for PyTorch is
:mod:`.qat_config`'s (public as ``tflite_int8.prepare_qat_fx`` and ``tflite_int8.qat_qconfig_mapping``).
"""
from __future__ import annotations

import io
import warnings
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config.inputs import InputTable
from ..config.recipe import Recipe
from ..errors import AlreadyQuantizedError, ConversionError
from .qat_params import QatPlan
from .qdq import folded_relus, read_qdq, strip

FLOAT_ONNX = "model_float.onnx"
SIMULATION_STEP = "qat-simulation"
RECALIBRATING_VARIANTS = {"dynamic-range": "re-quantizes the weights with its own scales",
                          "int16x8": "calibrates 16-bit activation ranges"}


def check_recipe(recipe: Recipe, source: str) -> None:
    """AlreadyQuantizedError for a setting that would replace the QAT model's learned ranges or grids."""
    why = []
    if recipe.ranges is not None:
        why.append(f"--ranges {recipe.ranges} re-calibrates the activation ranges")
    if not recipe.per_channel:
        why.append("--per-tensor re-quantizes the weights on a new per-tensor grid")
    why += [f"--variants {v} {RECALIBRATING_VARIANTS[v]}" for v in recipe.variants if v in RECALIBRATING_VARIANTS]
    if why:
        raise AlreadyQuantizedError(
            f"{source} is quantization-aware: its fake-quant carries learned scales and zero points, and "
            f"{'; '.join(why)}, replacing them (quantization would be applied twice). A QAT model is converted with "
            f"its own scales: drop {'these options' if len(why) > 1 else 'that option'}; to re-calibrate, convert "
            f"the float model it was trained from")


def prepare(onnx_path: Path, stage_dir: Path, work: Path, table: InputTable,
            probe: Sequence[dict[str, np.ndarray]], source: str) -> tuple[Path, QatPlan]:
    """Write ``model_float.onnx`` (stage) and the on-grid float graph to translate (work); the plan."""
    import onnx
    import onnxslim

    model = onnx.load(str(onnx_path))
    qdq = read_qdq(model, source)
    relus = folded_relus(model, qdq)
    grid = work / "model_qat_grid.onnx"
    onnx.save(strip(model, qdq, "grid"), str(grid))
    translate_path = work / "model_qat_grid_slim.onnx"
    for form, path in (("float", stage_dir / FLOAT_ONNX), ("grid", translate_path)):
        try:
            with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                slim = onnxslim.slim(strip(model, qdq, form))
        except Exception as exc:
            raise ConversionError(f"onnxslim could not simplify the {form} graph of {source}: {exc}",
                                  stage="export") from None
        onnx.save(slim, str(path))
    plan = QatPlan(qdq, grid, list(probe), table)
    if relus:
        plan.adjustments.append(f"{FLOAT_ONNX}: {len(relus)} fake-quant range(s) start at exactly 0 after an op that is "
                                f"may be negative (e.g. '{relus[0]}'): the fake-quant is the model's ReLU (ONNX Runtime's "
                                f"quantize_static removes a Relu/ReLU6 Clip it makes redundant), so the float "
                                f"reference keeps a Relu there")
    return translate_path, plan


def section(plan: QatPlan, float_onnx: str = FLOAT_ONNX) -> dict[str, Any]:
    """conversion.json's ``qat`` section: what was imposed, tensor by tensor, and what could not be."""
    acts = plan.result.get("activation_params", [])
    weights = plan.result.get("weights", [])
    return {"fake_quant_pairs": plan.qdq.pairs, "activation_ranges": len(plan.qdq.activations),
            "weight_grids": sum(w.dtype != "int32" for w in plan.qdq.weights.values()),
            "activations_exact": sum(a["exact"] for a in acts), "activations_in_tflite": len(acts),
            "weights_exact": sum(w.get("status") == "exact" for w in weights), "weights_in_tflite": len(weights),
            "float_reference": float_onnx, "activations": acts, "weights": weights,
            "unmatched": plan.result.get("unmatched", []), "calibrated": plan.result.get("calibrated", [])}
