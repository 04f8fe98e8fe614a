"""A quantization-aware conversion measured against its own simulation: tensor by tensor, and on the task.

The simulation is the QDQ model as float fake-quant (:func:`~tflite_int8.runtime.reference.simulation_session`).
Integer kernels requantize with fixed-point multipliers (and an int32 bias) where the simulation rounds float
results, so a value near a rounding tie lands one step away, and deep models carry and grow those differences:
end to end, a faithful deep conversion is far from "every output within one step" (MobileNetV2 quantized by
ONNX Runtime: 27 % of logits within one step, yet top-1 and cosine against the float model as good as the
simulation's own).  What is measured, for :func:`~tflite_int8.config.thresholds.check_qat` to judge:

* ``tensors`` (:func:`tensor_rows`): every fake-quantized tensor the int8 file holds, in the ONNX graph's order,
  in that tensor's QAT steps, end to end (``exact``, ``within_1_step``) and **locally** (``local_*``: each
  tensor of the simulation computed from the int8 file's own values of the fake-quantized tensors before it, the
  QDQ graph cut at every fake-quant).  Locally one op is isolated: a tensor whose local agreement is low is where
  a parameter differs or a kernel rounds differently.
* ``outputs`` (:func:`output_rows`): per output, int8 vs the float model (``model_float.onnx``) and the
  simulation vs the same float model (mean cosine; top-1 agreement for (1, K) outputs), and the int8 file vs the
  simulation in output steps (reported, not judged).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config.inputs import InputTable
from ..runtime.adapter import Runner, io_infos, quantize
from ..runtime.metrics import align_layout, combine, compare, step_agreement
from ..runtime.reference import SIMULATION, onnx_feed, run_onnx, run_simulation, simulation_session

FED = "::int8"  # suffix of the graph inputs that feed the int8 file's tensors into the cut simulation


def simulation_check(int8_path: Path, qdq_onnx: Path, float_onnx: Path, table: InputTable,
                     feeds: Sequence[dict[str, np.ndarray]], names: Sequence[str], activations: Sequence[dict],
                     tensor_feeds: int | None = None) -> dict[str, Any]:
    """``outputs`` and ``tensors`` (see the module doc) on ``feeds`` ({input name: array} each); ``activations``:
    conversion.json ``qat.activations``; ``tensor_feeds``: the tensors on only the first so many feeds."""
    return {"reference": f"{qdq_onnx.name} as {SIMULATION} (the QAT simulation)",
            "candidate": "tflite int8", "float": float_onnx.name,
            "outputs": output_rows(int8_path, qdq_onnx, float_onnx, table, feeds, names),
            "tensors": tensor_rows(qdq_onnx, int8_path, activations, feeds[:tensor_feeds], table)}


def output_rows(int8_path: Path, qdq_onnx: Path, float_onnx: Path, table: InputTable,
                feeds: Sequence[dict[str, np.ndarray]], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per output: int8 and the simulation each vs the float model; the int8 file vs the simulation in steps."""
    runner = Runner(int8_path, trusted=True, output_names=list(names), inputs=table)
    steps = {o.name: o.scales[0] for o in runner.outputs if o.quantized and not o.per_axis}
    sims, floats = run_simulation(qdq_onnx, feeds), run_onnx(float_onnx, feeds)
    diffs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    vs: dict[str, dict[str, list]] = {n: {"int8": [], "simulation": [], "int8_top1": [], "simulation_top1": []}
                                      for n in names}
    for feed, sim, flt in zip(feeds, sims, floats):
        got = runner.feed(feed)
        for n, s, f in zip(names, sim, flt):
            g = align_layout(s, got[n])
            if steps.get(n):  # a float output (not quantized) has no steps
                diffs[n].append(((g.astype(np.float64) - s) / steps[n]).ravel())
            vs[n]["int8"].append(compare(f, g))
            vs[n]["simulation"].append(compare(f, s))
            if f.ndim == 2 and f.shape[0] == 1 and f.shape[1] > 1:
                vs[n]["int8_top1"].append(bool(np.argmax(g) == np.argmax(f)))
                vs[n]["simulation_top1"].append(bool(np.argmax(s) == np.argmax(f)))
    out = {}
    for n in names:
        row: dict[str, Any] = dict(step_agreement(np.concatenate(diffs[n]))) if diffs[n] else {}
        for side in ("int8", "simulation"):  # both: samples below a few int8 steps of the float output not judged
            row[f"{side}_vs_float"] = {"cosine": combine(vs[n][side], step=steps.get(n))["cosine"]}
            if vs[n][f"{side}_top1"]:
                row[f"{side}_vs_float"]["top1_agreement"] = float(np.mean(vs[n][f"{side}_top1"]))
        row["samples"] = len(feeds)
        out[n] = row
    return out


