"""A model's inputs, declared once: one row per input — its name, its shape and, for an image, its preprocessing.

An :class:`InputSpec` is either an *image* input (rank 4, fed from photos through its
:class:`~tflite_int8.config.preprocess.PreprocessSpec`) or a *tensor* input (any rank, fed from ``.npy``/``.npz``
arrays as they are: no mean/std).  ``shape`` is the source model's (ONNX/PyTorch) shape, its first dimension 1
when it is a dynamic batch (rank 0: ``()``); ``layout`` is a 4-D input's layout in the source model (``NCHW`` or
``NHWC``, read from the graph or declared with ``--input-layout``; None: not known, taken as channels-first as
before).  ``perm`` says how the TFLite file lays the input out: a channels-first 4-D/5-D input becomes
channels-last in TFLite (NCHW -> NHWC, as onnx2tf translates it), a channels-last one (NHWC) and every other rank
keep the source layout.  A tensor input's ``dtype`` is the model's: float32, or an integer type (token ids, masks,
indices: fed as they are, never quantized).  :class:`InputTable` is the ordered set of a model's inputs; it is stored in
``conversion.json`` (``inputs``) and inside the ``.tflite`` (metadata).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import InputError
from .preprocess import PreprocessSpec

IMAGE, TENSOR = "image", "tensor"
CHANNELS_LAST = {4: (0, 2, 3, 1), 5: (0, 2, 3, 4, 1)}  # TFLite's layout of 4-D/5-D (NC...) inputs
SOURCE_LAYOUTS = ("NCHW", "NHWC")  # a 4-D input's layout in the source model
FLOAT = "float32"
INTEGER_DTYPES = ("int64", "int32", "int16", "int8", "uint8", "bool")  # integer inputs, taken as they are
INT32_RANGE = (-2 ** 31, 2 ** 31 - 1)


@dataclass(frozen=True)
class InputSpec:
    """One model input. ``preprocess`` is set for image inputs only (how pixels become this input); ``dtype``:
    float32, or one of :data:`INTEGER_DTYPES` (the model's own type of an integer input)."""

    name: str
    shape: tuple[int, ...]
    preprocess: PreprocessSpec | None = None
    layout: str | None = None
    dtype: str = FLOAT

    def __post_init__(self) -> None:
        shape = tuple(int(d) for d in self.shape)
        if shape and min(shape) < 1:
            raise InputError(f"input '{self.name}': shape must be positive integers, got {list(self.shape)}")
        object.__setattr__(self, "shape", shape)
        if self.layout is not None and (self.layout not in SOURCE_LAYOUTS or len(shape) != 4):
            raise InputError(f"input '{self.name}' {list(shape)}: layout must be NCHW or NHWC for a 4-D input, got "
                             f"{self.layout!r}")
        if self.dtype != FLOAT and self.dtype not in INTEGER_DTYPES:
            raise InputError(f"input '{self.name}': dtype {self.dtype!r} is not supported; an input is float32 or "
                             f"one of {', '.join(INTEGER_DTYPES)}")
        if self.dtype != FLOAT and self.preprocess is not None:
            raise InputError(f"input '{self.name}' is {self.dtype}: it takes arrays as they are, not photos "
                             f"(give its data as a .npy or in a .npz)")
        p = self.preprocess
        if p is not None and (p.size is None or tuple(p.input_shape()) != shape):
            want = list(p.input_shape()) if p.size is not None else "unsized"
            raise InputError(f"input '{self.name}' is {list(shape)} but its preprocessing gives {want} ({p.layout}); "
                             f"set --size/--layout/--channels to match the model")

    @property
    def kind(self) -> str:
        return IMAGE if self.preprocess is not None else TENSOR

    @property
    def integer(self) -> bool:
        """True for token ids, masks and indices: fed as they are, never quantized."""
        return self.dtype != FLOAT

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def perm(self) -> tuple[int, ...]:
        """Source axes -> TFLite axes: ``tflite = source.transpose(perm)``."""
        if self.layout == "NHWC" or (self.layout is None and self.preprocess is not None
                                     and self.preprocess.layout == "NHWC"):
            return tuple(range(self.rank))  # the model is channels-last already: TFLite takes it as it is
        return CHANNELS_LAST.get(self.rank, tuple(range(self.rank)))

    @property
    def tflite_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[i] for i in self.perm)

    @property
    def layout_change(self) -> str | None:
        """e.g. 'NCHW -> NHWC', or None when TFLite takes the input as the source model does."""
        if self.perm == tuple(range(self.rank)):
            return None
        src = "NC" + "DHW"[3 - (self.rank - 2):]
        return f"{src} -> {''.join(src[i] for i in self.perm)}"

    def to_tflite(self, x: np.ndarray) -> np.ndarray:
        """A batch in the source layout -> the TFLite layout."""
        return x if self.perm == tuple(range(x.ndim)) else np.ascontiguousarray(x.transpose(self.perm))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "dtype": self.dtype, "shape": list(self.shape),
                "tflite_shape": list(self.tflite_shape), "layout": self.layout, "layout_change": self.layout_change,
                "preprocess": self.preprocess.to_dict() if self.preprocess is not None else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "inputs") -> "InputSpec":
        try:
            pre = data.get("preprocess")
            return cls(str(data["name"]), tuple(data["shape"]),
                       PreprocessSpec.from_dict(pre, source=source) if pre is not None else None,
                       layout=data.get("layout"), dtype=str(data.get("dtype", FLOAT)))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{source}: an input entry is malformed ({exc}): {dict(data)!r}") from None


