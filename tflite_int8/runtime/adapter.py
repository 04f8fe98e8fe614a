"""The I/O adapter: float in, float out, bit-identical to TFLite's own QUANTIZE/DEQUANTIZE.

The arithmetic lives in :mod:`.qmath` (ties to even after multiplying by the float32
inverse, as XNNPACK and the optimized kernels do by default; ``rounding="reference"``
for the reference kernels).  This module binds it to a model's tensors.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..config.inputs import INTEGER_DTYPES, InputSpec, InputTable, check_values, signature_name
from ..config.preprocess import PreprocessSpec
from ..errors import ConversionError, InputError, Int8Warning
from ..portable import qmath
from .interpreter import load_interpreter
from .metadata import input_table, names_in_order, output_perms, read_metadata

LAYOUTS = ("tflite", "source")

INT_RANGES = qmath.INT_RANGES


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape, dtype and quantization of one model input or output."""

    name: str
    index: int
    shape: tuple[int, ...]
    dtype: str
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int = 0

    @property
    def quantized(self) -> bool:
        return self.dtype in INT_RANGES and len(self.scales) > 0 and any(s != 0.0 for s in self.scales)

    @property
    def per_axis(self) -> bool:
        return len(self.scales) > 1

    def float_range(self) -> tuple[float, float] | None:
        """The float interval the integer type can represent (per-tensor), or None."""
        if not self.quantized or self.per_axis:
            return None
        lo, hi = INT_RANGES[self.dtype]
        s, z = self.scales[0], self.zero_points[0]
        return (float(np.float32((lo - z) * s)), float(np.float32((hi - z) * s)))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "scale": list(self.scales), "zero_point": list(self.zero_points),
                "quantized_dimension": self.quantized_dimension}


def _info(name: str, d: Mapping[str, Any]) -> TensorInfo:
    qp = d.get("quantization_parameters", {})
    scales = tuple(float(s) for s in np.asarray(qp.get("scales", []), dtype=np.float32))
    zps = tuple(int(z) for z in np.asarray(qp.get("zero_points", []), dtype=np.int64))
    return TensorInfo(name, int(d["index"]), tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"]).name,
                      scales, zps, int(qp.get("quantized_dimension", 0)))


def quantize(x: np.ndarray, info: TensorInfo, *, rounding: str = "xnnpack", in_range: bool = False) -> np.ndarray:
    """float -> int exactly as TFLite's QUANTIZE kernel (see module docstring and :mod:`.qmath`).

    ``in_range=True`` promises every value lies within ``info.float_range()`` (the Runner knows it from
    its min/max check): the clamp is then skipped.
    """
    if not info.quantized:
        raise InputError(f"tensor '{info.name}' is {info.dtype} without quantization parameters; nothing to quantize")
    return qmath.quantize(x, info.scales, info.zero_points, info.dtype, axis=info.quantized_dimension,
                          rounding=rounding, in_range=in_range)


def dequantize(q: np.ndarray, info: TensorInfo) -> np.ndarray:
    """int -> float exactly as TFLite's DEQUANTIZE: (q - zero_point) * scale in float32."""
    if not info.quantized:
        return np.asarray(q, dtype=np.float32)
    return qmath.dequantize(q, info.scales, info.zero_points, axis=info.quantized_dimension)


def pixel_table(spec: PreprocessSpec, info: TensorInfo, *, rounding: str = "xnnpack") -> np.ndarray:
    """uint8 pixel -> quantized input value, per channel: shape (C, 256), computed through the float path."""
    pixels = np.repeat(np.arange(256, dtype=np.uint8)[:, None], spec.num_channels, axis=1)[None, :, None, :]
    x = spec.to_nhwc(spec.normalize(pixels))  # (1, 256, 1, C)
    nhwc_info = info if not info.per_axis else _nhwc_axis(info)
    return np.ascontiguousarray(quantize(x, nhwc_info, rounding=rounding)[0, :, 0, :].T)


def _nhwc_axis(info: TensorInfo) -> TensorInfo:
    return TensorInfo(info.name, info.index, info.shape, info.dtype, info.scales, info.zero_points, 3)


