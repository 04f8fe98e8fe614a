"""Graph rewrites that keep the math and make int8 work, applied to the ONNX model before translation.

:data:`REWRITES` is the table (name -> :class:`Rewrite`): each finds the nodes it applies to and rewrites them
in place.  :func:`rewrite` applies every rewrite that finds something, in table order, and measures what each
one changed: ONNX Runtime before vs after on the check samples (the largest absolute difference, per output).  A
rewrite whose difference exceeds its tolerance is undone and reported, never kept silently.

* ``names``: node names onnx2tf cannot use as TensorFlow scope names (``'Softmax@0' is not a valid
  scope name``) get valid ones; the mapping is kept, so diagnosis and messages show the original names;
* ``ceil-pool``: MaxPool/AveragePool with ``ceil_mode=1`` (or any padding) -> explicit padding and a pool without
  padding.  A max-pool is padded with copies of its edge values (CONCATENATION of slices: a copy of a value in
  the same window never changes the max), never with -inf, whose -3.4e38 would otherwise become part of the
  tensor's int8 range (scale 1e36: every real value rounds to zero); an average-pool is padded with zeros and its
  border divisors restored by a constant multiplier;
* ``erf-gelu``: ``x * 0.5 * (1 + erf(x / sqrt(2)))`` (PyTorch's default GELU) -> one Gelu node, which becomes
  TFLite's builtin GELU (int8) instead of a Flex Erf op;
* ``unroll-rnn``: LSTM and GRU (forward, reverse, bidirectional, fixed length) -> the same recurrence unrolled into
  MatMul/Add/Sigmoid/Tanh/Mul per time step (:mod:`.rnn_unroll`): plain int8 ops, each step calibrated;
* ``slice-axes``: a Slice of a rank >= 3 tensor on the channel axis and a later one (onnxslim merges PyTorch's
  ``y[:, :129, :]``-style slices into one) -> one Slice per axis that cuts something.  onnx2tf moves such a Slice's
  axes to channels-last but not its starts and ends, so the wrong axis is cut (an STFT written as Conv, Silero
  VAD's: the real/imaginary halves came out as the whole tensor and an empty one).
* ``sqrt``: ``Sqrt(x)`` -> ``Exp(0.5 * Log(x + eps))``: TFLite has no int8 SQRT (an STFT magnitude kept the
  whole model off full-integer), while int8 LOG and EXP exist; a Sqrt only divided by (``x / sqrt(v)``, a
  hand-written LayerNorm) is left alone: the converter makes it an int8 RSQRT and a MUL (PP-OCRv4's
  recognizer); ``eps`` (1e-12) keeps ``Log`` finite at 0 and changes the float result by at most ``sqrt(eps)``,
  measured like every rewrite.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import UnsupportedOpError
from ..runtime.reference import run_onnx
from .graph import Graph
from .rnn_unroll import RNN_OPS, unroll

VALID_NAME = re.compile(r"^[A-Za-z0-9_.\\/>-]+$")  # what TensorFlow accepts in a scope name (bar the first char)


@dataclass(frozen=True)
class Rewrite:
    """``find(graph)`` -> what it applies to (empty: nothing to do); ``apply(graph, found)`` -> what it did."""

    name: str
    help: str
    find: Callable[[Graph], list[Any]]
    apply: Callable[[Graph, list[Any]], str]
    tolerance: float = 1e-4  # the largest change allowed, as a fraction of the output's range


# ---- names ------------------------------------------------------------------------------------------------------

def _find_names(g: Graph) -> list[str]:
    return sorted({n.name for n in g.model.graph.node if n.name and not VALID_NAME.match(n.name)})


def _apply_names(g: Graph, bad: list[str]) -> str:
    taken = {n.name for n in g.model.graph.node}
    for old in bad:
        new = re.sub(r"[^A-Za-z0-9_.\\/>-]", "_", old)
        while new in taken:
            new += "_"
        taken.add(new)
        g.rename(old, new)
    shown = ", ".join(f"'{o}' -> '{g.renamed_from(o)}'" for o in bad[:3]) + (", ..." if len(bad) > 3 else "")
    return f"{len(bad)} node name(s) TensorFlow rejects renamed ({shown}); messages show the original names"


# ---- ceil-mode and padded pooling ---------------------------------------------------------------------------------

def _find_pools(g: Graph) -> list[Any]:
    found = []
    for node in g.model.graph.node:
        if node.op_type not in ("MaxPool", "AveragePool"):
            continue
        a = g.attrs(node)
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or len(node.output) > 1:
            continue
        pads = list(a.get("pads", []))
        if a.get("ceil_mode", 0) or any(pads):
            if node.op_type == "MaxPool" and any(d != 1 for d in a.get("dilations", [])):
                continue  # an edge copy is not always inside a dilated window
            if g.shape(node.input[0]) and g.shape(node.output[0]):
                found.append(node)
    return found


def _apply_pools(g: Graph, nodes: list[Any]) -> str:
    for node in nodes:
        a = g.attrs(node)
        shape, out = g.shape(node.input[0]), g.shape(node.output[0])
        k, rank = list(a["kernel_shape"]), len(a["kernel_shape"])
        strides = list(a.get("strides", [1] * rank))
        dil = list(a.get("dilations", [1] * rank))
        pads = list(a.get("pads", [0] * 2 * rank))
        begin, end = pads[:rank], pads[rank:]
        for i in range(rank):  # the padded length the output size needs
            need = (out[2 + i] - 1) * strides[i] + (k[i] - 1) * dil[i] + 1
            end[i] = max(end[i], need - shape[2 + i] - begin[i])
        x = node.input[0]
        if node.op_type == "MaxPool":
            x = _edge_pad(g, node, x, begin, end)
        elif any(begin) or any(end):
            x = g.pad(x, [0, 0] + begin + [0, 0] + end, like=node)
        attrs = {"kernel_shape": k, "strides": strides}
        if node.op_type == "MaxPool" and (g.opset >= 10 or any(d != 1 for d in dil)):
            attrs["dilations"] = dil
        pooled = g.add(node.op_type, [x], like=node, **attrs)
        if node.op_type == "AveragePool":
            pooled = _restore_divisors(g, node, pooled, a, shape, begin, end)
        g.replace(node, pooled)
    kinds = sorted({n.op_type for n in nodes})
    return (f"{len(nodes)} {'/'.join(kinds)} with ceil_mode or padding -> explicit padding (max-pool: edge copies, "
            f"never -inf; average-pool: zeros and a constant divisor correction) and a pool without padding")


def _edge_pad(g: Graph, node: Any, x: str, begin: list[int], end: list[int]) -> str:
    """``x`` padded on each spatial axis with copies of its first/last slice (CONCATENATION of slices)."""
    for i, (b, e) in enumerate(zip(begin, end)):
        if not b and not e:
            continue
        axis = 2 + i
        first = g.slice(x, [0], [1], [axis], like=node)
        last = g.slice(x, [-1], [np.iinfo(np.int64).max], [axis], like=node)
        x = g.add("Concat", [first] * b + [x] + [last] * e, like=node, axis=axis)
    return x


def _restore_divisors(g: Graph, node: Any, pooled: str, a: dict, shape: list[int], begin: list[int],
                      end: list[int]) -> str:
    """Multiply by (k / the original divisor) where a window met padding: the original pool of ones over the new
    pool of zero-padded ones, computed once with ONNX Runtime on single-node models."""
    import onnx
    from onnx import TensorProto, helper

    ones = np.ones([1, 1] + list(shape[2:]), np.float32)

    def pool_of_ones(attrs: dict, pads: list[int]) -> np.ndarray:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(ones.shape))
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        nodes = []
        src = "x"
        if any(pads):
            nodes.append(helper.make_node("Pad", ["x", "p"], ["xp"], mode="constant"))
            src = "xp"
        nodes.append(helper.make_node("AveragePool", [src], ["y"], **attrs))
        inits = [onnx.numpy_helper.from_array(np.array([0, 0] + pads[:len(pads) // 2] + [0, 0] + pads[len(pads) // 2:],
                                                       np.int64), "p")] if any(pads) else []
        model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits),
                                  opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        return run_onnx(model, [ones])[0][0]

    original = {k: v for k, v in a.items() if k in ("kernel_shape", "strides", "pads", "ceil_mode", "count_include_pad")}
    new = {"kernel_shape": a["kernel_shape"], "strides": a.get("strides", [1] * len(a["kernel_shape"]))}
    factor = pool_of_ones(original, []) / pool_of_ones(new, begin + end)
    if np.allclose(factor, 1.0, rtol=0, atol=1e-7):
        return pooled
    return g.add("Mul", [pooled, g.const(factor.astype(np.float32), "divisor_fix")], like=node)


# ---- erf GELU -----------------------------------------------------------------------------------------------------

def _find_gelu(g: Graph) -> list[tuple[str, str, list[Any]]]:
    """(x, output, nodes) of every ``x * 0.5 * (1 + erf(x / sqrt(2)))``, in PyTorch's and Hugging Face's orders."""
    found = []
    for erf in (n for n in g.model.graph.node if n.op_type == "Erf"):
        scale = g.producer(erf.input[0])
        if scale is None or not _binary_with_const(g, scale, {"Div": np.sqrt(2.0), "Mul": 1 / np.sqrt(2.0)}):
            continue
        x = g.other_input(scale)
        add = g.only_consumer(erf.output[0])
        if add is None or add.op_type != "Add" or not g.const_value_is(g.other_input(add, erf.output[0]), 1.0):
            continue
        m1 = g.only_consumer(add.output[0])
        if m1 is None or m1.op_type != "Mul":
            continue
        other = g.other_input(m1, add.output[0])
        chain = [scale, erf, add, m1]
        half_x = g.producer(other)
        if other == x or g.const_value_is(other, 0.5):
            m2 = g.only_consumer(m1.output[0])
            want = 0.5 if other == x else None
            if m2 is None or m2.op_type != "Mul":
                continue
            rest = g.other_input(m2, m1.output[0])
            if (want is not None and not g.const_value_is(rest, 0.5)) or (want is None and rest != x):
                continue
            chain.append(m2)
        elif not (half_x is not None and half_x.op_type == "Mul" and _binary_with_const(g, half_x, {"Mul": 0.5})
                  and g.other_input(half_x) == x):
            continue
        found.append((x, chain[-1].output[0], chain))
    return found


def _binary_with_const(g: Graph, node: Any, wanted: dict[str, float]) -> bool:
    return node.op_type in wanted and g.const_value_is(node.input[1], wanted[node.op_type], rtol=1e-4)


def _apply_gelu(g: Graph, found: list[tuple[str, str, list[Any]]]) -> str:
    for x, out, chain in found:
        gelu = g.add("Gelu", [x], like=chain[-1], domain="com.microsoft")
        g.declare(out, g.shape(x))  # element-wise; ONNX shape inference does not know the contrib op
        g.replace(chain[-1], gelu)
        g.remove_unused()
    return (f"{len(found)} erf GELU subgraph(s) (x * 0.5 * (1 + erf(x / sqrt(2)))) -> one Gelu each, TFLite's builtin "
            f"GELU (int8) instead of a Flex Erf op")


# ---- Slices on several axes ---------------------------------------------------------------------------------------

def _slice_params(g: Graph, node: Any) -> list[tuple[int, int, int, int]] | None:
    """(axis, start, end, step) per axis of a Slice with constant inputs (None: computed, or attribute form)."""
    shape = g.shape(node.input[0])
    if shape is None or len(node.input) < 3:
        return None
    vals = [g.const_value(i) if i else None for i in list(node.input[1:5])]
    if any(v is None for k, v in enumerate(vals) if node.input[1 + k]):
        return None
    starts, ends = vals[0], vals[1]
    axes = vals[2] if len(vals) > 2 and vals[2] is not None else np.arange(len(starts))
    steps = vals[3] if len(vals) > 3 and vals[3] is not None else np.ones(len(starts), np.int64)
    return [(int(a) % len(shape), int(s), int(e), int(st)) for a, s, e, st in zip(axes, starts, ends, steps)]


def _find_slices(g: Graph) -> list[Any]:
    """Slices of rank >= 3 tensors on the channel axis and a later one: onnx2tf moves those axes to channels-last
    (1 -> last, k -> k - 1) but keeps the starts and ends in the ONNX order, so each is applied to the wrong axis."""
    found = []
    for node in (n for n in g.model.graph.node if n.op_type == "Slice"):
        params = _slice_params(g, node)
        axes = [p[0] for p in params or []]
        if params and len(g.shape(node.input[0])) >= 3 and 1 in axes and any(a >= 2 for a in axes):
            found.append(node)
    return found


def _apply_slices(g: Graph, nodes: list[Any]) -> str:
    for node in nodes:
        shape = g.shape(node.input[0])
        x = node.input[0]
        for axis, start, end, step in _slice_params(g, node):
            whole = step == 1 and start in (0, -shape[axis]) and (end >= shape[axis])
            if not whole:
                x = g.slice(x, [start], [end], [axis], like=node, steps=None if step == 1 else [step])
        g.replace(node, x if x != node.input[0] else g.add("Identity", [x], like=node))
    return (f"{len(nodes)} Slice(s) on the channel axis and a later one -> one Slice per axis that cuts something "
            f"(onnx2tf moves a multi-axis Slice's axes to channels-last but not its starts and ends: an STFT written "
            f"as Conv lost its real/imaginary split)")


# ---- square roots --------------------------------------------------------------------------------------------------

SQRT_EPS = 1e-12  # Log(0) is -inf; sqrt(x + 1e-12) differs from sqrt(x) by at most 1e-6 (at x = 0)


def _find_sqrts(g: Graph) -> list[Any]:
    """Sqrt nodes, bar those only divided by (x / sqrt(v), a hand-written norm): TFLite makes those RSQRT, int8."""
    return [n for n in g.model.graph.node if n.op_type == "Sqrt" and not _only_divides(g, n.output[0])]


def _only_divides(g: Graph, name: str) -> bool:
    users = g.consumers(name)
    return bool(users) and all(u.op_type == "Div" and list(u.input).index(name) == 1 for u in users)


def _apply_sqrts(g: Graph, nodes: list[Any]) -> str:
    for node in nodes:
        shifted = g.add("Add", [node.input[0], g.const(np.array(SQRT_EPS, np.float32), "sqrt_eps")], like=node)
        half = g.add("Mul", [g.add("Log", [shifted], like=node), g.const(np.array(0.5, np.float32), "half")],
                     like=node)
        g.replace(node, g.add("Exp", [half], like=node))
    return (f"{len(nodes)} Sqrt(x) -> Exp(0.5 * Log(x + {SQRT_EPS:g})) (TFLite has no int8 SQRT; int8 LOG and EXP "
            f"exist)")


# ---- recurrent layers ----------------------------------------------------------------------------------------------

def _find_rnns(g: Graph) -> list[Any]:
    return [n for n in g.model.graph.node if n.op_type in RNN_OPS]


def _apply_rnns(g: Graph, nodes: list[Any]) -> str:
    steps = [unroll(g, node) for node in nodes]
    kinds = sorted({n.op_type for n in nodes})
    return (f"{len(nodes)} {'/'.join(kinds)} layer(s) unrolled over {', '.join(map(str, sorted(set(steps))))} time "
            f"steps into MatMul/Add/Sigmoid/Tanh/Mul (TFLite has no int8 GRU, and the TF calibrator crashes on "
            f"recurrent loops)")


REWRITES: dict[str, Rewrite] = {r.name: r for r in (
    Rewrite("names", "node names TensorFlow rejects (e.g. 'Softmax@0') renamed, mapped back in messages",
            _find_names, _apply_names, tolerance=0.0),
    Rewrite("ceil-pool", "MaxPool/AveragePool with ceil_mode or padding -> explicit edge/zero padding, no -inf",
            _find_pools, _apply_pools),
    Rewrite("erf-gelu", "x*0.5*(1+erf(x/sqrt(2))) -> TFLite's builtin GELU (int8), not Flex Erf",
            _find_gelu, _apply_gelu, tolerance=1e-3),
    Rewrite("unroll-rnn", "LSTM/GRU of fixed length -> unrolled MatMul/Add/Sigmoid/Tanh/Mul steps",
            _find_rnns, _apply_rnns, tolerance=1e-3),
    Rewrite("slice-axes", "Slice on the channel axis and a later one -> one Slice per axis (onnx2tf misplaces "
            "their starts/ends)", _find_slices, _apply_slices, tolerance=0.0),
    Rewrite("sqrt", "Sqrt(x) -> Exp(0.5*Log(x+eps)): TFLite has no int8 SQRT", _find_sqrts, _apply_sqrts,
            tolerance=1e-3),
)}


def rewrite(onnx_path: str | Path, check_inputs: Sequence[np.ndarray]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Apply :data:`REWRITES` to ``onnx_path`` in place; (one record per rewrite applied, new name -> original name).

    Each record: name, what it did, the nodes it touched and the float change it made (ONNX Runtime before vs
    after on ``check_inputs``, per output: max abs error and that as a fraction of the output's range).
    """
    import onnx

    path = Path(onnx_path)
    model = onnx.load(str(path))
    before = run_onnx(model, check_inputs)
    records, renamed = [], {}
    for rw in REWRITES.values():
        g = Graph(model)
        found = rw.find(g)
        if not found:
            continue
        try:
            what = rw.apply(g, found)
            g.finish()
            after = run_onnx(g.model, check_inputs)
        except UnsupportedOpError:
            raise
        except Exception as exc:  # a rewrite that cannot be done here is reported, and the model left as it was
            if rw.name == "unroll-rnn":
                raise UnsupportedOpError(f"{path.name}: the recurrent layer(s) could not be unrolled "
                                         f"({type(exc).__name__}: {exc}), so they cannot be made full-integer",
                                         ops=[n.op_type for n in found], stage="rewrite") from None
            records.append({"rewrite": rw.name, "what": rw.help, "nodes": len(found), "applied": False,
                            "why": f"{type(exc).__name__}: {exc}", "float_change": {}, "checked_on_samples": 0})
            continue
        change = _change(before, after, [o.name for o in g.model.graph.output])
        worst = max((c["relative"] for c in change.values()), default=0.0)
        record = {"rewrite": rw.name, "what": what, "nodes": len(found), "float_change": change,
                  "checked_on_samples": len(check_inputs), "opset": g.opset}
        if worst > rw.tolerance:
            record.update(applied=False, why=f"changed the float outputs by {worst:.3g} of their range (more than "
                                             f"{rw.tolerance:g}): not kept")
            if rw.name == "unroll-rnn":
                raise UnsupportedOpError(f"{path.name}: {what}, but the unrolled model differs from the original "
                                         f"by {worst:.3g} of the output range; the recurrent layers cannot be made "
                                         f"full-integer", ops=[n.op_type for n in found], stage="rewrite")
        else:
            record["applied"] = True
            model, before = g.model, after
            renamed.update(g.renamed)
        records.append(record)
    onnx.save(model, str(path))
    return records, renamed


