"""Opening a .tflite safely: the header check, a first load in a child process, an allocated interpreter.

``probe`` loads, inspects and invokes the file once in a child process, so a corrupt or hostile file
crashes the child, not the caller; ``load_interpreter`` then opens it here (``trusted=True`` skips the probe
for files this run made itself).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from .quiet import native_stderr_captured

_PROBE = """
import sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
for kind in (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, OpResolverType.AUTO):
    i = Interpreter(model_path=sys.argv[1], experimental_op_resolver_type=kind)
    i.allocate_tensors()
    i.get_tensor_details(); i._get_ops_details(); i.get_signature_list(); i._get_full_signature_list()
    for d in i.get_input_details():
        i.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    i.invoke()
    for d in i.get_output_details():
        i.get_tensor(d["index"])
"""  # everything inspect and the Runner do with a file, once, where a crash only ends the child


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
    try:
        with native_stderr_captured():
            interp = Interpreter(model_path=str(path), num_threads=num_threads,
                                 experimental_op_resolver_type=kinds[op_resolver])
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"{path} cannot be loaded by the TFLite interpreter: {exc}") from None
    return interp
