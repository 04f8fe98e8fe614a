"""What a .tflite really is: I/O dtypes and quantization, op histogram, a verdict.

``describe`` returns the facts: inputs/outputs, verdict (full-integer, integer
with float I/O, dynamic-range, float16, float32, mixed), float ops, op counts,
how many pieces XNNPACK takes, size.  An integer input (token ids, a mask) that the model uses as a number is
CAST to float32 and QUANTIZEd at once (TFLite's QUANTIZE takes no int32/int64): such a cast, whose float result
feeds QUANTIZE ops only, computes nothing in float and is counted as ``input_casts``, not as a float op.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

from ..data.images import file_sha256
from .adapter import io_infos
from .interpreter import check_header, load_interpreter
from .metadata import metadata_entries, names_in_order, read_metadata

VERDICTS = ("full-integer", "integer with float I/O", "dynamic-range", "float16", "float32", "mixed")
INT_TYPES = {"int8", "uint8", "int16", "int32", "int64", "bool"}
FLOAT_TYPES = {"float32", "float16", "float64"}


def describe(path: str | Path, *, trusted: bool = False) -> dict[str, Any]:
    """Everything ``tflite-int8 inspect`` shows, as a dict."""
    path = check_header(path)
    plain = load_interpreter(path, op_resolver="no-delegates", trusted=trusted)
    feeding = read_metadata(path)
    inputs, outputs = io_infos(plain, names_in_order(feeding))
    tensors = {t["index"]: t for t in plain.get_tensor_details()}
    ops = plain._get_ops_details()
    histogram = Counter(op["op_name"] for op in ops)
    float_detail = []
    casts = _input_casts(ops, tensors)
    for op in ops:
        names = [tensors[i]["name"] for i in list(op["inputs"]) + list(op["outputs"])
                 if i >= 0 and _dtype(tensors, i) in FLOAT_TYPES]
        if names and op["op_name"] not in ("QUANTIZE", "DEQUANTIZE") and op["index"] not in casts:
            float_detail.append({"op": op["op_name"], "index": int(op["index"]), "float_tensors": names})
    delegated = load_interpreter(path, op_resolver="auto", trusted=True)
    xnn = _xnnpack(delegated._get_ops_details())
    info = {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "sha256": file_sha256(path),
        "quantization": _quantization(tensors),
        "inputs": [dict(i.to_dict(), accepts=i.float_range()) for i in inputs],
        "outputs": [dict(o.to_dict(), represents=o.float_range()) for o in outputs],
        "op_histogram": dict(sorted(histogram.items())),
        "float_ops": dict(Counter(d["op"] for d in float_detail)),
        "float_op_detail": float_detail,
        "input_casts": len(casts),  # integer -> float32 -> QUANTIZE: an integer value made int8, no float math
        "xnnpack_partitions": xnn["partitions"],  # graph pieces the XNNPACK delegate took (0: none)
        "xnnpack": xnn,
        "signatures": {k: {kk: _in_order(vv, inputs + outputs) for kk, vv in v.items()}
                       for k, v in plain.get_signature_list().items()},
        "metadata": _metadata(path),
        "feeding": feeding,  # how to feed the model (this tool's metadata; None in other files)
    }
    info["verdict"] = _verdict(info, ops, tensors)
    return info


def _quantization(tensors: dict) -> dict[str, Any]:
    """How many tensors carry quantization parameters, and a digest of all of them in tensor order: two files with
    the same ops and I/O but other activation ranges (``--ranges``) or weight scales differ here."""
    digest, n = hashlib.sha256(), 0
    for _, t in sorted(tensors.items()):
        q = t["quantization_parameters"]
        if len(q["scales"]):
            n += 1
            digest.update(q["scales"].astype("float32").tobytes() + q["zero_points"].astype("int64").tobytes())
    return {"tensors": n, "digest": digest.hexdigest()[:16]}


def _input_casts(ops: list, tensors: dict) -> set[int]:
    """The CAST ops from an integer tensor to float32 whose result only feeds QUANTIZE ops (their indices)."""
    consumers: dict[int, list[str]] = {}
    for op in ops:
        for i in op["inputs"]:
            consumers.setdefault(int(i), []).append(op["op_name"])
    found = set()
    for op in ops:
        if op["op_name"] != "CAST" or len(op["inputs"]) != 1 or len(op["outputs"]) != 1:
            continue
        src, out = int(op["inputs"][0]), int(op["outputs"][0])
        if _dtype(tensors, src) in INT_TYPES and _dtype(tensors, out) in FLOAT_TYPES \
                and consumers.get(out) and set(consumers[out]) == {"QUANTIZE"}:
            found.add(int(op["index"]))
    return found


def _in_order(names: Any, infos: list) -> list[str]:
    """A signature's names in the model's order (LiteRT lists them sorted)."""
    order = {t.name: k for k, t in enumerate(infos)}
    return sorted(names, key=lambda n: order.get(n, len(order)))


def model_ops(path: str | Path) -> list[str]:
    """The op names of every operator in the file (all subgraphs), read from the flatbuffer alone: no interpreter,
    so nothing native runs (usable on a file that crashes interpreters); [] when the file cannot be parsed."""
    try:
        from ai_edge_litert import schema_py_generated as schema

        model = schema.Model.GetRootAsModel(Path(path).read_bytes(), 0)
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        codes = []
        for i in range(model.OperatorCodesLength()):
            oc = model.OperatorCodes(i)
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            custom = oc.CustomCode()
            codes.append(custom.decode(errors="replace") if custom else names.get(code, str(code)))
        return [codes[g.Operators(k).OpcodeIndex()] for j in range(model.SubgraphsLength())
                for g in [model.Subgraphs(j)] for k in range(g.OperatorsLength())]
    except Exception:  # noqa: BLE001 - only a hint for error messages
        return []


def _xnnpack(ops: list) -> dict[str, Any]:
    """Which ops the XNNPACK delegate took and which fall back to the built-in kernels.

    After delegation the interpreter lists the original ops plus one DELEGATE node per partition.
    A tensor crossing from a fallback op into a partition is a DELEGATE input; one crossing out is a
    DELEGATE output.  So an op is a fallback when a partition reads its output (or it makes a model
    output no partition makes), and the producer of a fallback op's input is a fallback too unless a
    partition produced that input.
    """
    parts = [op for op in ops if op["op_name"] == "DELEGATE"]
    plain = [op for op in ops if op["op_name"] != "DELEGATE"]
    d_in = {int(t) for op in parts for t in op["inputs"]}
    d_out = {int(t) for op in parts for t in op["outputs"]}
    producer = {int(t): op["index"] for op in plain for t in op["outputs"]}
    consumed = {int(t) for op in plain for t in op["inputs"]}
    fallback = set()
    for op in plain:
        outs = {int(t) for t in op["outputs"]}
        if outs & (d_in - d_out) or any(t not in consumed and t not in d_in and t not in d_out for t in outs):
            fallback.add(op["index"])
    todo = list(fallback)
    by_index = {op["index"]: op for op in plain}
    while todo:
        for t in by_index[todo.pop()]["inputs"]:
            p = producer.get(int(t))
            if p is not None and p not in fallback and int(t) not in d_out:
                fallback.add(p)
                todo.append(p)
    return {"partitions": len(parts),
            "delegated": dict(Counter(op["op_name"] for op in plain if op["index"] not in fallback)),
            "fallback": dict(Counter(op["op_name"] for op in plain if op["index"] in fallback))}


def _metadata(path: Path) -> dict[str, str]:
    """The model's metadata entries (name -> short text or size), read from the flatbuffer."""
    try:
        from ai_edge_litert import schema_py_generated as schema

        model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
        out = {"description": (model.Description() or b"").decode(errors="replace")}
        for name, raw in metadata_entries(path).items():
            text = raw.rstrip(b"\0").decode("ascii", errors="replace")
            value = text if text.isprintable() and len(text) < 64 else f"{len(raw)} bytes"
            if value or name not in out:
                out[name] = value
        return out
    except Exception as exc:  # metadata is informative only; a file the interpreter loads is still inspected
        return {"error": f"metadata unreadable: {exc}"}


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """Rows (field, value in a, value in b, differs) of two ``describe`` results, side by side."""
    def io(t: dict) -> str:
        rng = t.get("accepts") or t.get("represents")
        q = f" scale {_num(t['scale'])} zp {t['zero_point'][:4]}" if t["scale"] else ""
        return f"{t['dtype']} {t['shape']}{q}" + (f" = {rng[0]:.4g}..{rng[1]:.4g}" if rng else "")

    def quant(d: dict) -> str:
        return f"{d['quantization']['tensors']} tensors, parameters {d['quantization']['digest']}"

    rows = [("verdict", a["verdict"], b["verdict"]), ("size", f"{a['size_bytes']:,} B", f"{b['size_bytes']:,} B"),
            ("content sha256", a["sha256"][:16], b["sha256"][:16]), ("quantization", quant(a), quant(b))]
    for kind in ("inputs", "outputs"):
        for k in range(max(len(a[kind]), len(b[kind]))):
            ta = io(a[kind][k]) if k < len(a[kind]) else "-"
            tb = io(b[kind][k]) if k < len(b[kind]) else "-"
            rows.append((f"{kind[:-1]} {k}", ta, tb))
    for op in sorted(set(a["op_histogram"]) | set(b["op_histogram"])):
        rows.append((f"op {op}", str(a["op_histogram"].get(op, 0)), str(b["op_histogram"].get(op, 0))))
    rows.append(("float ops", counts_text(a["float_ops"]), counts_text(b["float_ops"])))
    rows.append(("XNNPACK fallback", counts_text(a["xnnpack"]["fallback"]), counts_text(b["xnnpack"]["fallback"])))
    return [(f, x, y, x != y) for f, x, y in rows]


def _num(values: list) -> str:
    return ",".join(f"{v:.4g}" for v in values[:4]) + ("…" if len(values) > 4 else "")


def counts_text(c: dict) -> str:
    """{op: n} as 'A x2, B x1' (sorted by name), or 'none'."""
    return ", ".join(f"{k} x{v}" for k, v in sorted(c.items())) or "none"


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
