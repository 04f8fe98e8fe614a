"""Inputs fixed to a constant (``--input-value NAME=VALUE``, Python ``input_values={"sr": 16000}``).

A voice-activity detector takes its sample rate as a rank-0 int64 input; int8 TFLite has no use for it, and the
model branches on it.  :func:`fix_inputs` replaces each such graph input by a constant of its declared dtype and
folds what depends on it: nodes whose inputs are all constant now are computed (ONNX's reference evaluator), and an
``If`` on a constant condition is replaced by the branch it takes.  Only what depends on a fixed input is folded
(the rest of the graph, e.g. a QDQ model's weights, is left to the simplifier).  A rank-0 input without a value is
refused naming the flag: :func:`split_fixed`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..config.inputs import check_named
from ..errors import InputError

SUBGRAPH_OPS = ("If", "Loop", "Scan")


def split_fixed(declared: Sequence[Any], values: Mapping[str, Any] | None, source: str) -> list[Any]:
    """The declared inputs (:func:`.inputs.declared_inputs` rows) that still take data: those without a value.
    InputError for a value naming no input, or a rank-0 input without one."""
    values = dict(values or {})
    names = [d.name for d in declared]
    check_named("--input-value", values, names, source)
    if values and any(d.dims is None for d in declared):
        raise InputError(f"--input-value fixes inputs of an ONNX model; {source} is a PyTorch model: give the value "
                         f"as the default of its forward() argument instead")
    scalars = [d.name for d in declared if d.dims == () and d.name not in values]
    if scalars:
        raise InputError(f"input '{scalars[0]}' of {source} is a scalar (rank 0), which int8 TFLite does not take as "
                         f"an input: fix it with --input-value {scalars[0]}=VALUE (Python: input_values=)")
    left = [d for d in declared if d.name not in values]
    if not left:
        raise InputError(f"--input-value fixes every input of {source}; at least one must take data")
    return left


def fix_inputs(model: Any, values: Mapping[str, Any], source: str) -> list[str]:
    """Replace each graph input named in ``values`` by a constant of its dtype and fold what depends on it (in
    place); the adjustments, one sentence per input."""
    from onnx import helper, numpy_helper

    g = model.graph
    notes = []
    for name, value in values.items():
        inp = next((i for i in g.input if i.name == name), None)
        if inp is None:
            raise InputError(f"--input-value {name}=...: {source} has no input '{name}'")
        dtype = helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
        dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
        try:
            array = np.asarray(value, dtype=dtype)
            if array.shape != tuple(dims):
                if None in dims:
                    raise ValueError(f"its shape {dims} is not static")
                array = np.full(dims, array, dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise InputError(f"--input-value {name}={value!r}: not a {dtype.name} value for input '{name}' of "
                             f"{source} ({exc})") from None
        g.input.remove(inp)
        g.initializer.append(numpy_helper.from_array(array, name))
        notes.append(f"input '{name}' fixed to the constant {_text(array)} ({dtype.name}) and removed from the "
                     f"model's inputs (--input-value)")
    folded = fold(model, set(values))
    if folded:
        notes.append(f"{len(folded)} node(s) depending on the fixed input(s) folded: {_counts(folded)}")
    return notes


def fold(model: Any, fixed: set[str]) -> list[str]:
    """Fold the nodes that depend on the constants ``fixed`` and on constants only; the folded nodes' op types."""
    from onnx import numpy_helper

    g = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    tainted, folded = set(fixed), []
    changed = True
    while changed:
        changed = False
        for k, node in enumerate(list(g.node)):
            ins = [i for i in node.input if i]
            if not ins or not any(i in tainted for i in ins) or not all(i in consts for i in ins):
                continue
            if node.op_type == "If":
                _inline(g, k, node, bool(np.asarray(consts[node.input[0]]).ravel()[0]))
            elif node.op_type in SUBGRAPH_OPS or node.domain not in ("", "ai.onnx"):
                continue
            else:
                for out, value in zip(node.output, _evaluate(model, node, consts)):
                    consts[out] = np.asarray(value)
                    g.initializer.append(numpy_helper.from_array(consts[out], out))
                g.node.remove(node)
            tainted.update(node.output)
            folded.append(node.op_type)
            changed = True
            break
    return folded


def _evaluate(model: Any, node: Any, consts: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    graph = helper.make_graph([node], "fold", [], [helper.make_empty_tensor_value_info(o) for o in node.output])
    one = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    return ReferenceEvaluator(one).run(None, {i: consts[i] for i in node.input if i})


def _inline(g: Any, k: int, node: Any, take: bool) -> None:
    """Replace the ``If`` node at position ``k`` by the nodes of the branch it takes (their names prefixed)."""
    from onnx import helper

    branch = next(a.g for a in node.attribute if a.name == ("then_branch" if take else "else_branch"))
    prefix = f"{node.name or node.output[0]}/{'then' if take else 'else'}/"
    inner = {o for n in branch.node for o in n.output if o} | {i.name for i in branch.initializer}
    rename = {t: prefix + t for t in inner}
    new = []
    for init in branch.initializer:
        copy = type(init)()
        copy.CopyFrom(init)
        copy.name = rename[init.name]
        g.initializer.append(copy)
    for n in branch.node:
        copy = type(n)()
        copy.CopyFrom(n)
        copy.name = prefix + n.name if n.name else ""
        copy.input[:] = [rename.get(i, i) for i in n.input]
        copy.output[:] = [rename.get(o, o) for o in n.output]
        new.append(copy)
    for out, b_out in zip(node.output, branch.output):
        new.append(helper.make_node("Identity", [rename.get(b_out.name, b_out.name)], [out], name=f"{prefix}{out}"))
    g.node.remove(node)
    for j, n in enumerate(new):
        g.node.insert(k + j, n)


def _text(array: np.ndarray) -> str:
    return str(array.item()) if array.size == 1 else f"{array.shape} of {_text(array.ravel()[:1])}"


def _counts(ops: list[str]) -> str:
    return ", ".join(f"{op} x{ops.count(op)}" for op in sorted(set(ops)))
