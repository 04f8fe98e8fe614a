"""A 4-D input's layout in the source model, read from the graph (never assumed), or declared by the user.

An input is *channels-last* (NHWC) when it goes straight into a ``Transpose`` with perm (0, 3, 1, 2) — what
tf2onnx writes for a Keras model — possibly through layout-free elementwise ops; it is *channels-first* (NCHW)
when its first layout-sensitive consumer is an NCHW op (Conv, the pools, BatchNormalization, Resize, ...).  When
the graph says neither (the input goes into a Reshape or a MatMul, say), or says both, the conversion stops and
names ``--input-layout NAME:NHWC|NCHW`` (Python ``input_layouts=``), which declares it.  A PyTorch model is read
from its exported ONNX.  Every layout read from the graph is said in ``adjustments``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from ..config.inputs import SOURCE_LAYOUTS, InputSpec, InputTable, check_named
from ..config.preprocess import PreprocessSpec
from ..errors import InputError
from .graph import Graph

TO_CHANNELS_FIRST = (0, 3, 1, 2)  # the Transpose a channels-last input goes through first
NCHW_OPS = frozenset({
    "Conv", "ConvTranspose", "QLinearConv", "ConvInteger", "DeformConv", "MaxPool", "AveragePool", "LpPool",
    "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "MaxUnpool", "MaxRoiPool", "RoiAlign",
    "BatchNormalization", "InstanceNormalization", "LRN", "Resize", "Upsample", "DepthToSpace", "SpaceToDepth",
    "GridSample", "Col2Im"})
LAYOUT_FREE = frozenset({
    "Identity", "Cast", "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mean", "Sum", "Neg", "Abs", "Sqrt",
    "Reciprocal", "Exp", "Log", "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Clip", "Sigmoid",
    "HardSigmoid", "HardSwish", "Tanh", "Softplus", "Softsign", "Erf", "Gelu", "Mish", "Floor", "Ceil", "Round",
    "Sign", "QuantizeLinear", "DequantizeLinear", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual",
    "And", "Or", "Not", "Where", "Pad", "Slice", "Split", "Concat", "Tile", "Expand", "Softmax", "LogSoftmax"})
KEEPDIMS_OPS = frozenset({"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL2"})


def read_layout(graph: Graph, name: str) -> tuple[str | None, str]:
    """``name``'s layout as the graph shows it ('NHWC', 'NCHW' or None: not known) and why, in words."""
    found: dict[str, str] = {}
    seen, todo = set(), [name]
    while todo:
        tensor = todo.pop(0)
        if tensor in seen:
            continue
        seen.add(tensor)
        for node in graph.consumers(tensor):
            label = f"{node.op_type} '{node.name}'" if node.name else node.op_type
            if node.op_type == "Transpose":
                perm = tuple(graph.attrs(node).get("perm", ()))
                if perm == TO_CHANNELS_FIRST:
                    found.setdefault("NHWC", f"it goes into {label} with perm {perm}, as a channels-last input does")
                elif perm == (0, 1, 2, 3):
                    todo.extend(node.output)
            elif node.op_type in NCHW_OPS and node.input and node.input[0] == tensor:
                found.setdefault("NCHW", f"its first layout-sensitive consumer is {label}, a channels-first op")
            elif node.op_type in LAYOUT_FREE or (node.op_type in KEEPDIMS_OPS and graph.attrs(node).get("keepdims", 1)):
                todo.extend(node.output)  # the axes keep their meaning: read on
    if len(found) == 1:
        return next(iter(found.items()))
    if found:
        return None, "the graph reads it both ways (" + "; ".join(found.values()) + ")"
    return None, "no Transpose to channels-first or channels-first op (Conv, pool, ...) reads it"


