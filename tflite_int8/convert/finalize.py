"""The last touch on every .tflite a conversion writes: the user's names, the model's order, how to feed it.

The TF converter names a SavedModel's outputs ``output_0``, ``output_1``... and orders its inputs by name; onnx2tf's
float32 file has no signature at all.  :func:`finalize` gives every file one ``serving_default`` signature whose
inputs and outputs carry the source model's names, puts the subgraph's inputs and outputs in the source model's
order (what LiteRT's Java API numbers 0, 1, ...), names the I/O tensors the same, and stores the
``tflite_int8`` metadata (:mod:`tflite_int8.runtime.metadata`): each input's shape, source layout, layout change and
preprocessing, each output's source shape and the transpose back to it.  The flatbuffer is edited with
TensorFlow's ``flatbuffer_utils`` (what the TF converter itself uses to add its own metadata).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ..config.inputs import CHANNELS_LAST, InputTable, signature_name
from ..errors import ConversionError
from ..runtime.metadata import FORMAT, METADATA_NAME
from ..runtime.versions import __version__

SIGNATURE_KEY = "serving_default"


def _ones_moved(src: list[int], tfl: list[int]) -> list[int]:
    """The transpose that moves ``tfl``'s size-1 axes to where ``src`` has them (other axes keep their order)."""
    big = iter(i for i, d in enumerate(tfl) if d != 1)
    ones = iter(i for i, d in enumerate(tfl) if d == 1)
    return [next(big) if d != 1 else next(ones) for d in src]


def output_entry(name: str, source_shape: Sequence[Any] | None, tflite_shape: Sequence[int]) -> dict[str, Any]:
    """An output's metadata: its shapes and the transpose from the TFLite layout back to the source's."""
    tfl = [int(d) for d in tflite_shape]
    src = [int(d) for d in source_shape] if source_shape and all(isinstance(d, int) and d > 0
                                                                 for d in source_shape) else None
    to_source = None
    if src is not None and len(src) == len(tfl):
        if src == tfl:
            to_source = list(range(len(tfl)))
        elif len(tfl) >= 3:
            last = CHANNELS_LAST.get(len(tfl), (0, *range(2, len(tfl)), 1))
            if [src[i] for i in last] == tfl:  # TFLite is channels-last: move the last axis back to 1
                to_source = [0, len(tfl) - 1, *range(1, len(tfl) - 1)]
        if to_source is None and [d for d in src if d != 1] == [d for d in tfl if d != 1]:
            to_source = _ones_moved(src, tfl)  # a state [2, 1, H] written [1, 2, H]: the same values, in order
    return {"name": name, "shape": src, "tflite_shape": tfl, "to_source": to_source}


def finalize(path: str | Path, table: InputTable,
             outputs: Sequence[tuple[str, Sequence[Any] | None]]) -> dict[str, Any]:
    """Rewrite ``path`` in place with the user's names, the model's order and the metadata; returns the metadata.

    ``outputs``: (name, source shape) per output, in the model's order.  Inputs are matched by name (the
    converter's signature; onnx2tf's own file by tensor name): the converter's tensor order is not the model's.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    path = Path(path)
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(path.read_bytes()))
    sub = model.subgraphs[0]
    ins, outs = _io_tensors(model, sub, table, [n for n, _ in outputs], path)
    for spec, idx in zip(table, ins):
        shape = [int(d) for d in sub.tensors[idx].shape]
        if shape != list(spec.tflite_shape):
            raise ConversionError(f"{path.name}: input '{spec.name}' is {shape} in the TFLite file, expected "
                                  f"{list(spec.tflite_shape)} ({spec.layout_change or 'layout kept'})",
                                  stage="translate")
    sig = schema.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = SIGNATURE_KEY, 0
    sig.inputs = [_tensor_map(schema, n, i) for n, i in zip(table.names, ins)]
    sig.outputs = [_tensor_map(schema, n, i) for (n, _), i in zip(outputs, outs)]
    model.signatureDefs = [sig]
    sub.inputs, sub.outputs = list(ins), list(outs)
    for name, idx in list(zip(table.names, ins)) + [(n, i) for (n, _), i in zip(outputs, outs)]:
        sub.tensors[idx].name = name.encode()
    meta = {"format": FORMAT, "tool": f"tflite-int8 {__version__}", "inputs": table.to_list(),
            "outputs": [output_entry(n, shape, sub.tensors[i].shape) for (n, shape), i in zip(outputs, outs)]}
    _set_metadata(schema, model, json.dumps(meta).encode())
    path.write_bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    return meta


def _io_tensors(model: Any, sub: Any, table: InputTable, out_names: list[str], path: Path) -> tuple[list, list]:
    """Tensor indices of the inputs (table order) and outputs (model order)."""
    if model.signatureDefs and len(model.signatureDefs) == 1:
        sig = model.signatureDefs[0]
        by_in = {tm.name.decode(): tm.tensorIndex for tm in sig.inputs}
        by_out = {tm.name.decode(): tm.tensorIndex for tm in sig.outputs}
        ins = [by_in.get(signature_name(n), by_in.get(n)) for n in table.names]
        outs = [by_out.get(f"output_{k}", by_out.get(n)) for k, n in enumerate(out_names)]
    else:  # onnx2tf's own files: inputs and outputs in the ONNX order, input tensors named after the ONNX inputs
        named = {sub.tensors[i].name.decode(): i for i in sub.inputs}
        ins = [named.get(n, named.get(signature_name(n))) for n in table.names]
        if None in ins and len(sub.inputs) == len(table):
            ins = list(sub.inputs)
        outs = list(sub.outputs) if len(sub.outputs) == len(out_names) else [None]
    if None in ins or None in outs or len(ins) != len(sub.inputs) or len(outs) != len(sub.outputs):
        raise ConversionError(f"{path.name}: cannot match its inputs/outputs to the model's ({', '.join(table.names)} "
                              f"-> {', '.join(out_names)})", stage="quantize")
    return ins, outs


def _tensor_map(schema: Any, name: str, index: int) -> Any:
    tm = schema.TensorMapT()
    tm.name, tm.tensorIndex = name, int(index)
    return tm


def _set_metadata(schema: Any, model: Any, data: bytes) -> None:
    import numpy as np

    buf = schema.BufferT()
    buf.data = np.frombuffer(data, dtype=np.uint8)
    model.metadata = [m for m in (model.metadata or []) if m.name.decode() != METADATA_NAME]
    model.buffers.append(buf)
    md = schema.MetadataT()
    md.name, md.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata.append(md)
