"""Splitting a detector head: boxes and scores apart, all the way back to where they are computed.

``tensor[..., s:e]`` is rebuilt by pushing the slice back through Concat, Split, Slice, Reshape,
Transpose and element-wise ops to the head convolutions, which are split by output rows (per anchor:
x/y, w/h, scores), so no tensor on the way to the new outputs, not even a conv output, mixes box
logits with score logits; the box normalisation is folded into the stride/anchor constants the same way.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConversionError

STRUCTURAL = {"Concat", "Split", "Slice", "Reshape", "Transpose", "Identity"}
ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Sigmoid", "Relu", "Exp", "Tanh", "Neg", "Abs", "Sqrt",
               "Clip", "HardSigmoid"}


class _Splitter:
    """Builds ``tensor[..., s:e]`` along an axis by pushing the slice back to where values are computed."""

    def __init__(self, model: Any):
        import onnx
        from onnx import numpy_helper, shape_inference

        self.onnx, self.nh = onnx, numpy_helper
        model = shape_inference.infer_shapes(model)
        self.model = model
        g = model.graph
        self.producer = {o: n for n in g.node for o in n.output}
        self.consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        for n in g.node:
            if n.op_type == "Constant":
                self.consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        self.shapes: dict[str, list[int]] = {}
        for vi in list(g.value_info) + list(g.output) + list(g.input):
            dims = vi.type.tensor_type.shape.dim
            if dims and all(d.HasField("dim_value") for d in dims):
                self.shapes[vi.name] = [d.dim_value for d in dims]
        for k, v in self.consts.items():
            self.shapes[k] = list(v.shape)
        self.new_nodes: list[Any] = []
        self.new_inits: list[Any] = []
        self.memo: dict[tuple, str] = {}
        self.stops: set[str] = set()
        self.count = 0

    def _name(self, base: str) -> str:
        self.count += 1
        return f"{base}__head{self.count}"

    def _const(self, value: np.ndarray, base: str) -> str:
        name = self._name(base)
        self.new_inits.append(self.nh.from_array(np.asarray(value), name))
        self.consts[name] = np.asarray(value)
        self.shapes[name] = list(np.shape(value))
        return name

    def _node(self, op: str, inputs: list[str], base: str, shape: list[int], **attrs: Any) -> str:
        out = self._name(base)
        node = self.onnx.helper.make_node(op, inputs, [out], name=out, **attrs)
        self.new_nodes.append(node)
        self.producer[out] = node
        self.shapes[out] = shape
        return out

    def scale(self, t: str, axis: int, factors: np.ndarray) -> str:
        """``t * factors`` (per channel along ``axis``), folded into the constants that make ``t``.

        YOLO decodes boxes as (sigmoid * 2 + grid) * stride and (sigmoid * 2) ** 2 * anchor: multiplying the
        stride and anchor constants (not the pixel boxes) keeps every intermediate tensor in 0..~2, so each
        int8 intermediate gets a fine scale instead of one sized for hundreds of pixels.
        """
        shape, node = self.shapes.get(t), self.producer.get(t)
        rank = len(shape) if shape else 0
        fallback = [1] * rank
        if shape is None or node is None:
            return self._mul_const(t, axis, factors, fallback)
        op = node.op_type
        if op == "Identity":
            return self.scale(node.input[0], axis, factors)
        if op == "Concat":
            cat_axis = self._attr(node, "axis") % rank
            parts, pos = [], 0
            for i in node.input:
                n = self.shapes[i][axis]
                sub = factors[pos:pos + n] if cat_axis == axis else factors
                parts.append(self.scale(i, axis, sub))
                pos += n if cat_axis == axis else 0
            return self._node("Concat", parts, "cat", list(shape), axis=cat_axis)
        if op == "Transpose":
            perm = list(self._attr(node, "perm"))
            return self._node("Transpose", [self.scale(node.input[0], perm[axis], factors)], "tr", list(shape),
                              perm=perm)
        if op == "Reshape":
            src_axis = _reshape_source_axis(self.shapes.get(node.input[0]), shape, axis)
            if src_axis is not None:
                inner = self.scale(node.input[0], src_axis, factors)
                return self._node("Reshape", [inner, node.input[1]], "reshape", list(shape))
        if op in ("Add", "Sub") and all(self.shapes.get(i) is not None for i in node.input):
            ins = [self.scale(i, axis - (rank - len(self.shapes[i])), factors) if i not in self.consts
                   else self._const_times(i, axis, factors, rank) for i in node.input]
            return self._node(op, ins, op.lower(), list(shape))
        if op == "Mul":
            const = [i for i in node.input if i in self.consts]
            if const:
                other = [i for i in node.input if i != const[0]] or [const[0]]
                return self._node("Mul", [other[0], self._const_times(const[0], axis, factors, rank)], "mul",
                                  list(shape))
        return self._mul_const(t, axis, factors, fallback)

    def _const_times(self, name: str, axis: int, factors: np.ndarray, rank: int) -> str:
        value = np.asarray(self.consts[name], np.float32)
        value = value.reshape([1] * (rank - value.ndim) + list(value.shape))
        fshape = [1] * rank
        fshape[axis] = len(factors)
        return self._const((value * np.asarray(factors, np.float32).reshape(fshape)).astype(np.float32), "c")

    def _mul_const(self, t: str, axis: int, factors: np.ndarray, fshape: list[int]) -> str:
        fshape = list(fshape) or [1]
        fshape[axis] = len(factors)
        c = self._const(np.asarray(factors, np.float32).reshape(fshape), "norm")
        return self._node("Mul", [t, c], "mul", list(self.shapes.get(t, [])))

    def _attrs(self, node: Any) -> dict[str, Any]:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def _attr(self, node: Any, key: str, default: Any = None) -> Any:
        return self._attrs(node).get(key, default)

    def take(self, t: str, axis: int, s: int, e: int) -> str:
        key = (t, axis, s, e)
        if key not in self.memo:
            self.memo[key] = self._take(t, axis, s, e)
        return self.memo[key]

    def _slice(self, t: str, axis: int, s: int, e: int) -> str:
        shape = self.shapes.get(t)
        if shape is not None and s == 0 and e == shape[axis]:
            return t
        self.stops.add(t)
        out_shape = list(shape) if shape else []
        if out_shape:
            out_shape[axis] = e - s
        return self._node("Slice", [t, self._const(np.array([s], np.int64), "s"), self._const(np.array([e], np.int64),
                          "e"), self._const(np.array([axis], np.int64), "a")], "slice", out_shape)

    def _anchor_rows(self, node: Any, src: list[int], shape: list[int], axis: int, s: int, e: int) -> str | None:
        """A YOLO head's ``conv.view(b, anchors, 5 + nc, h, w)`` sliced on the quantity axis: the conv's rows
        ``a * (5 + nc) + s .. a * (5 + nc) + e`` for every anchor ``a``, as a convolution of their own."""
        conv = self.producer.get(node.input[0])
        if (conv is None or conv.op_type != "Conv" or len(src) != 4 or len(shape) != 5 or axis != 2
                or shape[0] != src[0] or shape[1] * shape[2] != src[1] or shape[3:] != src[2:]):
            return None
        return self._conv_rows(conv, [a * shape[2] + c for a in range(shape[1]) for c in range(s, e)])

    def _conv_rows(self, conv: Any, rows: list[int]) -> str | None:
        """Output channels ``rows`` of a (non-grouped) convolution, computed by a convolution of their own, so
        they get an int8 scale of their own: box logits no longer share one with objectness and class logits."""
        shape = self.shapes.get(conv.output[0])
        weights = self.consts.get(conv.input[1]) if len(conv.input) > 1 else None
        if shape is None or len(shape) != 4 or weights is None or self._attr(conv, "group", 1) != 1:
            return None
        if len(rows) == shape[1]:
            return conv.output[0]
        ins = [conv.input[0], self._const(weights[rows], "w")]
        if len(conv.input) > 2 and conv.input[2]:
            bias = self.consts.get(conv.input[2])
            if bias is None:
                return None
            ins.append(self._const(bias[rows], "b"))
        attrs = self._attrs(conv)
        out = self._node("Conv", ins, "conv", [shape[0], len(rows), *shape[2:]], **attrs)
        self.stops.add(out)
        return out

    def _take(self, t: str, axis: int, s: int, e: int) -> str:
        shape = self.shapes.get(t)
        node = self.producer.get(t)
        if t in self.consts:
            return self._const(np.take(self.consts[t], range(s, e), axis=axis), "c")
        if node is not None and node.op_type == "Conv" and axis == 1:
            rows = self._conv_rows(node, list(range(s, e)))
            if rows is not None:
                return rows
        if shape is None or node is None or (node.op_type not in STRUCTURAL and node.op_type not in ELEMENTWISE):
            return self._slice(t, axis, s, e)
        out_shape = list(shape)
        out_shape[axis] = e - s
        op = node.op_type
        rank = len(shape)
        if op == "Identity":
            return self.take(node.input[0], axis, s, e)
        if op == "Concat":
            cat_axis = self._attr(node, "axis") % rank
            if cat_axis != axis:
                parts = [self.take(i, axis, s, e) for i in node.input]
                return self._node("Concat", parts, "cat", out_shape, axis=cat_axis)
            parts, pos = [], 0
            for i in node.input:
                n = self.shapes[i][axis]
                lo, hi = max(s, pos), min(e, pos + n)
                if lo < hi:
                    parts.append(self.take(i, axis, lo - pos, hi - pos))
                pos += n
            return parts[0] if len(parts) == 1 else self._node("Concat", parts, "cat", out_shape, axis=axis)
        if op == "Split":
            if self._attr(node, "axis", 0) % rank != axis:
                return self._slice(t, axis, s, e)
            sizes = self.consts.get(node.input[1]) if len(node.input) > 1 and node.input[1] else \
                self._attr(node, "split")
            if sizes is None:
                return self._slice(t, axis, s, e)
            k = list(node.output).index(t)
            off = int(np.sum(np.asarray(sizes)[:k]))
            return self.take(node.input[0], axis, off + s, off + e)
        if op == "Slice":
            starts, ends = self.consts.get(node.input[1]), self.consts.get(node.input[2])
            axes = self.consts.get(node.input[3]) if len(node.input) > 3 and node.input[3] else None
            steps = self.consts.get(node.input[4]) if len(node.input) > 4 and node.input[4] else None
            if starts is None or ends is None or (steps is not None and np.any(steps != 1)):
                return self._slice(t, axis, s, e)
            axes = np.arange(len(starts)) if axes is None else axes
            in_shape = self.shapes.get(node.input[0])
            if in_shape is None or [int(a) % rank for a in axes] != [axis]:
                return self._slice(t, axis, s, e)
            st = int(starts[0]) if starts[0] >= 0 else int(starts[0]) + in_shape[axis]
            return self.take(node.input[0], axis, st + s, st + e)
        if op == "Transpose":
            perm = list(self._attr(node, "perm"))
            inner = self.take(node.input[0], perm[axis], s, e)
            return self._node("Transpose", [inner], "tr", out_shape, perm=perm)
        if op == "Reshape":
            src = self.shapes.get(node.input[0])
            if src is None:
                return self._slice(t, axis, s, e)
            anchors = self._anchor_rows(node, src, shape, axis, s, e)
            if anchors is not None:
                return self._node("Reshape", [anchors, self._const(np.array(out_shape, np.int64), "shape")],
                                  "reshape", out_shape)
            src_axis = _reshape_source_axis(src, shape, axis)
            if src_axis is None:
                return self._slice(t, axis, s, e)
            inner = self.take(node.input[0], src_axis, s, e)
            return self._node("Reshape", [inner, self._const(np.array(out_shape, np.int64), "shape")], "reshape",
                              out_shape)
        # element-wise: slice every input that has this axis, rebuild the others whole
        ins = []
        for i in node.input:
            if not i:
                ins.append(i)
                continue
            ishape = self.shapes.get(i)
            if ishape is None:
                return self._slice(t, axis, s, e)
            ax = axis - (rank - len(ishape))
            if ax < 0 or ishape[ax] == 1:
                ins.append(i if i in self.consts or ax < 0 else self.take(i, ax, 0, 1))
            else:
                ins.append(self.take(i, ax, s, e))
        attrs = self._attrs(node)
        return self._node(op, ins, op.lower(), out_shape, **attrs)


def _reshape_source_axis(src: list[int] | None, shape: list[int], axis: int) -> int | None:
    """The axis of a Reshape's input that becomes ``axis`` of its output unchanged (same size, same elements
    before it), or None when the reshape merges or splits it."""
    before = int(np.prod(shape[:axis]))
    match = [a for a in range(len(src or [])) if int(np.prod(src[:a])) == before and src[a] == shape[axis]]
    return match[0] if match else None


def split_head(model: Any, head: Any, input_size: tuple[int, int]) -> tuple[Any, dict[str, Any]]:
    """A new ONNX model whose ``head.output`` is replaced by ``boxes`` (xywh / input size, 0..1) and ``scores``.

    Returns (model, description): the description goes into conversion.json and tells the host how to decode.
    """
    import onnx

    sp = _Splitter(model)
    g = sp.model.graph
    if head.output not in [o.name for o in g.output]:
        raise ConversionError(f"the model has no output '{head.output}'", stage="head")
    boxes = sp.take(head.output, head.axis, 0, 4)
    scores = sp.take(head.output, head.axis, 4, head.channels)
    h, w = input_size
    boxes_n = sp.scale(boxes, head.axis, np.array([1 / w, 1 / h, 1 / w, 1 / h], np.float32))
    outs = {"boxes": boxes_n, "scores": scores}
    for final, tensor in outs.items():
        sp.new_nodes.append(onnx.helper.make_node("Identity", [tensor], [final], name=f"{final}__out"))
    new_outputs = []
    for o in g.output:
        if o.name != head.output:
            new_outputs.append(o)
            continue
        for final, tensor in outs.items():
            new_outputs.append(onnx.helper.make_tensor_value_info(final, onnx.TensorProto.FLOAT, sp.shapes[tensor]))
    graph = onnx.helper.make_graph(list(g.node) + sp.new_nodes, g.name, list(g.input), new_outputs,
                                   list(g.initializer) + sp.new_inits)
    out = onnx.helper.make_model(graph, opset_imports=sp.model.opset_import, ir_version=sp.model.ir_version)
    out = _prune(out)
    try:
        onnx.checker.check_model(out)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"splitting the head of output '{head.output}' gave an invalid graph: {exc}",
                              stage="head") from None
    desc = {"output": head.output, "layout": head.layout, "num_classes": head.num_classes,
            "objectness": head.objectness, "boxes": "boxes", "scores": "scores", "box_format": "xywh",
            "box_units": "fraction of input size", "input_size": [h, w],
            "separated_at": sorted(sp.stops)}
    return out, desc


def _prune(model: Any) -> Any:
    """Drop nodes and initializers no output depends on."""
    import onnx

    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    needed, stack, keep = set(), [o.name for o in g.output], []
    while stack:
        t = stack.pop()
        if t in needed:
            continue
        needed.add(t)
        n = producer.get(t)
        if n is not None:
            stack.extend(i for i in n.input if i)
    for n in g.node:
        if any(o in needed for o in n.output):
            keep.append(n)
    inits = [i for i in g.initializer if i.name in needed]
    graph = onnx.helper.make_graph(keep, g.name, list(g.input), list(g.output), inits)
    return onnx.helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
