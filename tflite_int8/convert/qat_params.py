"""A quantization-aware model's own scales and zero points, imposed on the TF converter's int8 model.

Why this way (tried on a QAT-trained model before choosing):

* onnx2tf translates QuantizeLinear/DequantizeLinear into float arithmetic (divide, round, clip, cast,
  subtract, multiply: ``onnx2tf/ops/QuantizeLinear.py``, ``DequantizeLinear.py``), not into
  ``FakeQuantWithMinMaxVars``; the TF converter's own QAT path (fake-quant ops in the SavedModel,
  no calibration) would need onnx2tf's handlers rewritten, and the weights, which onnx2tf folds
  into constants (with the batch norm), would still be quantized by the converter's rule.
* So the pairs are taken out of the ONNX graph (:mod:`.qdq`; weights replaced by their dequantized,
  on-grid values) and the float graph is translated as usual.  The converter quantizes in two steps,
  calibration (min/max of every activation recorded in the flatbuffer) then ``mlir_quantize``; this
  module steps in between, like :mod:`.ranges`: every activation tensor the QAT model fake-quantizes
  gets ``min, max = scale * (-128 - zp), scale * (127 - zp)``, so the converter derives exactly the
  model's scale and zero point (and makes its requantization decisions, e.g. for a concatenation,
  knowing them).  Tensors are matched **by value**: the calibrated TFLite model and the ONNX float
  graph run on the same sample, and a TFLite tensor takes the range of the ONNX tensor with the same
  values (up to NCHW/NHWC layout) — independent of onnx2tf's op names and of its fusions.
* Weights: the converter's per-channel scale is ``max|w| / 127``, which equals the QAT scale only
  where a channel's largest weight sits at +-127 steps (with PyTorch's moving-average observers it
  often does not; a -128 step is common too).  So after ``mlir_quantize`` each int8 weight tensor is
  matched by value to its QAT weight and rewritten with the QAT integers and scales (the bias
  re-quantized to ``input_scale * weight_scale``): the file then holds the model's own grid.  -128
  steps become -127 (TFLite int8 weights are symmetric, [-127, 127]) and asymmetric or differently
  laid out grids are left to the converter: both are listed per tensor in ``adjustments``.

Activations with no fake-quant in the model take their input's range through range-preserving ops
(pooling, reshapes, padding), as an integer backend does; any left keep the calibration's min/max and
are listed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config.inputs import InputTable, in_tensor_order, signature_name
from ..runtime.reference import onnx_feed
from .calibration_hook import edit_calibrated
from .qat_config import RECOMMENDED
from .qat_weights import impose_weights, op_name, tensor_name
from .qdq import QdqGraph, QRange

# TFLite ops whose outputs are some of their input's values: the input's grid holds them exactly.  (Averages
# are not on it: a mean or a bilinear resize keeps its calibrated range, which rounds less.)
SAME_SCALE = {"MAX_POOL_2D", "RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS", "PAD", "PADV2",
              "RESIZE_NEAREST_NEIGHBOR", "STRIDED_SLICE", "SLICE", "GATHER", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE",
              "SPLIT", "SPLIT_V", "RELU", "RELU6"}
PROBE_SAMPLES = 2
MATCH_TOL = 1e-3  # float TFLite vs ONNX Runtime on the same float graph, relative to the tensor's peak


@dataclass
class QatPlan:
    """What a QAT conversion imposes: the QDQ graph's ranges and grids, and the float graph to match against.

    ``grid_onnx``: the graph without fake-quant, weights on their grid (:func:`.qdq.strip`, form ``grid``),
    every fake-quantized tensor still named; ``probe``: a few samples, {input name: array} (source layout);
    The converter hook fills ``result`` (per-tensor table) and ``adjustments``.
    """

    qdq: QdqGraph
    grid_onnx: Path
    probe: Sequence[dict[str, np.ndarray]]
    table: InputTable
    result: dict[str, Any] = field(default_factory=dict)
    adjustments: list[str] = field(default_factory=list)
    off_scheme: list[str] = field(default_factory=list)  # what of the QAT setup departs from TFLite's int8 scheme


def use_qat_params(converter: Any, plan: QatPlan) -> None:
    """Make ``converter`` quantize with the QAT model's own activation ranges and weight grids."""
    edit_calibrated(converter, lambda calibrated: impose_ranges(calibrated, plan),
                    lambda quantized, assigned: impose_params(quantized, assigned, plan))


# ---------------------------------------------------------------- activations: ranges before quantizing

