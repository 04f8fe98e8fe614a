"""Stage 1, export: a PyTorch module (or a user's ONNX file) -> static, simplified ONNX.

``export`` traces the module at batch 1 and the spec's size, simplifies the
graph with onnxslim, then checks ONNX Runtime against PyTorch on real samples.
``prepare_onnx`` does the same for an ONNX file: static shapes, simplified.
"""
from __future__ import annotations

import io
import time
import warnings
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConversionError, InputError
from ..runtime.metrics import compare, worst
from ..runtime.reference import flatten_outputs, load_onnx, ort_session

OPSET = 17


@dataclass
class ExportResult:
    onnx_path: Path
    input_names: list[str]
    output_names: list[str]
    input_shapes: list[list[int]]
    check: dict[str, Any] = field(default_factory=dict)  # ORT vs PyTorch, per output
    adjustments: list[str] = field(default_factory=list)  # what we changed, said out loud
    simplify_seconds: float = 0.0  # onnxslim's share of the export stage


def export(module: Any, onnx_path: str | Path, input_shape: Sequence[int], *,
           check_inputs: Sequence[np.ndarray] = (), input_name: str = "input") -> ExportResult:
    """Trace ``module`` at the static ``input_shape`` to ONNX (opset 17), simplify, check against PyTorch."""
    import torch

    onnx_path = Path(onnx_path)
    adjustments = []
    if module.training:
        adjustments.append("model put in eval() mode for export (it was in training mode)")
    module = module.eval()
    dummy = torch.zeros(tuple(int(d) for d in input_shape), dtype=torch.float32)
    raw = onnx_path.with_suffix(".raw.onnx")
    try:
        with warnings.catch_warnings(), torch.no_grad(), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            n_out = len(flatten_outputs(module(dummy)))
            names = ["output"] if n_out == 1 else [f"output{i}" for i in range(n_out)]
            torch.onnx.export(module, (dummy,), str(raw), opset_version=OPSET, input_names=[input_name],
                              output_names=names, do_constant_folding=True, dynamo=False)
    except ConversionError:
        raise
    except Exception as exc:  # torch raises many kinds here; all mean "cannot export"
        raise ConversionError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}", stage="export") from None
    result = prepare_onnx(raw, onnx_path)
    raw.unlink(missing_ok=True)
    result.adjustments[:0] = adjustments
    if check_inputs:
        per_output: dict[str, list] = {n: [] for n in result.output_names}
        session = ort_session(onnx_path)
        for x in check_inputs:
            with torch.no_grad():
                ref = module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
            refs = flatten_outputs(ref)
            got = session.run(None, {result.input_names[0]: x.astype(np.float32)})
            if len(refs) != len(got):
                raise ConversionError(f"PyTorch returned {len(refs)} outputs, ONNX {len(got)}", stage="export")
            for name, r, g in zip(result.output_names, refs, got):
                per_output[name].append(compare(r, g))
        result.check = {"reference": "pytorch", "candidate": "onnxruntime",
                        "outputs": {n: worst(m) for n, m in per_output.items()}}
    return result


ORT_MAX_IR_VERSION = 11  # onnxruntime 1.23


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def prepare_onnx(src: str | Path, dst: str | Path, *, batch: int = 1) -> ExportResult:
    """Load an ONNX file, make its batch dimension static, simplify it with onnxslim, save to ``dst``."""
    import onnx

    src, dst = Path(src), Path(dst)
    model = load_onnx(src)
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs:
        raise InputError(f"{src} has no inputs")
    adjustments = []
    for inp in inputs:
        dims = inp.type.tensor_type.shape.dim
        for k, d in enumerate(dims):
            if d.HasField("dim_value") and d.dim_value > 0:
                continue
            label = d.dim_param or "?"
            if k == 0:
                d.Clear()
                d.dim_value = batch
                adjustments.append(f"input '{inp.name}': dynamic batch dimension '{label}' fixed to {batch}")
            else:
                raise InputError(
                    f"{src}: input '{inp.name}' has a dynamic dimension {k} ('{label}'); int8 TFLite needs static "
                    f"shapes: re-export with a fixed input size (e.g. torch.onnx.export without dynamic_axes)"
                )
    import onnxslim

    t = time.perf_counter()
    try:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            slim = onnxslim.slim(model)
    except Exception as exc:
        raise ConversionError(f"onnxslim could not simplify {src}: {type(exc).__name__}: {exc}", stage="export") from None
    if slim is None:
        raise ConversionError(f"onnxslim could not simplify {src}", stage="export")
    simplify_seconds = time.perf_counter() - t
    if slim.ir_version > ORT_MAX_IR_VERSION:  # newer onnx writers; the graph itself is unchanged
        adjustments.append(f"ONNX IR version lowered from {slim.ir_version} to {ORT_MAX_IR_VERSION}, the newest "
                           f"ONNX Runtime {_ort_version()} reads")
        slim.ir_version = ORT_MAX_IR_VERSION
    onnx.save(slim, str(dst))
    names = [i.name for i in slim.graph.input if i.name not in {x.name for x in slim.graph.initializer}]
    shapes = []
    for i in slim.graph.input:
        if i.name in names:
            shapes.append([d.dim_value for d in i.type.tensor_type.shape.dim])
    return ExportResult(dst, names, [o.name for o in slim.graph.output], shapes, adjustments=adjustments,
                        simplify_seconds=round(simplify_seconds, 3))