def _change(before: list, after: list, names: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for i, name in enumerate(names):
        err = max((float(np.max(np.abs(np.asarray(b[i], np.float64) - np.asarray(a[i], np.float64))))
                   for b, a in zip(before, after)), default=0.0)
        peak = max((float(np.max(np.abs(b[i]))) for b in before), default=0.0)
        out[name] = {"max_abs_error": err, "relative": err / peak if peak > 0 else err}
    return out


def adjustment_text(record: dict[str, Any]) -> str:
    """The conversion.json adjustment line of one rewrite record."""
    change = record["float_change"]
    worst = max(change.items(), key=lambda kv: kv[1]["max_abs_error"]) if change else ("-", {"max_abs_error": 0.0,
                                                                                             "relative": 0.0})
    measured = (f"float change (ONNX Runtime before vs after, {record['checked_on_samples']} check samples): max abs "
                f"{worst[1]['max_abs_error']:.3g} on '{worst[0]}' ({worst[1]['relative']:.2g} of its range)")
    if not record.get("applied", True):
        return f"rewrite {record['rewrite']} NOT applied: {record['why']}; {measured}"
    at = f" (new nodes written at the model's opset {record['opset']})" if record.get("opset", 13) < 13 else ""
    return f"rewrite {record['rewrite']}: {record['what']}{at}; {measured}"
