"""What a .tflite really is: I/O dtypes and quantization, op histogram, a verdict.

``load_interpreter`` opens any .tflite safely (header check, then a first load in
a child process so a corrupt file crashes the child, not the caller).
``describe`` returns the facts: inputs/outputs, verdict (full-integer, integer
with float I/O, dynamic-range, float16, float32, mixed), float ops, op counts,
how many pieces XNNPACK takes, size.
"""
from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from .errors import InputError

INT_TYPES = {"int8", "uint8", "int16", "int32", "int64", "bool"}
FLOAT_TYPES = {"float32", "float16", "float64"}
_PROBE = ("import sys\nfrom ai_edge_litert.interpreter import Interpreter, OpResolverType\n"
          "i = Interpreter(model_path=sys.argv[1], experimental_op_resolver_type="
          "OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)\ni.allocate_tensors()\n")


def check_header(path: str | Path) -> Path:
    """Existence, size and the TFL3 flatbuffer identifier; InputError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file {path} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"model file {path} is empty")
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise InputError(f"{path} is not a TFLite flatbuffer (no 'TFL3' identifier); is it the right file?")
    return path


def probe(path: str | Path, timeout: float = 120.0) -> None:
    """Load the model once in a child process; a crash or error there becomes an InputError here."""
    path = check_header(path)
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise InputError(f"loading {path} did not finish in {timeout:.0f} s; the file is probably corrupt") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit code {proc.returncode}"
        if proc.returncode < 0:
            why = f"the interpreter crashed (signal {-proc.returncode})"
        raise InputError(f"{path} cannot be loaded by the TFLite interpreter: {why[:300]}; the file is corrupt "
                         f"or truncated: re-create it")


def load_interpreter(path: str | Path, *, num_threads: int | None = None, op_resolver: str = "auto",
                     trusted: bool = False) -> Any:
    """An allocated LiteRT interpreter. ``op_resolver``: auto (XNNPACK), builtin, reference, no-delegates."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    path = check_header(path)
    if not trusted:
        probe(path)
    kinds = {"auto": OpResolverType.AUTO, "builtin": OpResolverType.BUILTIN,
             "reference": OpResolverType.BUILTIN_REF,
             "no-delegates": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    from ._quiet import native_stderr_captured

    try:
        with native_stderr_captured():
            interp = Interpreter(model_path=str(path), num_threads=num_threads,
                                 experimental_op_resolver_type=kinds[op_resolver])
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"{path} cannot be loaded by the TFLite interpreter: {exc}") from None
    return interp


def describe(path: str | Path, *, trusted: bool = False) -> dict[str, Any]:
    """Everything ``tflite-int8 inspect`` shows, as a dict."""
    from .adapter import _io_infos

    path = check_header(path)
    plain = load_interpreter(path, op_resolver="no-delegates", trusted=trusted)
    inputs, outputs = _io_infos(plain)
    tensors = {t["index"]: t for t in plain.get_tensor_details()}
    ops = plain._get_ops_details()
    histogram = Counter(op["op_name"] for op in ops)
    float_ops = []
    for op in ops:
        dtypes = {_dtype(tensors, i) for i in list(op["inputs"]) + list(op["outputs"]) if i >= 0}
        if dtypes & FLOAT_TYPES and op["op_name"] not in ("QUANTIZE", "DEQUANTIZE"):
            float_ops.append(op["op_name"])
    delegated = load_interpreter(path, op_resolver="auto", trusted=True)
    partitions = sum(1 for op in delegated._get_ops_details() if op["op_name"] == "DELEGATE")
    info = {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "inputs": [i.to_dict() for i in inputs],
        "outputs": [o.to_dict() for o in outputs],
        "op_histogram": dict(sorted(histogram.items())),
        "float_ops": dict(Counter(float_ops)),
        "xnnpack_partitions": partitions,  # graph pieces the XNNPACK delegate took (0: none)
        "signatures": list(plain.get_signature_list()),
    }
    info["verdict"] = _verdict(info, ops, tensors)
    return info


def _dtype(tensors: dict, index: int) -> str:
    import numpy as np

    return np.dtype(tensors[index]["dtype"]).name


def _verdict(info: dict, ops: list, tensors: dict) -> str:
    io_types = {t["dtype"] for t in info["inputs"] + info["outputs"]}
    all_types = {_dtype(tensors, i) for op in ops for i in list(op["inputs"]) + list(op["outputs"]) if i >= 0}
    has_q = any(op["op_name"] in ("QUANTIZE", "DEQUANTIZE") for op in ops)
    if not info["float_ops"]:
        if io_types <= INT_TYPES:
            return "full-integer"
        return "integer with float I/O" if has_q else "full-integer"
    if "float16" in all_types:
        return "float16"
    if not (all_types & {"int8", "uint8", "int16"}):
        return "float32"
    int_compute = any(
        _dtype(tensors, op["outputs"][0]) in {"int8", "uint8", "int16"}
        for op in ops if op["outputs"] and op["op_name"] not in ("QUANTIZE", "DEQUANTIZE")
    )
    return "mixed" if int_compute else "dynamic-range"