@dataclass(frozen=True)
class InputTable:
    """A model's inputs, in the model's order."""

    specs: tuple[InputSpec, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "specs", tuple(self.specs))
        if not self.specs:
            raise InputError("a model needs at least one input")
        dup = sorted({s.name for s in self.specs if [t.name for t in self.specs].count(s.name) > 1})
        if dup:
            raise InputError(f"input names must be unique, got {dup} more than once")

    @classmethod
    def single(cls, spec: PreprocessSpec, name: str = "input") -> "InputTable":
        """The classic one-image-input model."""
        return cls((InputSpec(name, spec.input_shape(), spec),))

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    @property
    def images(self) -> list[InputSpec]:
        return [s for s in self.specs if s.kind == IMAGE]

    @property
    def first_preprocess(self) -> PreprocessSpec | None:
        """The first image input's preprocessing (the one ``conversion.json`` keeps as ``preprocess``)."""
        return self.images[0].preprocess if self.images else None

    def __iter__(self) -> Iterator[InputSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, name: str) -> InputSpec:
        for s in self.specs:
            if s.name == name:
                return s
        raise InputError(f"the model has no input '{name}'; its inputs are {', '.join(self.names)}")

    def get(self, name: str) -> InputSpec | None:
        return next((s for s in self.specs if s.name == name), None)

    def feed(self, item: np.ndarray | Mapping[str, np.ndarray] | Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """One sample as {input name: array}: a mapping by name, a sequence in model order, or one array."""
        if isinstance(item, Mapping):
            missing = [n for n in self.names if n not in item]
            if missing:
                raise InputError(f"no value for input(s) {', '.join(missing)} (got {', '.join(map(str, item))})")
            return {n: item[n] for n in self.names}
        if isinstance(item, np.ndarray):
            item = [item]
        if len(item) != len(self.specs):
            raise InputError(f"the model takes {len(self.specs)} input(s) ({', '.join(self.names)}), got {len(item)}")
        return dict(zip(self.names, item))

    def to_list(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.specs]

    @classmethod
    def from_list(cls, data: Sequence[Mapping[str, Any]], source: str = "inputs") -> "InputTable":
        if not isinstance(data, (list, tuple)):
            raise InputError(f"{source}: 'inputs' must be a list, got {type(data).__name__}")
        return cls(tuple(InputSpec.from_dict(d, source) for d in data))


def signature_name(name: str) -> str:
    """The name onnx2tf gives an ONNX input in the SavedModel signature (':' -> '__', a leading '/' -> 'wa/')."""
    return re.sub("^/", "wa/", name.replace(":", "__"))


def tensor_key(name: str) -> str:
    """The signature name of an input tensor of a model the converter built: 'serving_default_<name>:0' -> name."""
    return re.sub(r":0$", "", name.removeprefix("serving_default_"))


def in_tensor_order(interpreter: Any, feed: dict[str, Any] | list[Any]) -> list[Any]:
    """``feed`` ({signature name: array}) as a list in ``interpreter``'s input tensor order, which is read from the
    tensor names: the converter's order is neither the ONNX model's nor the signature's (a VAD's ``input``/``state``
    came out as [state, input])."""
    if isinstance(feed, list):  # one input: nothing to order
        return feed
    return [feed[tensor_key(d["name"])] for d in interpreter.get_input_details()]


SHAPE_ARG = re.compile(r"^(?P<name>.+):(?P<dims>\d+(?:[,x]\d+)*)$")


def parse_input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``NAME:1,3,640,640`` -> ('NAME', (1, 3, 640, 640)); InputError saying the form otherwise."""
    m = SHAPE_ARG.match(text.strip())
    if not m or min(int(d) for d in re.split(r"[,x]", m["dims"])) < 1:
        raise InputError(f"input shape must be NAME:D1,D2,... with positive integers (e.g. images:1,3,640,640), "
                         f"got {text!r}")
    return m["name"], tuple(int(d) for d in re.split(r"[,x]", m["dims"]))


def parse_input_layout(text: str) -> tuple[str, str]:
    """``NAME:NHWC`` -> ('NAME', 'NHWC') (a 4-D input's layout in the source model); InputError otherwise."""
    name, _, layout = text.strip().rpartition(":")
    if not name or layout.upper() not in SOURCE_LAYOUTS:
        raise InputError(f"input layout must be NAME:NHWC or NAME:NCHW (e.g. images:NHWC), got {text!r}")
    return name, layout.upper()


def parse_input_value(text: str) -> tuple[str, int | float]:
    """``NAME=VALUE`` -> ('NAME', VALUE), an int when it reads as one (e.g. sr=16000); InputError otherwise."""
    name, _, value = text.strip().rpartition("=")
    try:
        number: int | float = int(value) if re.fullmatch(r"[+-]?\d+", value.strip()) else float(value)
    except ValueError:
        number = float("nan")
    if not name or number != number:
        raise InputError(f"input value must be NAME=NUMBER (e.g. sr=16000), got {text!r}")
    return name, number


def check_values(name: str, x: Any, dtype: str, where: str) -> Any:
    """``x`` as input ``name``'s ``dtype``: float32 for a float input; an integer input takes integer (or bool)
    arrays only, whose values must fit int32 (what TFLite's integer ops index with).  ``where`` names the data."""
    x = np.asarray(x)
    if dtype == FLOAT:
        if x.dtype.kind not in "f":
            raise InputError(f"{where}: input '{name}' is float32 but the values are {x.dtype}; give float32 "
                             f"(preprocessed) values")
        return x.astype(np.float32, copy=False)
    if x.dtype.kind not in "iub":
        raise InputError(f"{where}: input '{name}' takes {dtype} values (token ids, masks, indices), got {x.dtype}; "
                         f"give an integer array, as the model takes it")
    if x.size and x.dtype.kind != "b" and (int(x.min()) < INT32_RANGE[0] or int(x.max()) > INT32_RANGE[1]):
        raise InputError(f"{where}: input '{name}' holds values outside int32 ({int(x.min())}..{int(x.max())}); "
                         f"TFLite's integer ops take int32 indices")
    return x.astype(np.dtype(dtype), copy=False)


def check_named(flag: str, given: Iterable[str], names: Sequence[str], source: str) -> None:
    """InputError when ``flag`` (``--input-shape``, ``--input-value``, ...) names an input ``source`` does not have."""
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise InputError(f"{flag} names {', '.join(repr(n) for n in unknown)}, which {source} has no input "
                         f"of; its inputs are {', '.join(names)}")
