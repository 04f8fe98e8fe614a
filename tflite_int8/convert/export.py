"""Stage 1, export: a PyTorch module (or a user's ONNX file) -> static, simplified ONNX.

``export`` traces the module at batch 1 with every input of its ``forward`` (names from its signature; a
``dict`` of outputs names them), simplifies the graph with onnxslim, then checks ONNX Runtime against PyTorch
on real samples.  ``prepare_onnx`` does the same for an ONNX file: static shapes (symbolic dims fixed and
shapes re-inferred by onnxslim), simplified.
"""
from __future__ import annotations

import io
import time
import warnings
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..config.inputs import InputSpec, InputTable
from ..errors import ConversionError, InputError
from ..runtime.metrics import combine, compare
from ..runtime.reference import flatten_outputs, load_onnx, ort_session, run_session
from .constants import fix_inputs
from .opset import upgrade, wants_upgrade

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


def _forward(module: Any, dummies: tuple, table: InputTable) -> Any:
    """The model run once on zeros of the shapes (and dtypes) it will be exported at; a failure names the shapes."""
    try:
        return module(*dummies)
    except Exception as exc:
        shapes = ", ".join(f"{s.name}{'' if s.dtype == 'float32' else ' ' + s.dtype} {list(s.shape)}" for s in table)
        raise ConversionError(
            f"the model does not run on input(s) {shapes} ({type(exc).__name__}: {exc}). These shapes come from "
            f"the calibration data (photos: the preprocessing size, 224x224 by default; an array: its shape after "
            f"the sample axis); give data of the model's own input shape (--data x.npy holding (N, *shape), a .npz "
            f"per input name) or fix it with --input-shape NAME:DIMS", stage="export") from None


def export(module: Any, onnx_path: str | Path, inputs: Sequence[int] | InputTable, *,
           check_inputs: Sequence[Any] = (), input_name: str = "input") -> ExportResult:
    """Trace ``module`` at the static shape(s) ``inputs`` to ONNX (opset 17), simplify, check against PyTorch.

    ``inputs``: one input's shape, or the model's :class:`InputTable` (every ``forward`` argument, in order);
    ``check_inputs``: samples (an array, or {input name: array}) run through both.
    """
    import torch

    table = inputs if isinstance(inputs, InputTable) else InputTable((InputSpec(input_name, tuple(inputs)),))
    onnx_path = Path(onnx_path)
    adjustments = []
    if module.training:
        adjustments.append("model put in eval() mode for export (it was in training mode)")
    module = module.eval()
    dummies = tuple(torch.zeros(s.shape, dtype=getattr(torch, s.dtype)) for s in table)  # integer inputs stay integer
    raw = onnx_path.with_suffix(".raw.onnx")
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # nn.MultiheadAttention's fused eval kernel has no ONNX export
    try:
        with warnings.catch_warnings(), torch.no_grad(), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            names = output_names(_forward(module, dummies, table))
            torch.onnx.export(module, dummies, str(raw), opset_version=OPSET, input_names=table.names,
                              output_names=names, do_constant_folding=True, dynamo=False)
    except ConversionError:
        raise
    except Exception as exc:  # torch raises many kinds here; all mean "cannot export"
        raise ConversionError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}", stage="export") from None
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    result = prepare_onnx(raw, onnx_path)
    raw.unlink(missing_ok=True)
    result.adjustments[:0] = adjustments
    if check_inputs:
        result.check = _check(module, onnx_path, table, result.output_names, check_inputs)
    return result


def output_names(out: Any) -> list[str]:
    """ONNX output names for what ``forward`` returned: a dict's keys, else ``output`` / ``output0``, ``output1``..."""
    if isinstance(out, Mapping) and all(isinstance(v, object) and hasattr(v, "shape") for v in out.values()):
        return [str(k) for k in out]
    n_out = len(flatten_outputs(out))
    return ["output"] if n_out == 1 else [f"output{i}" for i in range(n_out)]


def _check(module: Any, onnx_path: Path, table: InputTable, names: list[str], samples: Sequence[Any]) -> dict:
    import torch

    per_output: dict[str, list] = {n: [] for n in names}
    session = ort_session(onnx_path)
    for item in samples:
        feed = {k: np.ascontiguousarray(v, dtype=table[k].dtype) for k, v in table.feed(item).items()}
        with torch.no_grad():
            refs = flatten_outputs(module(*[torch.from_numpy(feed[n]) for n in table.names]))
        got = run_session(session, feed, onnx_path)
        if len(refs) != len(got):
            raise ConversionError(f"PyTorch returned {len(refs)} outputs, ONNX {len(got)}", stage="export")
        for name, r, g in zip(names, refs, got):
            per_output[name].append(compare(r, g))
    return {"reference": "pytorch", "candidate": "onnxruntime",
            "outputs": {n: combine(m) for n, m in per_output.items()}}


