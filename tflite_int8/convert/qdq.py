"""A quantization-aware ONNX graph (QuantizeLinear/DequantizeLinear pairs) read and taken apart.

:func:`read_qdq` finds every fake-quant pair and says what it quantizes: an *activation*
(``x -> QuantizeLinear -> [Clip] -> DequantizeLinear -> y``: the learned range of ``y``) or a *weight*
(a constant through ``QuantizeLinear -> DequantizeLinear``, or an integer initializer through
``DequantizeLinear``: the learned grid of the weight).  It refuses what is not one fake-quant per
tensor: a second fake-quant stacked on a fake-quantized tensor, a quantized tensor that is never
dequantized (an integer graph), per-channel activation ranges, 16-bit or 4-bit grids.

:func:`strip` removes the pairs and gives a float graph, in one of two forms:
``"grid"``, every weight replaced by its dequantized (on-grid) value — what is translated and
quantized, so that the weights the converter sees are already the model's own — and ``"float"``,
every weight back to the float value it had before fake-quant (where the graph keeps it) and no
rounding anywhere: the model without fake-quant, the second reference of a QAT conversion.
Activation pairs become ``Identity`` nodes, so every tensor keeps its name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import AlreadyQuantizedError, UnsupportedOpError

INT_RANGES = {2: ("uint8", 0, 255), 3: ("int8", -128, 127)}  # onnx.TensorProto data type -> name, qmin, qmax
BIAS_TYPES = {6: "int32"}
SIGNED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sub", "BatchNormalization")  # outputs of any sign


@dataclass(frozen=True)
class QRange:
    """The learned range of one activation tensor: ``scale`` and ``zero_point`` on a ``dtype`` grid."""

    tensor: str
    scale: float
    zero_point: int
    dtype: str
    qmin: int
    qmax: int

    @property
    def int8_zero_point(self) -> int:
        """The same grid as int8 (TFLite's activations): uint8 zero points move by -128."""
        return self.zero_point - 128 if self.dtype == "uint8" else self.zero_point

    @property
    def narrowed(self) -> bool:
        """Fewer than 256 levels (e.g. PyTorch's reduce_range, exported as a Clip to 0..127)."""
        return self.qmax - self.qmin < 255

    def int8_limits(self) -> tuple[float, float]:
        """The float range of the int8 grid with this scale and zero point (TFLite's min/max for it)."""
        z = self.int8_zero_point
        return float(np.float64(self.scale) * (-128 - z)), float(np.float64(self.scale) * (127 - z))

    def to_dict(self) -> dict[str, Any]:
        return {"tensor": self.tensor, "scale": self.scale, "zero_point": self.zero_point, "dtype": self.dtype,
                "qmin": self.qmin, "qmax": self.qmax}


@dataclass
class QWeight:
    """The learned grid of one weight tensor (the DequantizeLinear output a Conv/Gemm/MatMul reads)."""

    tensor: str
    q: np.ndarray            # the integers
    scale: np.ndarray        # one per tensor (shape ()) or one per slice along ``axis``
    zero_point: np.ndarray
    axis: int | None
    dtype: str
    original: np.ndarray | None = None  # the float weight before fake-quant, when the graph keeps it

    @property
    def grid(self) -> np.ndarray:
        """The dequantized (on-grid) weight, float32, computed like DequantizeLinear."""
        return ((self.q.astype(np.float32) - self._along(self.zero_point).astype(np.float32))
                * self._along(self.scale)).astype(np.float32)

    @property
    def steps(self) -> np.ndarray:
        """The integers relative to their zero point (what a symmetric grid stores)."""
        return self.q - self._along(self.zero_point)

    def _along(self, v: np.ndarray) -> np.ndarray:
        if self.axis is None or v.ndim == 0:
            return v
        shape = [1] * self.q.ndim
        shape[self.axis] = -1
        return v.reshape(shape)


@dataclass
class QdqGraph:
    activations: dict[str, QRange]
    weights: dict[str, QWeight]
    pairs: int  # fake-quant pairs found
    back_to_back: list[str] = field(default_factory=list)  # fake-quantized again right away (requantized)
    same_grid: list[str] = field(default_factory=list)  # of those, again on the same grid: a no-op (e.g. a dropout)

    @property
    def is_qat(self) -> bool:
        return bool(self.activations or self.weights)


def read_qdq(model: Any, source: str) -> QdqGraph:
    """Every fake-quant pair of ``model`` (an onnx.ModelProto); errors for what is not plain fake-quant."""
    from onnx import numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    consts = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    users = _users(g)
    producer = {o: n for n in g.node for o in n.output}
    activations: dict[str, QRange] = {}
    weights: dict[str, QWeight] = {}
    pairs = 0
    back_to_back: list[str] = []
    same_grid: list[str] = []

    def value(name: str) -> np.ndarray | None:
        if name in inits:
            return numpy_helper.to_array(inits[name])
        if name in consts:
            return numpy_helper.to_array(consts[name].attribute[0].t)
        return None

    for node in g.node:
        if node.op_type == "DequantizeLinear":
            src = producer.get(node.input[0])
            if src is not None and src.op_type in ("QuantizeLinear", "Clip"):
                continue  # handled from its QuantizeLinear
            q = value(node.input[0])
            if q is None:
                raise AlreadyQuantizedError(f"{source}: DequantizeLinear '{node.name}' reads '{node.input[0]}', an "
                                            f"integer tensor computed in the graph: an integer model, not a "
                                            f"fake-quant one. {AlreadyQuantizedError.ADVICE}")
            weights[node.output[0]] = _weight(node, q, value, source)
            pairs += 1
        elif node.op_type == "QuantizeLinear":
            pairs += 1
            chain, dq = _chain(node, users, source)
            scale, zp, kind = _qparams(node, value, source)
            again = [n for n in users.get(dq.output[0], []) if n.op_type == "QuantizeLinear"]
            if again:
                back_to_back.append(dq.output[0])
                if all(_same_grid((scale, zp), _qparams(n, value, source)[:2]) for n in again) and not chain:
                    same_grid.append(dq.output[0])
            w = value(node.input[0])
            if w is not None:
                axis = _axis(node, w.ndim, scale)
                weights[dq.output[0]] = QWeight(dq.output[0], _quantize(w, scale, zp, kind, axis), _flat(scale, axis),
                                                _flat(zp, axis), axis, kind[0], original=w.astype(np.float32))
                continue
            if scale.size != 1:
                raise UnsupportedOpError(f"{source}: QuantizeLinear '{node.name}' quantizes activation "
                                         f"'{node.input[0]}' per channel; TFLite activations have one scale per "
                                         f"tensor", ops=["QuantizeLinear"], stage="export")
            lo, hi = kind[1], kind[2]
            for clip in chain:
                c_lo, c_hi = (value(clip.input[k]) if len(clip.input) > k and clip.input[k] else None for k in (1, 2))
                lo = max(lo, int(c_lo)) if c_lo is not None else lo
                hi = min(hi, int(c_hi)) if c_hi is not None else hi
            activations[dq.output[0]] = QRange(dq.output[0], float(scale.reshape(())), int(zp.reshape(())), kind[0],
                                               lo, hi)
    _check_not_stacked(back_to_back, activations, source)
    return QdqGraph(activations, weights, pairs, back_to_back, same_grid)


def folded_relus(model: Any, qdq: QdqGraph) -> list[str]:
    """The fake-quantized tensors whose range starts at exactly 0 (zero point at the grid's lowest level) right
    after an op whose output has any sign (:data:`SIGNED_OPS`): the fake-quant is the model's ReLU (ONNX Runtime's ``quantize_static``
    removes a Relu or ReLU6 Clip whose output range the fake-quant already clips to)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    out = []
    for name, qr in qdq.activations.items():
        node = producer[name]
        while node.op_type != "QuantizeLinear":
            node = producer[node.input[0]]
        src = producer.get(node.input[0])
        if qr.zero_point == qr.qmin and src is not None and src.op_type in SIGNED_OPS:
            out.append(name)
    return out


def strip(model: Any, qdq: QdqGraph, form: str = "grid") -> Any:
    """A copy of ``model`` without fake-quant: ``form`` ``"grid"`` (dequantized weights) or ``"float"`` (the
    original float weights where the model keeps them, and a Relu for each of :func:`folded_relus`)."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    producer = {o: n for n in g.node for o in n.output}
    drop: set[int] = set()
    new_nodes = []
    for name, w in qdq.weights.items():
        dq = producer[name]
        drop.add(id(dq))
        src = producer.get(dq.input[0])
        if src is not None and src.op_type == "QuantizeLinear":
            drop.add(id(src))
        values = w.original if form == "float" and w.original is not None else w.grid
        g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(values, np.float32), name))
    relus = set(folded_relus(model, qdq)) if form == "float" else set()
    for name in qdq.activations:
        dq = producer[name]
        node = dq
        while node.op_type != "QuantizeLinear":
            drop.add(id(node))
            node = producer[node.input[0]]
        drop.add(id(node))
        op = "Relu" if name in relus else "Identity"
        new_nodes.append((id(dq), helper.make_node(op, [node.input[0]], [name], name=f"{name}/fake_quant")))
    replace = dict(new_nodes)
    nodes = [replace.get(id(n), n) for n in g.node if id(n) not in drop or id(n) in replace]
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return out


