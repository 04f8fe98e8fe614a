"""A model's inputs resolved before anything runs: names, static shapes, image or tensor, preprocessing.

:func:`declared_inputs` reads what the model says (an ONNX file's inputs and dims, symbolic ones included; a
PyTorch ``forward``'s parameters).  :func:`resolve_inputs` fixes every shape, in this order: ``--input-shape
NAME:dims`` (``input_shapes``), the model's own static dims, ``--size`` for an image input's height and width, the
shape of the input's ``.npy``/``.npz`` data, and for a PyTorch image input the 224x224 default.  A dimension
still unknown is refused, naming the flag that fixes it.  An input fed from photos (or a 4-D input with a
preprocessing spec) is an *image* input; every other input takes its arrays as they are (no mean/std).  Every
dimension fixed here is an adjustment, said in ``conversion.json``.  An input's dtype is the model's (an ONNX
input's elem_type; a PyTorch input's is that of its data): integer inputs (token ids, masks) stay integer.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..config.inputs import FLOAT, INTEGER_DTYPES, InputSpec, InputTable, check_named
from ..config.preprocess import PreprocessSpec
from ..data.sources import ARRAY, array_dtype, array_forms, array_shape, assign_sources
from ..errors import InputError
from .layouts import follow_layout, set_layout

DEFAULT_SIZE = (224, 224)


@dataclass(frozen=True)
class Declared:
    """An input as the model declares it: ``dims`` ints, symbolic names (str) or None; None: rank unknown.
    ``dtype``: its numpy type name (an ONNX input's), None when its data decides (a PyTorch input)."""

    name: str
    dims: tuple[int | str | None, ...] | None
    dtype: str | None = None


def declared_inputs(model: Any, *, wanted: Sequence[str] = ()) -> list[Declared]:
    """The inputs of an ONNX ModelProto, or of an nn.Module's ``forward`` (required parameters, plus optional ones
    named in ``wanted``).  (A torch.fx GraphModule has a ``graph`` too: an fx.Graph, not ONNX's.)"""
    if hasattr(getattr(model, "graph", None), "initializer"):
        inits = {i.name for i in model.graph.initializer}
        out = []
        for i in model.graph.input:
            if i.name in inits:
                continue
            dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None)
                         for d in i.type.tensor_type.shape.dim)
            out.append(Declared(i.name, dims, _onnx_dtype(i.type.tensor_type.elem_type)))
        return out
    params = [p for p in inspect.signature(model.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
              and (p.default is p.empty or p.name in wanted)]
    return [Declared(p.name, None) for p in params] or [Declared("input", None)]


def resolve_inputs(declared: Sequence[Declared], *, source: str, spec: PreprocessSpec | Mapping[str, PreprocessSpec]
                   | None, spec_given: bool, input_shapes: Mapping[str, Sequence[int]] | None,
                   data: Any, layouts: Mapping[str, str] | None = None) -> tuple[InputTable, list[str]]:
    """Every input with a static shape and its kind; the adjustments made on the way.  ``layouts``: 4-D inputs'
    source layouts (:mod:`.layouts`); an image input's preprocessing follows its input's."""
    shapes = dict(input_shapes or {})
    names = [d.name for d in declared]
    check_named("--input-shape", shapes, names, source)
    assigned = assign_sources(data, names)
    notes: list[str] = []
    specs = []
    for d in declared:
        given = spec.get(d.name) if isinstance(spec, Mapping) else spec
        pre = follow_layout(given, (layouts or {}).get(d.name))
        fed_images = assigned[d.name][0] != ARRAY
        shape = _shape(d, shapes.get(d.name), pre, fed_images, array_shape(assigned[d.name]), source, notes)
        dtype = _dtype(d, array_dtype(assigned[d.name]), source)
        one = _input(d.name, shape, pre, spec_given and (fed_images or len(declared) == 1) and dtype == FLOAT,
                     fed_images, source, notes, dtype)
        specs.append(set_layout(one, (layouts or {}).get(d.name), given, notes))
    if spec_given and not any(s.preprocess for s in specs) and not isinstance(spec, Mapping):
        notes.append("the preprocessing options apply to image inputs; the model has none (its inputs take the "
                     "arrays as they are)")
    return InputTable(tuple(specs)), notes


def _shape(d: Declared, explicit: Sequence[int] | None, pre: PreprocessSpec | None, fed_images: bool,
           data_shape: tuple[int, ...] | None, source: str, notes: list[str]) -> tuple[int, ...]:
    flag = f"--input-shape {d.name}:" + ",".join(
        str(x) if isinstance(x, int) else "1" if k == 0 else f"<{x or 'N'}>" for k, x in enumerate(d.dims or ()))
    if explicit is not None:
        explicit = tuple(int(v) for v in explicit)
        if d.dims is not None:
            if len(explicit) != len(d.dims):
                raise InputError(f"input '{d.name}' of {source} has rank {len(d.dims)} {_show(d.dims)}; "
                                 f"--input-shape gives {len(explicit)} dims {list(explicit)}")
            for k, (have, want) in enumerate(zip(d.dims, explicit)):
                if isinstance(have, int) and have != want:
                    raise InputError(f"input '{d.name}' of {source} is {_show(d.dims)}: dimension {k} is {have}, "
                                     f"--input-shape gives {want}")
                if not isinstance(have, int):
                    notes.append(f"input '{d.name}': dynamic dimension {k} ('{have or '?'}') fixed to {want} "
                                 f"(--input-shape)")
        return explicit
    if d.dims is None:  # a PyTorch input: the image size given, the data, the default image size, or nothing
        image_like = fed_images or (data_shape is not None and len(data_shape) == 3)
        if pre is not None and pre.size is not None and image_like:
            return pre.input_shape()
        if data_shape is not None:
            notes.append(f"input '{d.name}': shape {[1, *data_shape]} taken from its data (batch 1)")
            return (1, *data_shape)
        if fed_images:
            size = pre.size if pre is not None and pre.size is not None else None
            if size is None:
                notes.append(f"input '{d.name}': no input size given: {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]} "
                             f"(--size)")
            base = pre or PreprocessSpec(size=None)
            return base.with_overrides(size=size or DEFAULT_SIZE).input_shape()
        raise InputError(f"input '{d.name}' of {source}: its shape is unknown; give it with --input-shape "
                         f"{d.name}:1,... (Python: input_shapes=), or data for it")
    dims = list(d.dims)
    for k, v in enumerate(dims):
        if isinstance(v, int):
            continue
        label = v or "?"
        if k == 0:
            dims[0] = 1
            notes.append(f"input '{d.name}': dynamic batch dimension '{label}' fixed to 1")
        elif fed_images and len(dims) == 4 and pre is not None and pre.size is not None and k >= 1 \
                and _image_axis(pre, k) is not None:
            dims[k] = pre.size[_image_axis(pre, k)]
            notes.append(f"input '{d.name}': dynamic dimension {k} ('{label}') fixed to {dims[k]} (--size)")
        elif data_shape is not None and (len(data_shape) == len(dims)  # (N, *S), or (N, *S[1:]) when S[0] is 1
                                         or (len(data_shape) == len(dims) - 1 and dims[0] == 1)):
            dims[k] = data_shape[k - len(dims) + len(data_shape)]
            notes.append(f"input '{d.name}': dynamic dimension {k} ('{label}') fixed to {dims[k]} from its data")
        else:
            hint = " or --size HxW" if len(dims) == 4 and fed_images else ""
            raise InputError(f"{source}: input '{d.name}' {_show(d.dims)} has a dynamic dimension {k} ('{label}'); "
                             f"int8 TFLite needs static shapes: give it with {flag}{hint}")
    return tuple(dims)


def _onnx_dtype(elem_type: int) -> str:
    """An ONNX elem_type as a numpy type name ('float32', 'int64', ...; 'undefined' when not set)."""
    import onnx

    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError):
        return "undefined"


