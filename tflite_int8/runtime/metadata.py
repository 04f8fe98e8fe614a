"""How to feed a model, carried inside the .tflite: the ``tflite_int8`` metadata entry (a JSON document).

Every file ``convert`` writes holds, as TFLite metadata (``Model.metadata``, name :data:`METADATA_NAME`), its
inputs and outputs by the user's names in the model's order, each input's dtype (float32, or an integer type: token
ids, masks), source shape, TFLite shape, source layout
(a 4-D input's ``NCHW`` or ``NHWC``), layout change (e.g. NCHW -> NHWC) and, for an image input, its
preprocessing (size, resize, mean/std, channels, pixel range); each output's source shape and the transpose back
to it.  It is read here with the flatbuffer schema LiteRT ships (no TensorFlow), so the Runner, ``inspect`` and a
phone's code can all find it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config.inputs import InputTable
from ..errors import InputError

METADATA_NAME = "tflite_int8"
FORMAT = 1


def metadata_entries(path: str | Path) -> dict[str, bytes]:
    """Every metadata entry of the file: name -> raw bytes (the flatbuffer's ``Model.metadata``)."""
    from ai_edge_litert import schema_py_generated as schema

    buf = Path(path).read_bytes()
    model = schema.Model.GetRootAsModel(buf, 0)
    out = {}
    for i in range(model.MetadataLength()):
        md = model.Metadata(i)
        data = model.Buffers(md.Buffer()).DataAsNumpy()
        out[(md.Name() or b"").decode(errors="replace")] = data.tobytes() if hasattr(data, "tobytes") else b""
    return out


def read_metadata(path: str | Path) -> dict[str, Any] | None:
    """This tool's description of the model (None for files without one, e.g. made by other tools)."""
    try:
        raw = metadata_entries(path).get(METADATA_NAME)
    except Exception:  # an unparsable flatbuffer: the interpreter reports it better when it loads the file
        return None
    if not raw:
        return None
    try:
        doc = json.loads(raw.rstrip(b"\0").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def input_table(meta: dict[str, Any] | None, path: str | Path = "model") -> InputTable | None:
    """The inputs the metadata declares (None without metadata)."""
    if not meta or "inputs" not in meta:
        return None
    try:
        return InputTable.from_list(meta["inputs"], source=f"{path} metadata")
    except InputError:
        return None


def output_perms(meta: dict[str, Any] | None) -> dict[str, tuple[int, ...] | None]:
    """Output name -> the transpose from the TFLite layout back to the source model's (None: unknown)."""
    if not meta:
        return {}
    return {o["name"]: (tuple(o["to_source"]) if o.get("to_source") is not None else None)
            for o in meta.get("outputs", []) if isinstance(o, dict) and "name" in o}


def names_in_order(meta: dict[str, Any] | None) -> tuple[list[str], list[str]] | None:
    """The inputs' and outputs' names in the model's order (None without metadata)."""
    if not meta:
        return None
    return ([i["name"] for i in meta.get("inputs", [])], [o["name"] for o in meta.get("outputs", [])])