def tensor_rows(qdq_onnx: Path, int8_path: Path, activations: Sequence[dict],
                feeds: Sequence[dict[str, np.ndarray]], table: InputTable) -> list[dict[str, Any]]:
    """One row per fake-quantized tensor the int8 file holds, in the ONNX graph's order: the int8 file vs the
    simulation in that tensor's QAT steps, end to end and locally (see the module doc)."""
    import onnx
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    model = onnx.load(str(qdq_onnx))
    rows = graph_order(model, activations)
    if not rows or not feeds:
        return []
    names = sorted({r["onnx"] for r in rows})
    whole, cut = _session(model, names, cut=False), _session(model, names, cut=True)
    interp = Interpreter(model_path=str(int8_path), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    infos = io_infos(interp)[0]
    details = {d["name"]: d for d in interp.get_tensor_details()}
    by_index = {d["index"]: d for d in interp.get_tensor_details()}  # I/O tensors are renamed after quantizing
    diffs: dict[int, list[np.ndarray]] = {k: [] for k in range(len(rows))}
    local: dict[int, list[np.ndarray]] = {k: [] for k in range(len(rows))}
    for feed in feeds:
        refs = dict(zip(names, whole[0].run(names, onnx_feed(whole[1], feed))))
        for k, info in enumerate(infos):
            spec = table.get(info.name) or table.specs[k]
            interp.set_tensor(info.index, quantize(spec.to_tflite(np.asarray(feed[spec.name], np.float32)), info))
        interp.invoke()
        got = _int8_values(interp, rows, details, by_index, refs)
        for k, value in got.items():
            diffs[k].append(((value - refs[rows[k]["onnx"]]) / rows[k]["qat_scale"]).ravel())
        fed = {n: refs[n] for n in names}  # a tensor the int8 file does not hold as such: the simulation's own
        for k in sorted(got, reverse=True):  # the first TFLite tensor of each ONNX one wins
            fed[rows[k]["onnx"]] = got[k]
        cut_feed = onnx_feed([n for n in cut[1] if not n.endswith(FED)], feed)
        cut_feed.update({n + FED: fed[n].astype(np.float32) for n in names if n + FED in cut[1]})
        locals_ = dict(zip(names, cut[0].run(names, cut_feed)))
        for k in got:
            local[k].append(((got[k] - locals_[rows[k]["onnx"]]) / rows[k]["qat_scale"]).ravel())
    return [_row(r, diffs[k], local[k]) for k, r in enumerate(rows) if diffs[k]]


def graph_order(model: Any, activations: Sequence[dict]) -> list[dict]:
    """``activations`` sorted by where the ONNX graph (topologically ordered) produces each tensor."""
    position = {o: k for k, node in enumerate(model.graph.node) for o in node.output}
    return sorted(activations, key=lambda r: position.get(r["onnx"], -1))


def _row(r: dict, diffs: list[np.ndarray], local: list[np.ndarray]) -> dict[str, Any]:
    m, lm = step_agreement(np.concatenate(diffs)), step_agreement(np.concatenate(local))
    return {"onnx": r["onnx"], "tflite": r["tflite"], **m, "local_exact": lm["exact"],
            "local_within_1_step": lm["within_1_step"], "local_max_steps": lm["max_steps"]}


def _int8_values(interp: Any, rows: Sequence[dict], details: dict, by_index: dict,
                 refs: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    """Row number -> the int8 file's tensor, dequantized, in the simulation's layout."""
    got: dict[int, np.ndarray] = {}
    for k, r in enumerate(rows):
        d = details.get(r["tflite"]) or by_index.get(r.get("index", -1))
        if d is None:
            continue
        s, z = d["quantization"]
        value = _as_reference(refs[r["onnx"]], (interp.get_tensor(d["index"]).astype(np.float64) - z) * s)
        if value is not None:  # else a tensor that only shares the range (e.g. padded): not comparable
            got[k] = value
    return got


def _session(model: Any, names: list[str], cut: bool) -> tuple[Any, list[str]]:
    """The QDQ model's float fake-quant simulation returning ``names``; ``cut``: every consumer of a tensor in
    ``names`` reads it from a new graph input ``name + FED`` instead.  With the session, its input names."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in have)
    if cut:
        wanted = set(names)
        used = set()
        for node in m.graph.node:
            for i, name in enumerate(node.input):
                if name in wanted:
                    node.input[i] = name + FED
                    used.add(name)
        m.graph.input.extend(onnx.helper.make_tensor_value_info(n + FED, onnx.TensorProto.FLOAT, None)
                             for n in sorted(used))
    sess = simulation_session(m)
    return sess, [i.name for i in sess.get_inputs()]


def _as_reference(ref: np.ndarray, got: np.ndarray) -> np.ndarray | None:
    """``got`` in ``ref``'s layout: as it is or channels-last moved first, whichever is closer (a square
    tensor, C == H == W, has the same shape both ways)."""
    options = []
    if got.ndim == ref.ndim >= 3:
        moved = got.transpose(0, got.ndim - 1, *range(1, got.ndim - 1))
        if moved.shape == ref.shape:
            options.append(moved)
    try:
        options.append(align_layout(ref, got))
    except ValueError:
        pass
    return min(options, key=lambda o: float(np.mean(np.abs(o - ref)))) if options else None