def impose_ranges(calibrated: bytes, plan: QatPlan) -> tuple[bytes, dict[str, QRange]]:
    """The calibrated model with each QAT tensor's min/max set to its grid; TFLite tensor name -> QAT range."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    graph = model.subgraphs[0]
    ranged = [i for i, t in enumerate(graph.tensors) if t.quantization is not None and t.quantization.min is not None
              and len(t.quantization.min) == 1]
    tfl_values = _tflite_values(calibrated, ranged, plan)
    onnx_values = _onnx_values(plan)
    assigned: dict[int, tuple[QRange, str]] = {}
    for i in ranged:
        name = _match_activation(tfl_values.get(i), onnx_values)
        if name is not None:
            assigned[i] = (plan.qdq.activations[name], "qat")
    absorbed = _absorb_pre_activation(assigned, plan)
    _inherit(model, assigned)
    rows, tensors = [], {}
    for i, (qr, how) in sorted(assigned.items()):
        lo, hi = qr.int8_limits()
        graph.tensors[i].quantization.min, graph.tensors[i].quantization.max = [lo], [hi]
        tname = tensor_name(graph.tensors[i])
        tensors[tname] = qr
        rows.append({"tflite": tname, "onnx": qr.tensor, "range": how})
    matched = {qr.tensor for qr, _ in assigned.values()} | set(absorbed)
    unmatched = sorted(set(plan.qdq.activations) - matched)
    calibrated_left = [tensor_name(graph.tensors[i]) for i in ranged if i not in assigned]
    plan.result["activations"] = rows
    plan.result["unmatched"] = unmatched
    plan.result["calibrated"] = calibrated_left
    for qr in {qr.tensor: qr for qr, _ in assigned.values()}.values():
        if qr.narrowed:
            lo, hi = qr.int8_limits()
            plan.adjustments.append(
                f"QAT activation '{qr.tensor}': {qr.qmax - qr.qmin + 1}-level range ({qr.dtype} {qr.qmin}..{qr.qmax}, "
                f"e.g. PyTorch's reduce_range) widened to TFLite's 256-level int8 grid at the same scale "
                f"{qr.scale:.6g}: values up to {hi:.4g} are no longer clipped")
            _off_scheme(plan, "7-bit (reduce_range) activation ranges")
    if absorbed:
        _off_scheme(plan, "a fake-quant between an op and the ReLU/ReLU6 TFLite fuses into it")
        plan.adjustments.append(
            f"{len(absorbed)} fake-quant(s) sit between an op and its activation (ReLU/ReLU6), which TFLite fuses "
            f"into one int8 tensor: it takes the coarser of the two QAT scales, the one whose rounding dominates the "
            f"simulation (e.g. '{next(iter(absorbed))}' before '{next(iter(absorbed.values()))}'); the other "
            f"rounding is not in the int8 model")
    requantized = [t for t in plan.qdq.back_to_back if t not in plan.qdq.same_grid]  # same grid twice: a no-op
    if requantized:
        plan.adjustments.append(f"{len(requantized)} tensor(s) fake-quantized twice in a row by the QAT model on two "
                                f"grids (a requantization, e.g. around an identity op): TFLite rounds them once, to "
                                f"the later range ({', '.join(requantized[:3])})")
    unmatched = [u for u in unmatched if u not in plan.qdq.back_to_back]
    if unmatched:
        plan.adjustments.append(f"{len(unmatched)} fake-quantized ONNX tensor(s) have no TFLite tensor (fused into "
                                f"the next op by the translation, e.g. a conv output before its ReLU): their rounding "
                                f"is not in the int8 model ({_few(unmatched, 4)})")
    if calibrated_left:
        plan.adjustments.append(f"{len(calibrated_left)} TFLite activation tensor(s) have no fake-quant in the QAT "
                                f"model: their ranges are the calibration data's min/max "
                                f"({_few(calibrated_left, 3)})")
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), tensors


def _few(names: list[str], n: int) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


def _tflite_values(calibrated: bytes, indices: list[int], plan: QatPlan) -> dict[int, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=bytes(calibrated), experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    runs: dict[int, list[np.ndarray]] = {i: [] for i in indices}
    for feed in plan.probe[:PROBE_SAMPLES]:
        tflite = {signature_name(n): s.to_tflite(np.asarray(feed[n], s.dtype)) for n, s in zip(plan.table.names,
                                                                                            plan.table)}
        for d, x in zip(interp.get_input_details(), in_tensor_order(interp, tflite)):
            interp.set_tensor(d["index"], x)
        interp.invoke()
        for i in indices:
            runs[i].append(np.array(interp.get_tensor(i), np.float32))
    return {i: np.concatenate(v) for i, v in runs.items()}


def _onnx_values(plan: QatPlan) -> dict[tuple[int, ...], list[tuple[str, np.ndarray]]]:
    """Each fake-quantized ONNX tensor's values on the probe, in every layout TFLite may hold it, by shape."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(plan.grid_onnx))
    names = list(plan.qdq.activations)
    have = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in have)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = [i.name for i in sess.get_inputs()]
    outs = [sess.run(names, onnx_feed(feeds, x)) for x in plan.probe[:PROBE_SAMPLES]]
    by_shape: dict[tuple[int, ...], list[tuple[str, np.ndarray]]] = {}
    for k, name in enumerate(names):
        v = np.concatenate([o[k] for o in outs]).astype(np.float32)
        if v.size < 2 or float(np.ptp(v)) == 0.0:
            continue  # a constant tensor matches anything: no evidence
        for perm in _layouts(v.ndim):
            moved = _squeezed(v.transpose(perm))  # TFLite may keep or drop size-1 axes (a mean, a flatten)
            by_shape.setdefault(moved.shape, []).append((name, moved))
    return by_shape