def _users(g: Any) -> dict[str, list[Any]]:
    users: dict[str, list[Any]] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    return users


def _chain(q: Any, users: dict[str, list[Any]], source: str) -> tuple[list[Any], Any]:
    """The Clip nodes between a QuantizeLinear and its DequantizeLinear, and that DequantizeLinear."""
    chain, name = [], q.output[0]
    while True:
        nxt = users.get(name, [])
        if len(nxt) == 1 and nxt[0].op_type == "Clip":
            chain.append(nxt[0])
            name = nxt[0].output[0]
            continue
        if len(nxt) == 1 and nxt[0].op_type == "DequantizeLinear":
            return chain, nxt[0]
        what = ", ".join(sorted({n.op_type for n in nxt})) or "nothing (it is a graph output)"
        raise AlreadyQuantizedError(f"{source}: the integer output of QuantizeLinear '{q.name}' goes to {what}, not "
                                    f"to one DequantizeLinear: an integer model, not a fake-quant (QDQ) one. "
                                    f"{AlreadyQuantizedError.ADVICE}")


def _check_not_stacked(back_to_back: list[str], activations: dict[str, QRange], source: str) -> None:
    """A few fake-quants right after another are requantizations a QAT tool makes itself (PyTorch's FX mode
    around an identity op); most of them doubled means a second set of fake-quant stacked on the first."""
    if len(back_to_back) * 2 > len(activations) - len(back_to_back) > 0 or back_to_back and len(activations) <= 2:
        raise AlreadyQuantizedError(f"{source}: {len(back_to_back)} of {len(activations) - len(back_to_back)} "
                                    f"fake-quantized tensors are fake-quantized again right away (e.g. "
                                    f"'{back_to_back[0]}'): a second set of QuantizeLinear/DequantizeLinear stacked on "
                                    f"the first; quantization can not be applied more than once. Export the QAT model "
                                    f"once, from its quantization-aware training, without adding fake-quant on top")