def source_layouts(model: Any, ranks: Mapping[str, int | None], declared: Mapping[str, str] | None,
                   source: str, shaped_by: Mapping[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """{input name: 'NCHW' | 'NHWC'} for every 4-D input of ``model`` (an ONNX ModelProto), read from the graph or
    declared (``--input-layout``); the adjustments saying which were read.  ``ranks``: each input's rank (None:
    not known yet, skipped).  ``shaped_by``: a PyTorch image input's preprocessing layout, which made the shape it
    was exported at (the layout when the graph does not show one).  InputError naming the flag when a 4-D
    input's layout cannot be known."""
    layouts, notes, refusals = read_layouts(model, ranks, declared, source, shaped_by)
    if refusals:
        raise InputError(refusals[0])
    return layouts, notes


def read_layouts(model: Any, ranks: Mapping[str, int | None], declared: Mapping[str, str] | None, source: str,
                 shaped_by: Mapping[str, str] | None = None) -> tuple[dict[str, str], list[str], list[str]]:
    """:func:`source_layouts`, the refusals returned (one line each, naming the flag) rather than raised."""
    declared = {str(k): _checked(k, v) for k, v in (declared or {}).items()}
    check_named("--input-layout", declared, list(ranks), source)
    wrong = [n for n in declared if ranks[n] is not None and ranks[n] != 4]
    if wrong:
        raise InputError(f"--input-layout applies to 4-D inputs; input '{wrong[0]}' of {source} has rank "
                         f"{ranks[wrong[0]]}")
    graph = Graph(model) if any(r == 4 for r in ranks.values()) else None
    layouts: dict[str, str] = {}
    notes, refusals = [], []
    for name, rank in ranks.items():
        if rank != 4 or graph is None:
            continue
        seen, why = read_layout(graph, name)
        if name in declared:
            layouts[name] = declared[name]
            if seen is not None and seen != declared[name]:
                notes.append(f"input '{name}': layout {declared[name]} as declared (--input-layout), although "
                             f"{why}")
        elif seen is None and name in (shaped_by or {}):
            layouts[name] = shaped_by[name]
            notes.append(f"input '{name}': layout {shaped_by[name]}, the preprocessing's, which made the shape it "
                         f"was exported at ({why}; --input-layout declares it)")
        elif seen is None:
            refusals.append(f"{source}: the layout of 4-D input '{name}' cannot be read from the graph ({why}); "
                            f"declare it with --input-layout {name}:NHWC or {name}:NCHW (Python: input_layouts=)")
        else:
            layouts[name] = seen
            kept = "the .tflite keeps it NHWC" if seen == "NHWC" else "the .tflite takes it NHWC"
            notes.append(f"input '{name}': source layout {seen} read from the graph ({why}); {kept} "
                         f"(--input-layout declares it)")
    return layouts, notes, refusals


def follow_layout(pre: PreprocessSpec | None, layout: str | None) -> PreprocessSpec | None:
    """The preprocessing of an input whose source layout is ``layout``: its float arrays laid out the same."""
    if layout is None or (pre is not None and pre.layout == layout):
        return pre
    return (pre or PreprocessSpec(size=None)).with_overrides(layout=layout)


def set_layout(spec: InputSpec, layout: str | None, given: PreprocessSpec | None, notes: list[str]) -> InputSpec:
    """``spec`` with its source layout; an image input's arrays laid out otherwise than asked is said."""
    if layout is None:
        return spec
    if spec.preprocess is not None and given is not None and given.layout != layout:
        notes.append(f"input '{spec.name}': preprocessed arrays laid out {layout} as the source model takes them "
                     f"(not {given.layout}, as --layout asked)")
    return dataclasses.replace(spec, layout=layout)


def with_layouts(table: InputTable, layouts: Mapping[str, str], source: str) -> InputTable:
    """``table`` with each input's source layout set (a PyTorch model's, read once it is exported); an image input
    whose preprocessing lays its arrays out otherwise is refused, naming --layout."""
    specs = []
    for s in table:
        layout = layouts.get(s.name)
        if layout is not None and s.preprocess is not None and s.preprocess.layout != layout:
            raise InputError(f"{source}: image input '{s.name}' {list(s.shape)} is {layout} in the exported model, "
                             f"its preprocessing gives {s.preprocess.layout} arrays; convert with --layout {layout}")
        specs.append(dataclasses.replace(s, layout=layout) if layout is not None else s)
    return InputTable(tuple(specs))


def _checked(name: Any, layout: Any) -> str:
    text = str(layout).upper()
    if text not in SOURCE_LAYOUTS:
        raise InputError(f"--input-layout {name}:{layout}: the layout must be NHWC or NCHW")
    return text


def ranks_of(declared: Sequence[Any]) -> dict[str, int | None]:
    """{input name: rank} of :func:`.inputs.declared_inputs` rows (None: a PyTorch input, rank not known yet)."""
    return {d.name: (len(d.dims) if d.dims is not None else None) for d in declared}