def _squeezed(v: np.ndarray) -> np.ndarray:
    """All size-1 axes but the first (the samples) dropped."""
    return np.ascontiguousarray(v.reshape(v.shape[:1] + tuple(d for d in v.shape[1:] if d != 1)))


def _layouts(rank: int) -> list[tuple[int, ...]]:
    """Identity and channels-last (onnx2tf's NCHW -> NHWC)."""
    perms = [tuple(range(rank))]
    if rank >= 3:
        perms.append((0, *range(2, rank), 1))
    return perms


def _match_activation(values: np.ndarray | None, candidates: dict) -> str | None:
    if values is None:
        return None
    values = _squeezed(values)
    best, best_err = None, np.inf
    for name, ref in candidates.get(values.shape, []):
        peak = float(np.max(np.abs(ref)))
        err = float(np.max(np.abs(values - ref))) / max(peak, 1e-12)
        if err <= MATCH_TOL and err <= best_err:  # a tie (a tensor fake-quantized twice): the later range
            best, best_err = name, err
    return best


def _absorb_pre_activation(assigned: dict[int, tuple[QRange, str]], plan: QatPlan) -> dict[str, str]:
    """Fake-quant before a ReLU/ReLU6 whose output is fake-quantized too: TFLite fuses the activation into the
    op before it, so one tensor holds both.  It takes the coarser range (rounding on the coarser grid is most
    of the simulation's error there).  Returns {pre-activation tensor: post-activation tensor} for all pairs."""
    import onnx

    graph = onnx.load(str(plan.grid_onnx)).graph
    users: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    acts = plan.qdq.activations
    pairs = {}
    for name in acts:
        nxt = users.get(name, [])
        if len(nxt) == 1 and nxt[0].op_type in ("Relu", "Clip"):
            after = [n.output[0] for n in users.get(nxt[0].output[0], []) if n.op_type == "Identity"]
            if len(after) == 1 and after[0] in acts:
                pairs[name] = after[0]
    for i, (qr, how) in list(assigned.items()):
        pre = next((u for u, v in pairs.items() if v == qr.tensor), None)
        if pre is not None and acts[pre].scale > qr.scale:
            assigned[i] = (acts[pre], "pre-activation")
    return pairs


def _inherit(model: Any, assigned: dict[int, tuple[QRange, str]]) -> None:
    """Outputs of range-preserving ops without a QAT range of their own take their input's."""
    graph = model.subgraphs[0]
    for op in graph.operators:
        if op_name(model, op) not in SAME_SCALE or not len(op.inputs) or op.inputs[0] not in assigned:
            continue
        for o in op.outputs:
            if o not in assigned:
                assigned[o] = (assigned[op.inputs[0]][0], "inherited")


# ---------------------------------------------------------------- weights and exactness, after quantizing

def impose_params(quantized: bytes, tensors: dict[str, QRange], plan: QatPlan) -> bytes:
    """The int8 model with the QAT scales made exact, the QAT weight grids written in, per-tensor report."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(quantized))
    graph = model.subgraphs[0]
    rows = []
    for index, t in enumerate(graph.tensors):
        qr = tensors.get(tensor_name(t))
        if qr is None or t.quantization is None or t.quantization.scale is None or len(t.quantization.scale) != 1:
            continue
        got_s, got_z = float(t.quantization.scale[0]), int(t.quantization.zeroPoint[0])
        exact = abs(got_s - qr.scale) <= 1e-5 * qr.scale and got_z == qr.int8_zero_point
        if exact:
            t.quantization.scale = np.array([qr.scale], np.float32)
        else:
            plan.adjustments.append(f"activation '{tensor_name(t)}' (QAT '{qr.tensor}'): TFLite holds scale "
                                    f"{got_s:.6g} / zero point {got_z} instead of the QAT {qr.scale:.6g} / "
                                    f"{qr.int8_zero_point} (the op that makes it requires its own output scale)")
            _off_scheme(plan, "an output scale that TFLite's op fixes (e.g. 1/256 for a softmax or logistic)")
        rows.append({"tflite": tensor_name(t), "index": index, "onnx": qr.tensor, "qat_scale": qr.scale,
                     "qat_zero_point": qr.int8_zero_point, "scale": float(t.quantization.scale[0]),
                     "zero_point": int(t.quantization.zeroPoint[0]), "exact": bool(exact)})
    plan.result["activation_params"] = rows
    plan.result["weights"] = impose_weights(model, plan)
    if plan.off_scheme:
        plan.adjustments.append(f"the QAT model was trained with fake-quant that TFLite's int8 scheme cannot hold "
                                f"({'; '.join(plan.off_scheme)}), so the int8 file departs from its simulation as "
                                f"listed above. {RECOMMENDED}")
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _off_scheme(plan: QatPlan, what: str) -> None:
    if what not in plan.off_scheme:
        plan.off_scheme.append(what)