def _dtype(d: Declared, data_dtype: str | None, source: str) -> str:
    """The input's dtype: the ONNX input's own (integer types kept, float types float32), else its data's."""
    if d.dtype is None:  # a PyTorch input: integer data means an integer input (token ids fed to nn.Embedding)
        return data_dtype if data_dtype in INTEGER_DTYPES else FLOAT
    if d.dtype in INTEGER_DTYPES:
        return d.dtype
    if d.dtype.startswith("float"):
        return FLOAT
    raise InputError(f"input '{d.name}' of {source} is {d.dtype}; inputs must be float or one of "
                     f"{', '.join(INTEGER_DTYPES)}: cast it in the model")


def _image_axis(pre: PreprocessSpec, k: int) -> int | None:
    """Which of (height, width) axis ``k`` of a 4-D input is, in the spec's layout."""
    return {2: 0, 3: 1}.get(k) if pre.layout == "NCHW" else {1: 0, 2: 1}.get(k)


def _input(name: str, shape: tuple[int, ...], pre: PreprocessSpec | None, spec_given: bool, fed_images: bool,
           source: str, notes: list[str], dtype: str = FLOAT) -> InputSpec:
    """``spec_given``: the user's preprocessing applies to this input (photos, or the only input, fed arrays)."""
    image = len(shape) == 4 and (fed_images or (spec_given and pre is not None))
    if not image or dtype != FLOAT:
        if fed_images:
            what = f"a {dtype} input (ids, masks: not photos)" if dtype != FLOAT else "not an image input"
            raise InputError(f"input '{name}' {list(shape)} of {source} is {what}: give its data as a "
                             f".npy {array_forms(shape)} or in a .npz")
        return InputSpec(name, shape, dtype=dtype)
    base = pre or PreprocessSpec(size=None)
    size = (shape[2], shape[3]) if base.layout == "NCHW" else (shape[1], shape[2])
    if base.size is None:
        base = base.with_overrides(size=size)
    if not spec_given:
        notes.append(f"no preprocessing given for image input '{name}': ImageNet mean/std, RGB, "
                     f"{base.resize} to {size[0]}x{size[1]}, {base.layout}")
    try:
        return InputSpec(name, shape, base)
    except InputError:
        raise InputError(f"{source}: the model input is {list(shape)} ('{name}') but the preprocessing spec gives "
                         f"{list(base.input_shape())} ({base.layout}); set --size/--layout/--channels to match the "
                         f"model") from None


def _show(dims: Sequence[Any]) -> str:
    return "[" + ", ".join(str(v) if v is not None else "?" for v in dims) + "]"
