"""Where a quantization-aware conversion departs from its own simulation, tensor by tensor.

Every fake-quantized tensor that the int8 file holds (conversion.json ``qat.activations``) is read from
both sides on the same samples: the QDQ model (``model.onnx``) as float fake-quant (ONNX Runtime, graph
optimizations off), and the int8 file run by
TFLite's built-in kernels with every tensor kept.  Each row gives, in that tensor's QAT steps, the share
of values that are equal and within one step twice:

* **end to end** (``exact``, ``within_1_step``): the simulation run from the input on its own.  Integer
  kernels requantize with fixed-point multipliers (and an int32 bias) where the simulation rounds float
  results, so a value near a rounding tie can land one step away; deep models carry and grow those
  differences through the layers, so this drifts with depth even when every parameter is the model's own.
* **locally** (``local_exact``, ``local_within_1_step``): each tensor of the simulation computed from the
  int8 file's own values of the fake-quantized tensors before it (the QDQ graph cut at every fake-quant,
  fed TFLite's tensors).  This isolates one op: a tensor whose local agreement is low is where a
  parameter differs or a kernel rounds differently; ``departs`` marks those.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config.inputs import InputTable
from ..runtime.adapter import io_infos, quantize
from ..runtime.metrics import align_layout, step_agreement
from ..runtime.reference import onnx_feed, simulation_session

DEPARTS = 0.99  # local within-1-step share below which a tensor is said to depart from the simulation
FED = "::int8"  # suffix of the graph inputs that feed the int8 file's tensors into the cut simulation


def simulation_layers(out_dir: Path, report: dict[str, Any], samples: Sequence[Any],
                      table: InputTable) -> list[dict[str, Any]]:
    """One row per fake-quantized tensor, in graph order: the int8 file vs the QDQ model, in QAT steps, end to
    end and locally.  ``samples``: data reader samples; ``table``: the model's inputs."""
    import onnx
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    rows = [r for r in report.get("qat", {}).get("activations", [])]
    if not rows:
        return []
    model = onnx.load(str(out_dir / report.get("onnx", {}).get("file", "model.onnx")))
    names = sorted({r["onnx"] for r in rows})
    whole, cut = _session(model, names, cut=False), _session(model, names, cut=True)
    interp = Interpreter(model_path=str(out_dir / report["files"]["full-integer"]["file"]),
                         experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    infos = io_infos(interp)[0]
    details = {d["name"]: d for d in interp.get_tensor_details()}
    by_index = {d["index"]: d for d in interp.get_tensor_details()}  # I/O tensors are renamed after quantizing
    diffs: dict[int, list[np.ndarray]] = {k: [] for k in range(len(rows))}
    local: dict[int, list[np.ndarray]] = {k: [] for k in range(len(rows))}
    for sample in samples:
        feed = dict(zip(table.names, sample.arrays(table.names)))
        refs = dict(zip(names, whole[0].run(names, onnx_feed(whole[1], feed))))
        for k, info in enumerate(infos):
            spec = table.get(info.name) or table.specs[k]
            interp.set_tensor(info.index, quantize(spec.to_tflite(np.asarray(feed[spec.name], np.float32)), info))
        interp.invoke()
        got: dict[int, np.ndarray] = {}
        for k, r in enumerate(rows):
            d = details.get(r["tflite"]) or by_index.get(r.get("index", -1))
            if d is None:
                continue
            s, z = d["quantization"]
            value = _as_reference(refs[r["onnx"]], (interp.get_tensor(d["index"]).astype(np.float64) - z) * s)
            if value is not None:  # else a tensor that only shares the range (e.g. padded): not comparable
                got[k] = value
                diffs[k].append(((value - refs[r["onnx"]]) / r["qat_scale"]).ravel())
        fed = {n: refs[n] for n in names}  # a tensor the int8 file does not hold as such: the simulation's own
        for k in sorted(got, reverse=True):  # the first TFLite tensor of each ONNX one wins
            fed[rows[k]["onnx"]] = got[k]
        cut_feed = onnx_feed([n for n in cut[1] if not n.endswith(FED)], feed)
        cut_feed.update({n + FED: fed[n].astype(np.float32) for n in names if n + FED in cut[1]})
        locals_ = dict(zip(names, cut[0].run(names, cut_feed)))
        for k in got:
            local[k].append(((got[k] - locals_[rows[k]["onnx"]]) / rows[k]["qat_scale"]).ravel())
    out = []
    for k, r in enumerate(rows):
        if diffs[k]:
            m = step_agreement(np.concatenate(diffs[k]))
            lm = step_agreement(np.concatenate(local[k]))
            out.append({"onnx": r["onnx"], "tflite": r["tflite"], **m, "local_exact": lm["exact"],
                        "local_within_1_step": lm["within_1_step"], "local_max_steps": lm["max_steps"],
                        "departs": lm["within_1_step"] < DEPARTS})
    return out


def _session(model: Any, names: list[str], cut: bool) -> tuple[Any, list[str]]:
    """The QDQ model's float fake-quant simulation (:func:`~tflite_int8.runtime.reference.simulation_session`)
    returning ``names``; ``cut``: every consumer of a tensor in ``names`` reads it from a new graph input
    ``name + FED`` instead.  With the session, its input names."""
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
