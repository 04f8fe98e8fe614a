"""The float models a conversion starts from, run as themselves: PyTorch modules and ONNX Runtime sessions.

``load_factory`` turns ``package.module:factory`` into an ``nn.Module``; ``load_module`` adds a checkpoint;
``declared_class_names`` reads the class names a factory declares (its ``class_names`` attribute);
``load_onnx`` reads and checks an ONNX file; ``ort_session``/``run_onnx`` run one on the CPU.
``simulation_session``/``run_simulation`` run a QDQ (quantization-aware) model as the reference it is: float
fake-quant, graph optimizations off, so QuantizeLinear/DequantizeLinear execute as quantize -> round half to
even -> clamp -> dequantize in float and Conv/Gemm/... in float.  With ONNX Runtime's default optimizations the
Q/DQ pairs are fused into its own integer kernels (QLinearConv, QGemm), whose results depend on the CPU (AVX2's
u8s8 ``vpmaddubsw`` saturates int16 pair sums, AVX-512 VNNI does not): a library's kernels, not the model's
arithmetic.  torch, onnx and onnxruntime are imported only when used.
"""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ConversionError, InputError
from .checkpoint import load_weights

def _factory(target: str) -> Any:
    """``package.module:factory`` -> the factory (or module object) it names, not called."""
    if ":" not in target:
        raise InputError(f"model {target!r} must be 'package.module:factory' or a path to an .onnx file")
    mod_name, _, attr = target.partition(":")
    cwd = str(Path.cwd())
    if cwd not in sys.path:  # let users name modules in the current directory, like `python -m` does
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise InputError(f"cannot import {mod_name!r} for model {target!r}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"{mod_name!r} has no attribute {attr!r} (model {target!r})")
        obj = getattr(obj, part)
    return obj


def load_factory(target: str) -> Any:
    """``package.module:factory`` -> the nn.Module the factory returns."""
    obj = _factory(target)
    model = obj() if callable(obj) and not is_module(obj) else obj
    if not is_module(model):
        raise InputError(f"{target!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def declared_class_names(model: Any) -> Any:
    """The ``class_names`` a model declares (a file, one name per line, or a list), like ``preprocess_spec``:
    an attribute of its factory (``package.module:factory``) or of the module itself; None when it declares none
    or the factory cannot be imported here (the reference step then reports why)."""
    if isinstance(model, str):
        if ":" not in model:
            return None
        try:
            model = _factory(model)
        except InputError:
            return None
    return getattr(model, "class_names", None)


def is_module(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.nn.Module)



def flatten_outputs(out: Any) -> list[np.ndarray]:
    import torch

    if isinstance(out, torch.Tensor):
        return [out.detach().cpu().numpy()]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        flat: list[np.ndarray] = []
        for o in out:
            flat.extend(flatten_outputs(o))
        return flat
    raise ConversionError(f"model returned {type(out).__name__}; export needs tensors", stage="export")



def load_onnx(path: str | Path) -> Any:
    """Read and check an ONNX file; every failure becomes an InputError naming the file."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise InputError(f"ONNX file {path} does not exist")
    if path.stat().st_size == 0:
        raise InputError(f"ONNX file {path} is empty")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf DecodeError, ValidationError, ...
        raise InputError(f"{path} is not a valid ONNX model ({type(exc).__name__}: {str(exc)[:200]}); "
                         f"re-export it") from None
    if not model.graph.node:
        raise InputError(f"{path} has an empty graph")
    return model



SIMULATION = "float fake-quant (ONNX Runtime, graph optimizations off)"  # what a QDQ model's reference is


def ort_session(path: Path | Any, optimize: bool = True) -> Any:
    """An ONNX Runtime CPU session for a file (or an in-memory ModelProto); ``optimize=False``: every graph
    optimization off (ORT_DISABLE_ALL), each node run as the ONNX operator it is."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # fatal only: a failure is raised (one line), not also logged to stderr
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = path.SerializeToString() if hasattr(path, "SerializeToString") else str(path)
    try:
        return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ort_error(exc, f"load {_model_name(path)}", user=not hasattr(path, "SerializeToString")) from None


def simulation_session(path: Path | Any) -> Any:
    """The reference session of a QDQ model (a file or a ModelProto): float fake-quant, never ONNX Runtime's
    integer kernels (see the module's docstring)."""
    return ort_session(path, optimize=False)


def run_session(session: Any, feed: Mapping[str, np.ndarray], model: str | Path | Any) -> list[np.ndarray]:
    """``session.run`` on one sample; ONNX Runtime's failure as a one-line typed error naming the model and the
    inputs it was given (:func:`ort_error`)."""
    try:
        return session.run(None, feed)
    except Exception as exc:
        given = ", ".join(f"{n} {np.asarray(v).dtype} {tuple(np.shape(v))}" for n, v in feed.items())
        declared = ", ".join(f"{i.name} {i.type} {tuple(i.shape)}" for i in session.get_inputs())
        raise ort_error(exc, f"run {_model_name(model)} on {given} (it declares {declared})",
                        user=not hasattr(model, "SerializeToString")) from None


# ONNX Runtime's error kinds that mean the file or data given was wrong, not the model or this tool
_USER_KINDS = ("InvalidArgument", "InvalidProtobuf", "NoSuchFile", "InvalidGraph")


def ort_error(exc: BaseException, what: str, *, user: bool) -> InputError | ConversionError:
    """ONNX Runtime's exception as one line: an InputError when the user's file or data is what it rejects
    (a wrong shape or type, not an ONNX file), a ConversionError otherwise (the graph fails on valid data)."""
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", " ".join(str(exc).split()))
    text = re.sub(r"/onnxruntime_src/\S+ \S+\(.*?\) ", "", text).rstrip(". ")  # less the C++ source line
    message = f"ONNX Runtime cannot {what}: {text[:400]}"
    if user and type(exc).__name__ in _USER_KINDS:
        hint = ("is it an ONNX file? Re-export it" if what.startswith("load") else
                "give data of the shape and type the model declares")
        return InputError(f"{message}. {hint[0].upper()}{hint[1:]}")
    return ConversionError(f"{message}. The model fails in ONNX Runtime itself: check it there "
                           f"(onnxruntime.InferenceSession) or re-export it", stage="export")


def _model_name(model: str | Path | Any) -> str:
    return "the rewritten ONNX model" if hasattr(model, "SerializeToString") else str(model)


def run_onnx(path: str | Path | Any, inputs: Sequence[Any], *, name: str | None = None,
             optimize: bool = True) -> list[list[np.ndarray]]:
    """Run an ONNX model (a file or a ModelProto) on each sample (an array for a single-input model, or
    {input name: array}); returns per-sample output lists.  ``name``: the model as errors name it (the user's
    file when ``path`` is a working copy); ``optimize=False``: see :func:`ort_session`."""
    model = path if hasattr(path, "SerializeToString") else Path(path)
    session = ort_session(model, optimize=optimize)
    names, dtypes = [i.name for i in session.get_inputs()], session_dtypes(session)
    return [run_session(session, onnx_feed(names, x, dtypes), name or model) for x in inputs]


def run_simulation(path: str | Path | Any, inputs: Sequence[Any]) -> list[list[np.ndarray]]:
    """A QDQ model run as its float fake-quant simulation (:func:`simulation_session`) on each sample."""
    return run_onnx(path, inputs, optimize=False)


ORT_TYPES = {"tensor(float)": "float32", "tensor(int64)": "int64", "tensor(int32)": "int32",
             "tensor(int16)": "int16", "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(bool)": "bool"}


def session_dtypes(session: Any) -> dict[str, str]:
    """{input name: numpy type name} of an ONNX Runtime session's inputs (the types :func:`onnx_feed` casts to)."""
    return {i.name: ORT_TYPES[i.type] for i in session.get_inputs() if i.type in ORT_TYPES}


def feed_array(x: Any, dtype: str | None = None) -> np.ndarray:
    """``x`` as ``dtype``; without one, integer (and bool) arrays as they are (token ids, masks), others float32."""
    x = np.asarray(x)
    if dtype is not None:
        return x.astype(dtype, copy=False)
    return x if x.dtype.kind in "iub" else x.astype(np.float32, copy=False)


def onnx_feed(names: Sequence[str], item: Any, dtypes: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
    """{input name: array} for an ONNX session from one array or a mapping by name: each in its ``dtypes`` type
    (:func:`session_dtypes`), else float32 (integer arrays: as they are)."""
    dtypes = dtypes or {}
    if isinstance(item, Mapping):
        missing = [n for n in names if n not in item]
        if missing:
            raise InputError(f"no value for ONNX input(s) {', '.join(missing)}")
        return {n: feed_array(item[n], dtypes.get(n)) for n in names}
    if len(names) != 1:
        raise InputError(f"the ONNX model takes {len(names)} inputs ({', '.join(names)}); give one array per name")
    return {names[0]: feed_array(item, dtypes.get(names[0]))}


def load_module(source: Any, weights: str | None = None, trust: bool = False) -> Any:
    """An eval-mode nn.Module from a module or a 'package.module:factory' string (plus optional weights)."""
    module = source if is_module(source) else load_factory(str(source))
    if weights:
        load_weights(module, weights, trust_pickle=trust)
    return module.eval()