def _static_outputs(model: Any, sample: Any) -> None:
    """Outputs whose shape inference left a dimension unknown (a recurrent state's ``[dim_0, batch, dim_2]``) get
    the shape one ONNX Runtime run gives: the .tflite's outputs are mapped back to them (their layout)."""
    from ..runtime.reference import run_onnx

    outs = model.graph.output
    if all(len(o.type.tensor_type.shape.dim) and all(d.HasField("dim_value") for d in o.type.tensor_type.shape.dim)
           for o in outs):
        return
    try:
        got = run_onnx(model, [sample])[0]
    except Exception:  # noqa: BLE001 - the pipeline runs ONNX Runtime next and names its failure
        return
    for o, value in zip(outs, got):
        shape = o.type.tensor_type.shape
        shape.ClearField("dim")
        for n in np.shape(value):
            shape.dim.add().dim_value = int(n)


def _probe(model: Any) -> list[dict[str, np.ndarray]]:
    """One seeded standard-normal sample for each input of ``model`` (static shapes)."""
    rng = np.random.default_rng(0)
    inits = {i.name for i in model.graph.initializer}
    return [{i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
             for i in model.graph.input if i.name not in inits}]


ORT_MAX_IR_VERSION = 11  # onnxruntime 1.23


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def prepare_onnx(src: str | Path, dst: str | Path, *, batch: int = 1,
                 shapes: Mapping[str, Sequence[int]] | None = None, values: Mapping[str, Any] | None = None,
                 check_inputs: Sequence[Any] = ()) -> ExportResult:
    """Load an ONNX file, make its input shapes static, simplify it with onnxslim, upgrade an opset below 13 to
    :data:`OPSET` (:mod:`.opset`, checked with ONNX Runtime on ``check_inputs``, else on one seeded random
    sample), save to ``dst``.

    ``shapes``: each input's static shape (``convert`` resolves them: :mod:`.inputs`); without them the batch
    dimension becomes ``batch`` and any other dynamic dimension is refused.  Fixed dims are set on the inputs
    and every other shape is inferred again (onnxslim's ``input_shapes``).  ``values``: inputs fixed to a
    constant (``--input-value``: :mod:`.constants`), folded before simplifying.
    """
    src, dst = Path(src), Path(dst)
    model = load_onnx(src)
    adjustments: list[str] = fix_inputs(model, values, str(src)) if values else []
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs:
        raise InputError(f"{src} has no inputs")
    fixed = False
    for inp in inputs:
        dims = inp.type.tensor_type.shape.dim
        want = list(shapes[inp.name]) if shapes and inp.name in shapes else None
        for k, d in enumerate(dims):
            if d.HasField("dim_value") and d.dim_value > 0:
                continue
            label = d.dim_param or "?"
            value = want[k] if want is not None else batch if k == 0 else None
            if value is None:
                flag = ",".join(str(x.dim_value) if x.dim_value > 0 else f"<{x.dim_param or 'N'}>" for x in dims)
                raise InputError(
                    f"{src}: input '{inp.name}' has a dynamic dimension {k} ('{label}'); int8 TFLite needs static "
                    f"shapes: give it with --input-shape {inp.name}:{flag}")
            d.Clear()
            d.dim_value = int(value)
            fixed = True
            if want is None:
                adjustments.append(f"input '{inp.name}': dynamic batch dimension '{label}' fixed to {batch}")
    import onnxslim

    t = time.perf_counter()
    resize = [f"{i.name}:{','.join(str(d.dim_value) for d in i.type.tensor_type.shape.dim)}" for i in inputs]
    try:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            slim = onnxslim.slim(model, input_shapes=resize) if fixed else onnxslim.slim(model)
    except Exception as exc:
        raise ConversionError(f"onnxslim could not simplify {src}: {type(exc).__name__}: {exc}", stage="export") from None
    if slim is None:
        raise ConversionError(f"onnxslim could not simplify {src}", stage="export")
    simplify_seconds = time.perf_counter() - t
    upgraded = None
    if wants_upgrade(slim):
        slim, upgraded = upgrade(slim, OPSET, list(check_inputs) or _probe(slim), src)
    if upgraded:
        adjustments.append(upgraded)
    if slim.ir_version > ORT_MAX_IR_VERSION:  # newer onnx writers; the graph itself is unchanged
        adjustments.append(f"ONNX IR version lowered from {slim.ir_version} to {ORT_MAX_IR_VERSION}, the newest "
                           f"ONNX Runtime {_ort_version()} reads")
        slim.ir_version = ORT_MAX_IR_VERSION
    if check_inputs:
        _static_outputs(slim, check_inputs[0])
    import onnx

    onnx.save(slim, str(dst))
    names = [i.name for i in slim.graph.input if i.name not in {x.name for x in slim.graph.initializer}]
    shapes = []
    for i in slim.graph.input:
        if i.name in names:
            shapes.append([d.dim_value for d in i.type.tensor_type.shape.dim])
    return ExportResult(dst, names, [o.name for o in slim.graph.output], shapes, adjustments=adjustments,
                        simplify_seconds=round(simplify_seconds, 3))


