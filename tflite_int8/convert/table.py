"""A conversion's input table, recorded: :mod:`.inputs` (shapes, kinds), :mod:`.constants` (inputs fixed to a
value) and :mod:`.layouts` (4-D inputs' source layouts: an ONNX file's before anything runs, a PyTorch model's from
its export)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..config.inputs import InputTable
from ..config.preprocess import PreprocessSpec
from ..errors import InputError
from ..runtime.reference import load_onnx
from .constants import split_fixed
from .inputs import declared_inputs, resolve_inputs
from .layouts import ranks_of, read_layouts, source_layouts, with_layouts


def model_inputs(module: Any, source: Any, spec: PreprocessSpec | None, shapes: Mapping[str, Sequence[int]] | None,
            data: Any, report: dict[str, Any], layouts: Mapping[str, str] | None,
            values: Mapping[str, Any] | None) -> InputTable:
    """The model's inputs, every shape static (:mod:`.inputs`) and every 4-D ONNX input's layout known
    (:mod:`.layouts`); recorded with the adjustments made."""
    wanted = list(shapes or ()) + (list(data) if isinstance(data, Mapping) else [])
    onnx_model = load_onnx(source) if module is None else None
    label = str(source) if module is None else str(report["source"]["model"])
    declared = split_fixed(declared_inputs(module if module is not None else onnx_model, wanted=wanted), values, label)
    found, notes, refusals = read_layouts(onnx_model, ranks_of(declared), layouts, label) if module is None \
        else ({}, [], [])
    table, more = resolve_inputs(declared, source=label, spec=spec, spec_given=spec is not None,
                                 input_shapes=shapes, data=data, layouts=found)
    if refusals:  # after the shapes and the data: what they lack is said first
        raise InputError(refusals[0])
    report["adjustments"] += notes + more
    report["inputs"] = table.to_list()
    first = table.first_preprocess
    report["preprocess"] = first.to_dict() if first is not None else None
    return table


def exported_layouts(onnx_model: Any, table: InputTable, declared: Mapping[str, str] | None,
                     report: dict) -> InputTable:
    """A PyTorch model's 4-D inputs' layouts, read from its exported ONNX (:mod:`.layouts`)."""
    label = str(report["source"]["model"])
    shaped_by = {s.name: s.preprocess.layout for s in table if s.preprocess is not None}
    found, notes = source_layouts(onnx_model, {s.name: s.rank for s in table}, declared, label, shaped_by)
    table = with_layouts(table, found, label)
    report["adjustments"] += notes
    report["inputs"] = table.to_list()
    return table


def passthrough_notes(model: Any) -> list[str]:
    """One sentence per output that merely passes an input through: it is kept (the phone gets it back quantized
    with the input's own scale), and said so."""
    from .graph import Graph

    g = model.graph
    ends = {o.name for o in g.output}
    if not ends & {i.name for i in g.input} and not any(n.op_type == "Identity" and ends & set(n.output)
                                                        for n in g.node):
        return []  # the common case, without indexing the graph
    return [f"output '{out}' passes input '{inp}' through unchanged: kept, quantized with the input's own int8 scale "
            f"(drop it from the model if the app does not read it)" for out, inp in Graph(model).passthrough().items()]
