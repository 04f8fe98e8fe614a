"""Where a quantization-aware conversion departs from its own simulation, tensor by tensor.

Every fake-quantized tensor that the int8 file holds (conversion.json ``qat.activations``) is read from
both sides on the same samples: the QDQ model (``model.onnx``) in ONNX Runtime, and the int8 file run by
TFLite's built-in kernels with every tensor kept.  Each row gives, in that tensor's QAT steps, the share
of values that are equal and within one step.  Integer kernels requantize with fixed-point multipliers
where the simulation rounds float results, so ties fall differently and small differences grow through
the layers: the first tensor whose agreement drops is where to look.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config.inputs import InputTable
from ..runtime.adapter import io_infos, quantize
from ..runtime.metrics import align_layout, step_agreement
from ..runtime.reference import onnx_feed

DEPARTS = 0.99  # within-1-step share below which a tensor is said to depart from the simulation


def simulation_layers(out_dir: Path, report: dict[str, Any], samples: Sequence[Any],
                      table: InputTable) -> list[dict[str, Any]]:
    """One row per fake-quantized tensor, in graph order: the int8 file vs the QDQ model, in QAT steps.
    ``samples``: data reader samples; ``table``: the model's inputs."""
    import onnx
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    rows = [r for r in report.get("qat", {}).get("activations", [])]
    if not rows:
        return []
    model = onnx.load(str(out_dir / report.get("onnx", {}).get("file", "model.onnx")))
    names = sorted({r["onnx"] for r in rows})
    have = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in have)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    onnx_inputs = [i.name for i in sess.get_inputs()]
    interp = Interpreter(model_path=str(out_dir / report["files"]["full-integer"]["file"]),
                         experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    infos = io_infos(interp)[0]
    details = {d["name"]: d for d in interp.get_tensor_details()}
    by_index = {d["index"]: d for d in interp.get_tensor_details()}  # I/O tensors are renamed after quantizing
    diffs: dict[int, list[np.ndarray]] = {k: [] for k in range(len(rows))}
    for sample in samples:
        feed = dict(zip(table.names, sample.arrays(table.names)))
        refs = dict(zip(names, sess.run(names, onnx_feed(onnx_inputs, feed))))
        for k, info in enumerate(infos):
            spec = table.get(info.name) or table.specs[k]
            interp.set_tensor(info.index, quantize(spec.to_tflite(np.asarray(feed[spec.name], np.float32)), info))
        interp.invoke()
        for k, r in enumerate(rows):
            d = details.get(r["tflite"]) or by_index.get(r.get("index", -1))
            ref = refs[r["onnx"]]
            if d is None:
                continue
            s, z = d["quantization"]
            got = _as_reference(ref, (interp.get_tensor(d["index"]).astype(np.float64) - z) * s)
            if got is not None:  # else a tensor that only shares the range (e.g. padded): not comparable
                diffs[k].append(((got - ref) / r["qat_scale"]).ravel())
    out = []
    for k, r in enumerate(rows):
        if diffs[k]:
            m = step_agreement(np.concatenate(diffs[k]))
            out.append({"onnx": r["onnx"], "tflite": r["tflite"], **m, "departs": m["within_1_step"] < DEPARTS})
    return out


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
