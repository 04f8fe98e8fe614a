"""Opening a .tflite safely: the header check, a first load in a child process, an allocated interpreter.

``probe`` loads, inspects and invokes the file once in a child process (:class:`LoadJob` through
:mod:`.child`), so a corrupt or hostile file crashes the child, not the caller; ``load_interpreter`` then opens
it here (``trusted=True`` skips the probe for files this run made itself, which the conversion checked the same
way: :func:`load_facts`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, Int8Error
from . import child
from .quiet import native_stderr_captured

RESOLVERS = ("builtin kernels", "XNNPACK")  # the order a file is loaded in by LoadJob


@dataclass(frozen=True)
class LoadJob:
    """Load, inspect and invoke a file once with the builtin kernels, then with XNNPACK: everything inspect and the
    Runner do with it.  Run in a child process (:func:`load_facts`), so a crash only ends the child.

    Returns ``{"error": message or None, "resolver": where it failed, "ops": [...]}``; ``ops`` (with ``detail``)
    lists every op with its tensors' dtype and quantization, for the int8 lint.
    """

    path: str
    detail: bool = False

    def __call__(self, progress: Any) -> dict[str, Any]:
        import numpy as np
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        facts: dict[str, Any] = {"error": None, "resolver": None, "ops": []}
        kinds = (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, OpResolverType.AUTO)
        for name, kind in zip(RESOLVERS, kinds):
            try:
                with native_stderr_captured():
                    i = Interpreter(model_path=self.path, experimental_op_resolver_type=kind)
                    i.allocate_tensors()
                    i.get_tensor_details(), i._get_ops_details(), i.get_signature_list(), i._get_full_signature_list()
                    for d in i.get_input_details():
                        i.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
                    i.invoke()
                    for d in i.get_output_details():
                        i.get_tensor(d["index"])
            except (ValueError, RuntimeError) as exc:
                facts.update(error=" ".join(str(exc).split()), resolver=name)
                return facts
            if self.detail and not facts["ops"]:
                facts["ops"] = op_facts(i)
        return facts


def op_facts(interp: Any) -> list[dict[str, Any]]:
    """Every op of an interpreter with its input/output tensors: name, dtype, scales (first 4), zero point."""
    import numpy as np

    tensors = {t["index"]: t for t in interp.get_tensor_details()}

    def fact(k: int) -> dict[str, Any]:
        t = tensors[k]
        q = t.get("quantization_parameters", {})
        scales = [float(v) for v in np.ravel(q.get("scales", []))]
        zero_points = [int(v) for v in np.ravel(q.get("zero_points", []))[:1]]
        return {"name": t["name"], "dtype": np.dtype(t["dtype"]).name, "scale": max(scales, default=0.0),
                "zero_point": zero_points[0] if zero_points else 0}

    return [{"index": int(op["index"]), "op": op["op_name"],
             "inputs": [fact(int(k)) for k in op["inputs"] if int(k) >= 0],
             "outputs": [fact(int(k)) for k in op["outputs"] if int(k) >= 0]}
            for op in interp._get_ops_details()]


def load_facts(path: str | Path, *, detail: bool = False, timeout: float = 120.0, fail: Any = None,
               worker: child.Worker | None = None) -> dict[str, Any]:
    """:class:`LoadJob` on ``path`` in a child process (``worker``'s, or a new one). A crash or timeout is an
    InputError naming the file (``fail`` builds another error from the :class:`~tflite_int8.runtime.child.Failure`)."""
    def unloadable(f: child.Failure) -> Int8Error:
        return InputError(f"{path} cannot be loaded by the TFLite interpreter: the interpreter {f.describe()}; the "
                          f"file is corrupt or truncated: re-create it")

    job, what = LoadJob(str(path), detail), f"loading {Path(path).name}"
    if worker is not None:
        return worker.call(job, what=what, stage="load", timeout=timeout, fail=fail or unloadable)
    return child.call(job, what=what, stage="load", timeout=timeout, fail=fail or unloadable)


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
    facts = load_facts(path, timeout=timeout)
    if facts["error"]:
        raise InputError(f"{path} cannot be loaded by the TFLite interpreter ({facts['resolver']}): "
                         f"{facts['error'][:300]}; the file is corrupt or truncated: re-create it")


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