def _qparams(node: Any, value: Any, source: str) -> tuple[np.ndarray, np.ndarray, tuple[str, int, int]]:
    scale = value(node.input[1])
    if scale is None:
        raise UnsupportedOpError(f"{source}: {node.op_type} '{node.name}' has a computed scale; fake-quant scales "
                                 f"must be constants", ops=[node.op_type], stage="export")
    zp_name = node.input[2] if len(node.input) > 2 else ""
    zp = value(zp_name) if zp_name else np.zeros(scale.shape, np.uint8)
    if zp is None:
        raise UnsupportedOpError(f"{source}: {node.op_type} '{node.name}' has a computed zero point",
                                 ops=[node.op_type], stage="export")
    from onnx import helper

    dtype = helper.np_dtype_to_tensor_dtype(zp.dtype)
    if dtype not in INT_RANGES and not (node.op_type == "DequantizeLinear" and dtype in BIAS_TYPES):
        raise UnsupportedOpError(f"{source}: {node.op_type} '{node.name}' uses a {zp.dtype} grid; int8 TFLite takes "
                                 f"8-bit fake-quant (int8/uint8) only", ops=[node.op_type], stage="export")
    kind = INT_RANGES.get(dtype, ("int32", -2**31, 2**31 - 1))
    return scale.astype(np.float32), zp.astype(np.int64), kind


def _same_grid(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    return a[0].shape == b[0].shape and bool(np.all(a[0] == b[0])) and bool(np.all(a[1] == b[1]))


def _axis(node: Any, rank: int, scale: np.ndarray) -> int | None:
    if scale.size == 1 and scale.ndim <= 1:
        return None
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    return axis % rank


def _flat(v: np.ndarray, axis: int | None) -> np.ndarray:
    return v.reshape(-1) if axis is not None else v.reshape(())


def _weight(dq: Any, q: np.ndarray, value: Any, source: str) -> QWeight:
    scale, zp, kind = _qparams(dq, value, source)
    axis = _axis(dq, q.ndim, scale)
    return QWeight(dq.output[0], q.astype(np.int64), _flat(scale, axis), _flat(zp, axis), axis, kind[0])


def _quantize(w: np.ndarray, scale: np.ndarray, zp: np.ndarray, kind: tuple[str, int, int],
              axis: int | None) -> np.ndarray:
    """QuantizeLinear's integers: round half to even, saturate."""
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis] = -1
    s = scale.reshape(shape) if axis is not None else scale.reshape(())
    z = zp.reshape(shape) if axis is not None else zp.reshape(())
    return np.clip(np.rint(w.astype(np.float32) / s) + z, kind[1], kind[2]).astype(np.int64)