class Runner:
    """Run a .tflite with float inputs and float outputs (or uint8 images with a spec).

    ``runner(x)`` -> {output name: float32 array}, by the model's own (user's) names.  ``x`` is a float array
    with a batch axis (several inputs: by position in the model's order, or by name); a batch of N runs as N
    invokes when the model has batch 1.  Input layout: an image input in the spec's layout (NCHW or NHWC), other
    inputs as TFLite takes them (without a spec: NHWC).  ``layout="source"`` takes every input and returns every
    output in the source model's layout (e.g. NCHW), as the file's ``tflite_int8`` metadata (or ``inputs=``)
    describes it.  With a spec, uint8 pixels (N,H,W,C) at the model's size go through the integer-only pixel path.
    An integer input (token ids, masks: :func:`integer_input`) takes integer arrays, set as they are (values must fit
    int32); a float array there, or an integer array for a float input, is an InputError naming the input.
    """

    def __init__(self, path: str | Path, preprocess: PreprocessSpec | None = None, *, num_threads: int | None = None,
                 nonfinite: str = "error", clip_warn: float = 0.01, rounding: str = "xnnpack",
                 op_resolver: str = "auto", output_names: Sequence[str] | None = None, trusted: bool = False,
                 inputs: InputTable | None = None, layout: str = "tflite"):
        if nonfinite not in ("error", "clamp"):
            raise ValueError("nonfinite must be 'error' or 'clamp'")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        self.path = Path(path)
        self.spec = preprocess
        self.nonfinite = nonfinite
        self.clip_warn = clip_warn
        self.layout = layout
        self.rounding = "reference" if op_resolver == "reference" else rounding
        self._interp = load_interpreter(self.path, num_threads=num_threads, op_resolver=op_resolver,
                                        trusted=trusted)
        meta = read_metadata(self.path)
        self.inputs, self.outputs = io_infos(self._interp, names_in_order(meta))
        if output_names is not None:
            if len(output_names) != len(self.outputs):
                raise InputError(f"{self.path}: {len(output_names)} output names given, model has {len(self.outputs)}")
            self.outputs = [TensorInfo(n, o.index, o.shape, o.dtype, o.scales, o.zero_points, o.quantized_dimension)
                            for n, o in zip(output_names, self.outputs)]
        table = inputs if inputs is not None else input_table(meta, self.path)
        self.input_specs = _match_specs(table, self.inputs)
        self._source_inputs = inputs is not None or layout == "source"
        if layout == "source" and any(s is None for s in self.input_specs):
            raise InputError(f"{self.path.name} does not say its source layout (no tflite_int8 metadata); use "
                             f"layout='tflite' or pass inputs=")
        self._out_perms = output_perms(meta) if layout == "source" else {}
        self._tables: dict[int, np.ndarray] = {}
        self._offsets: dict[int, int | None] = {}

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def interpreter_order(self) -> tuple[list[TensorInfo], list[TensorInfo]]:
        """Inputs and outputs in the interpreter's own order (what LiteRT's Java API numbers 0, 1, ...)."""
        by_index = {t.index: t for t in self.inputs + self.outputs}
        return ([by_index[d["index"]] for d in self._interp.get_input_details()],
                [by_index[d["index"]] for d in self._interp.get_output_details()])

    def __call__(self, *args: np.ndarray, **named: np.ndarray) -> dict[str, np.ndarray]:
        arrays = self._bind(args, named)
        prepared = [self._prepare(a, info, s) for a, info, s in zip(arrays, self.inputs, self.input_specs)]
        n = prepared[0].shape[0]
        if any(p.shape[0] != n for p in prepared):
            raise InputError(f"the inputs of {self.path.name} hold different batch sizes "
                             f"({', '.join(f'{i.name}: {p.shape[0]}' for i, p in zip(self.inputs, prepared))})")
        results: dict[str, list[np.ndarray]] = {o.name: [] for o in self.outputs}
        for i in range(n):
            raw = self.invoke([p[i] if _stacked(info) else p[i:i + 1] for p, info in zip(prepared, self.inputs)])
            for o, r in zip(self.outputs, raw):
                results[o.name].append(dequantize(r, o))
        out = {}
        for name, values in results.items():  # each sample in the asked layout, then (N, ...) of them
            perm = self._out_perms.get(name)
            values = [np.ascontiguousarray(v.transpose(perm)) if perm is not None else v for v in values]
            batched = values[0].ndim > 0 and values[0].shape[0] == 1  # else e.g. a state [2, 1, H]: (N, 2, 1, H)
            out[name] = np.concatenate(values, axis=0) if batched else np.stack(values)
        return out

    def feed(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``runner(...)`` with {input name: array}, by the source model's names (as declared) or the file's."""
        names = [s.name if s is not None else i.name for s, i in zip(self.input_specs, self.inputs)]
        missing = [n for n in names if n not in arrays]
        if missing:
            raise InputError(f"{self.path.name}: no value for input(s) {', '.join(missing)}")
        return self(*[arrays[n] for n in names])

    def invoke(self, raw_inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Set already-quantized inputs (model dtype and shape), invoke, return raw outputs."""
        for info, arr in zip(self.inputs, raw_inputs):
            self._interp.set_tensor(info.index, arr)
        try:
            self._interp.invoke()
        except RuntimeError as exc:  # a kernel that fails to run (GATHER index out of bounds, ...): the file is broken
            what = " ".join(str(exc).split())[:300]
            raise ConversionError(f"{self.path.name}: the TFLite interpreter failed to run it: {what}",
                                  stage="run") from None
        return [self._interp.get_tensor(o.index) for o in self.outputs]

    # -- input handling --------------------------------------------------
    def _bind(self, args: tuple, named: dict) -> list[np.ndarray]:
        if args and named:
            raise InputError("pass model inputs either by position or by name, not both")
        if named:
            unknown = set(named) - {i.name for i in self.inputs}
            if unknown:
                raise InputError(f"{self.path.name}: unknown input(s) {sorted(unknown)}; inputs are "
                                 f"{[i.name for i in self.inputs]}")
            args = tuple(named.get(i.name) for i in self.inputs)
        if len(args) != len(self.inputs) or any(a is None for a in args):
            raise InputError(f"{self.path.name} takes {len(self.inputs)} input(s) "
                             f"({', '.join(i.name for i in self.inputs)}), got {len(args)}")
        return [np.asarray(a) for a in args]

    def _pixel_spec(self, info: TensorInfo) -> PreprocessSpec | None:
        """The preprocessing of an image input: the one passed in, else the one the model declares."""
        if len(info.shape) != 4:
            return None
        if self.spec is not None:
            return self.spec
        declared = self.input_specs[self.inputs.index(info)] if info in self.inputs else None
        return declared.preprocess if declared is not None else None

    def _prepare(self, x: np.ndarray, info: TensorInfo, declared: InputSpec | None = None) -> np.ndarray:
        if integer_input(info, declared):  # token ids, masks: set as they are, in the file's integer type
            x = check_values(info.name, x, info.dtype, self.path.name)
            return np.ascontiguousarray(self._layout(x, info, declared))
        if x.dtype == np.uint8 and self._pixel_spec(info) is not None:
            return self._from_pixels(x, info)
        if x.dtype.kind not in "f":
            raise InputError(
                f"input '{info.name}' of {self.path.name}: got {x.dtype} values; pass float values (the runner "
                f"quantizes them to {info.dtype}), uint8 pixels with a preprocessing spec, or raw {info.dtype} "
                f"through Runner.invoke()")
        return self._quantized(self._layout(x, info, declared), info)

    def _layout(self, x: np.ndarray, info: TensorInfo, declared: InputSpec | None) -> np.ndarray:
        """A batch of one input, as given, in the TFLite layout and shape (InputError naming the input if not)."""
        if not info.shape or info.shape[0] != 1:  # no batch axis of 1: (N, *shape), or one sample as it is
            return self._stacked(x, info, declared)
        want = tuple(info.shape[1:])
        if x.ndim == len(info.shape) - 1:
            x = x[None]
        if self._source_inputs and declared is not None:  # x: a batch of the input, as given -> the TFLite layout
            if tuple(x.shape[1:]) != tuple(declared.shape[1:]):
                raise InputError(f"input '{info.name}' of {self.path.name} expects shape (N, "
                                 f"{', '.join(map(str, declared.shape[1:]))}) (the source model's layout), got "
                                 f"{tuple(x.shape)}")
            x = declared.to_tflite(x)
        elif self.spec is not None and self.spec.layout == "NCHW" and x.ndim == 4:
            x = x.transpose(0, 2, 3, 1)  # channels-first -> channels-last, as TFLite models take
        if tuple(x.shape[1:]) != want:
            layout = self.spec.layout if self.spec is not None else "NHWC"
            raise InputError(f"input '{info.name}' of {self.path.name} expects shape (N, {', '.join(map(str, want))})"
                             f" in the TFLite layout (you declared {layout}), got {tuple(x.shape)}")
        return x

    def _stacked(self, x: np.ndarray, info: TensorInfo, declared: InputSpec | None) -> np.ndarray:
        """An input whose first dimension is no batch of 1 (e.g. a recurrent state [2, 1, H], or a scalar): one
        sample of its shape S, or (N, *S); in the TFLite layout."""
        source = self._source_inputs and declared is not None
        shape = tuple(declared.shape) if source else tuple(info.shape)
        if x.shape == shape:
            x = x[None]
        if tuple(x.shape[1:]) != shape:
            where = "the source model's layout" if source else "the TFLite layout"
            raise InputError(f"input '{info.name}' of {self.path.name} expects one sample {shape} or (N, "
                             f"{', '.join(map(str, shape))}) ({where}), got {tuple(x.shape)}")
        return np.ascontiguousarray(x.transpose(0, *(p + 1 for p in declared.perm))) if source else x

    def _quantized(self, x: np.ndarray, info: TensorInfo) -> np.ndarray:
        """Float values in the TFLite layout -> what the interpreter takes (checked, clamped if asked)."""
        lo, hi = float(np.min(x)), float(np.max(x))  # two cheap reductions; NaN/Inf show up here
        if not (np.isfinite(lo) and np.isfinite(hi)):
            x = self._check_finite(x, info)
        if not info.quantized:
            return np.ascontiguousarray(x, dtype=np.dtype(info.dtype))
        rng = info.float_range()
        inside = rng is not None and rng[0] <= lo and hi <= rng[1]
        if rng is not None and not inside:
            self._check_range(x, info)
        return np.ascontiguousarray(quantize(x, info, rounding=self.rounding, in_range=inside))

    def _check_finite(self, x: np.ndarray, info: TensorInfo) -> np.ndarray:
        bad = ~np.isfinite(x)
        if not bad.any():
            return x
        frac = float(bad.mean())
        if self.nonfinite == "error":
            raise InputError(f"input '{info.name}' contains {int(bad.sum())} NaN/Inf values ({frac:.2%}); fix the "
                             f"data, or pass nonfinite='clamp' to clamp them")
        warnings.warn(f"input '{info.name}': {int(bad.sum())} NaN/Inf values clamped", Int8Warning, stacklevel=3)
        rng = info.float_range() or (-3.4e38, 3.4e38)
        return np.nan_to_num(x, nan=0.0, posinf=rng[1], neginf=rng[0])

    def _check_range(self, x: np.ndarray, info: TensorInfo) -> None:
        rng = info.float_range()
        if rng is None:
            return
        half = info.scales[0] / 2
        clipped = float(np.mean((x < rng[0] - half) | (x > rng[1] + half)))
        if clipped > self.clip_warn:
            warnings.warn(f"input '{info.name}': {clipped:.1%} of values lie outside the calibrated range "
                          f"[{rng[0]:.4g}, {rng[1]:.4g}] and are clipped; check the preprocessing (mean/std, "
                          f"pixel range)", Int8Warning, stacklevel=3)

    def _from_pixels(self, pixels: np.ndarray, info: TensorInfo) -> np.ndarray:
        spec = self._pixel_spec(info)
        assert spec is not None  # _prepare checked it
        if pixels.ndim == 3:
            pixels = pixels[None]
        want = (info.shape[1], info.shape[2], spec.num_channels)
        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != want:
            raise InputError(f"uint8 pixels for '{info.name}' must be (N, {want[0]}, {want[1]}, {want[2]}) at the "
                             f"model's size, got {tuple(pixels.shape)}; resize them with the spec first")
        if not info.quantized:
            return spec.to_nhwc(spec.normalize(pixels)).astype(np.dtype(info.dtype))
        return self.pixels_to_input(pixels, info)

    def pixels_to_input(self, pixels: np.ndarray, info: TensorInfo | None = None) -> np.ndarray:
        """uint8 NHWC pixels -> quantized input with integer ops only (a per-channel table, or an offset)."""
        info = info or self.inputs[0]
        spec = self._pixel_spec(info)
        if spec is None:
            raise InputError("the pixel path needs a preprocessing spec")
        if info.index not in self._tables:
            table = pixel_table(spec, info, rounding=self.rounding)
            self._tables[info.index] = table
            offset = table[:, 0].astype(np.int32)
            ramp = np.arange(256, dtype=np.int32)
            same = bool(np.all(table.astype(np.int32) == ramp[None, :] + offset[:, None]))
            self._offsets[info.index] = int(offset[0]) if same and np.all(offset == offset[0]) else None
            if np.all(table == table[0]):
                self._tables[info.index] = table[:1]  # one shared table, decided once, not per call
        offset = self._offsets[info.index]
        if offset is not None:  # e.g. scale 1/255, zero point -128: q = p - 128
            return (pixels.astype(np.int16) + np.int16(offset)).astype(info.dtype)
        table = self._tables[info.index]
        if len(table) == 1:  # same mean/std on every channel: one lookup
            return np.take(table[0], pixels)
        out = np.empty(pixels.shape, dtype=table.dtype)
        for c in range(pixels.shape[-1]):
            out[..., c] = table[c][pixels[..., c]]
        return out

    @property
    def pixel_fast_path(self) -> str | None:
        """'offset', 'table' or None: which integer-only pixel path the first input uses."""
        info = self.inputs[0]
        spec = self._pixel_spec(info)
        if spec is None or not info.quantized:
            return None
        self.pixels_to_input(np.zeros((1, info.shape[1], info.shape[2], spec.num_channels), np.uint8), info)
        return "offset" if self._offsets[info.index] is not None else "table"


def _stacked(info: TensorInfo) -> bool:
    """Whether a prepared input holds (N, *shape) (no batch axis of 1 to run the samples along)."""
    return not info.shape or info.shape[0] != 1


def integer_input(info: TensorInfo, declared: InputSpec | None = None) -> bool:
    """An input that takes integers as they are (token ids, masks, indices): declared so, or an integer tensor
    of the file without quantization parameters."""
    if declared is not None:
        return declared.integer
    return info.dtype in INTEGER_DTYPES and not info.quantized


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def io_infos(interp: Any, order: tuple[list[str], list[str]] | None = None
             ) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """Inputs and outputs by signature name when the model has one signature, else by tensor name.

    ``order``: the names in the model's order (the file's metadata); otherwise signature names are sorted
    naturally (TF's ``output_0``, ``output_1``, ... in the source model's order).
    """
    by_index = {d["index"]: d for d in interp.get_input_details() + interp.get_output_details()}
    sigs = interp._get_full_signature_list() if hasattr(interp, "_get_full_signature_list") else {}
    if len(sigs) == 1:
        sig = next(iter(sigs.values()))
        ins_map, outs_map = sig.get("inputs", {}), sig.get("outputs", {})
        if all(i in by_index for i in list(ins_map.values()) + list(outs_map.values())):  # else: a broken signature
            return _ordered(ins_map, by_index, order[0] if order else None), \
                _ordered(outs_map, by_index, order[1] if order else None)
    return ([_info(d["name"], d) for d in interp.get_input_details()],
            [_info(d["name"], d) for d in interp.get_output_details()])


def _ordered(mapping: dict[str, int], by_index: dict, order: list[str] | None) -> list[TensorInfo]:
    if order and sorted(order) == sorted(mapping):
        names = list(order)
    else:
        names = sorted(mapping, key=_natural_key)
    return [_info(n, by_index[mapping[n]]) for n in names]


def _match_specs(table: InputTable | None, infos: list[TensorInfo]) -> list[InputSpec | None]:
    """Each TFLite input's declared InputSpec: by name, or by position for a single input (older files)."""
    if table is None:
        return [None] * len(infos)
    by_name = {**{signature_name(s.name): s for s in table}, **{s.name: s for s in table}}
    if len(table) == len(infos) and all(i.name in by_name for i in infos):
        return [by_name[i.name] for i in infos]
    if len(table) == len(infos) == 1:
        return list(table.specs)
    raise InputError(f"the model's inputs ({', '.join(i.name for i in infos)}) are not the declared ones "
                     f"({', '.join(table.names)})")


def read_io(path: str | Path) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """Every input and output of a .tflite: name, shape, dtype, scale(s), zero point(s), in the model's order."""
    return io_infos(load_interpreter(Path(path)), names_in_order(read_metadata(path)))
