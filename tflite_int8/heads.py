"""Detector heads: find outputs that mix quantities of very different ranges, and split them apart.

A YOLO output concatenates box coordinates (pixels, 0..640) with objectness and class
scores (0..1) in one tensor; full-integer quantization gives that tensor one int8
scale, so the scores get a handful of levels or round to zero.  :func:`lint`
measures each output's channels on calibration data and says what the shared scale
costs; :func:`split_head` rewrites the ONNX graph so boxes (normalised to 0..1) and
scores are separate outputs, each with its own scale, and so no tensor on the way to
them mixes the two: the slice is pushed back through Concat, Split, Slice, Reshape,
Transpose and element-wise ops to where the quantities are computed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .errors import ConversionError

STRUCTURAL = {"Concat", "Split", "Slice", "Reshape", "Transpose", "Identity"}
ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Sigmoid", "Relu", "Exp", "Tanh", "Neg", "Abs", "Sqrt",
               "Clip", "HardSigmoid"}
MIXED_SPAN = 0.05  # a channel group spanning < 5 % of its output's range gets < 13 of 256 int8 levels


@dataclass(frozen=True)
class HeadLayout:
    """Where a detector output keeps its channels: ``v5`` = [1, N, 5+nc], ``v8`` = [1, 4+nc, N]."""

    output: str
    layout: str
    channels: int
    anchors: int

    @property
    def axis(self) -> int:
        return 2 if self.layout == "v5" else 1

    @property
    def objectness(self) -> bool:
        return self.layout == "v5"

    @property
    def num_classes(self) -> int:
        return self.channels - (5 if self.objectness else 4)


def detect_layout(name: str, shape: Sequence[int]) -> HeadLayout | None:
    """YOLOv5 [1, N, 5+nc] or YOLOv8 [1, 4+nc, N] (N much larger than the channels), else None."""
    if len(shape) != 3 or shape[0] != 1 or min(shape[1:]) < 5:
        return None
    a, b = int(shape[1]), int(shape[2])
    if a >= 4 * b:
        return HeadLayout(name, "v5", b, a)
    if b >= 4 * a:
        return HeadLayout(name, "v8", a, b)
    return None


def lint(outputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Channel groups that a shared int8 scale would crush, per output (batch-1 outputs stacked on axis 0).

    For a [1, N, C] or [1, C, N] output, the channel axis is the short one. The int8 range covers the
    whole output's [min, max] (and 0); a channel spanning a few percent of it gets a few levels.
    """
    findings = []
    for name, y in outputs.items():
        head = detect_layout(name, (1, *y.shape[1:]))
        if head is None:
            continue
        v = np.moveaxis(y.reshape(-1, *y.shape[-2:]), head.axis, -1).reshape(-1, head.channels)
        lo, hi = min(0.0, float(v.min())), max(0.0, float(v.max()))
        full = hi - lo
        if full <= 0:
            continue
        span = (v.max(0) - v.min(0)) / full
        low = np.flatnonzero(span < MIXED_SPAN)
        if len(low) == 0 or span.max() < 0.5:
            continue
        scale = full / 255.0
        findings.append({
            "output": name, "layout": head.layout, "channel_axis": head.axis, "channels": [int(c) for c in low],
            "span_percent": round(float(100 * span[low].max()), 3),
            "levels": round(float(span[low].max() * 255), 2), "output_range": [lo, hi],
            "int8_step": scale, "message": (
                f"output '{name}': channels {_ranges(low)} (scores?) span {100 * span[low].max():.2g} % of this "
                f"output's int8 range [{lo:.4g}, {hi:.4g}] (step {scale:.4g}): about {span[low].max() * 255:.1f} "
                f"of 256 levels, so they round to a few values or to zero; split the head (convert --task detect)")})
    return findings


def _ranges(idx: np.ndarray) -> str:
    parts, start = [], int(idx[0])
    for a, b in zip(idx, list(idx[1:]) + [None]):
        if b is None or b != a + 1:
            parts.append(f"{start}" if start == a else f"{start}-{a}")
            start = b
    return ", ".join(parts)


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
        self.new_nodes.append(self.onnx.helper.make_node(op, inputs, [out], name=out, **attrs))
        self.shapes[out] = shape
        return out

    def _attr(self, node: Any, key: str, default: Any = None) -> Any:
        for a in node.attribute:
            if a.name == key:
                return self.onnx.helper.get_attribute_value(a)
        return default

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

    def _take(self, t: str, axis: int, s: int, e: int) -> str:
        shape = self.shapes.get(t)
        node = self.producer.get(t)
        if t in self.consts:
            return self._const(np.take(self.consts[t], range(s, e), axis=axis), "c")
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
            before = int(np.prod(shape[:axis]))
            match = [a for a in range(len(src)) if int(np.prod(src[:a])) == before and src[a] == shape[axis]]
            if not match:
                return self._slice(t, axis, s, e)
            inner = self.take(node.input[0], match[0], s, e)
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
        attrs = {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}
        return self._node(op, ins, op.lower(), out_shape, **attrs)


def split_head(model: Any, head: HeadLayout, input_size: tuple[int, int]) -> tuple[Any, dict[str, Any]]:
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
    norm = np.array([1 / w, 1 / h, 1 / w, 1 / h], np.float32).reshape([1, 4, 1] if head.axis == 1 else [1, 1, 4])
    shape = list(sp.shapes[boxes])
    boxes_n = sp._node("Mul", [boxes, sp._const(norm, "norm")], "boxes", shape)
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


def apply(onnx_path: Any, output_names: list[str], outputs: dict[str, np.ndarray], *, task: str, fix: bool,
          input_size: tuple[int, int]) -> tuple[list[str], dict[str, Any]]:
    """The conversion's head step: lint every output; for ``task="detect"`` describe the head and (``fix``) split it.

    ``outputs``: each output on calibration samples (stacked).  Rewrites ``onnx_path`` in place when it splits.
    Returns the new output names and the ``head`` section of conversion.json.
    """
    import onnx

    findings = lint(outputs)
    section: dict[str, Any] = {"lint": findings}
    if task != "detect":
        return output_names, section
    heads = [h for h in (detect_layout(n, (1, *outputs[n].shape[1:])) for n in output_names) if h is not None]
    if len(heads) != 1:
        shapes = {n: [1, *outputs[n].shape[1:]] for n in output_names}
        raise ConversionError(f"--task detect needs exactly one output in YOLOv5 layout [1, N, 5+classes] or YOLOv8 "
                              f"layout [1, 4+classes, N]; outputs are {shapes}", stage="head")
    head = heads[0]
    if not fix:
        section["decode"] = {"output": head.output, "layout": head.layout, "num_classes": head.num_classes,
                             "objectness": head.objectness, "boxes": head.output, "scores": head.output,
                             "box_format": "xywh", "box_units": "pixels", "input_size": list(input_size)}
        section["fix"] = None
        return output_names, section
    model, desc = split_head(onnx.load(str(onnx_path)), head, input_size)
    onnx.save(model, str(onnx_path))
    section["decode"] = desc
    section["fix"] = (f"output '{head.output}' replaced by 'boxes' (x, y, w, h / input size: 0..1) and 'scores' "
                      f"({'objectness + ' if head.objectness else ''}{head.num_classes} classes), separated back to "
                      f"{len(desc['separated_at'])} tensor(s), so each gets its own int8 scale")
    names = [n for n in output_names if n != head.output] + ["boxes", "scores"]
    return names, section
