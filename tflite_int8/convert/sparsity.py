"""Weight sparsity of the float model and of the int8 file, and what it does (not) do to the size.

TFLite stores weights dense: zeros from pruning stay zeros in int8 (0.0 quantizes to exactly 0
with symmetric weights) but take a byte each, so the file shrinks about 4x from int8, not from
zeros.  Zeros do make the file compress (zip, app-store delivery): that figure is reported too.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.interpreter import load_interpreter

WEIGHT_OPS_ONNX = ("Conv", "ConvTranspose", "Gemm", "MatMul")
WEIGHT_OPS_TFLITE = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D")


def _summary(layers: list[dict[str, Any]]) -> dict[str, Any]:
    zeros = sum(r["zeros"] for r in layers)
    total = sum(r["weights"] for r in layers)
    return {"zeros": zeros, "weights": total, "fraction": zeros / total if total else 0.0, "layers": layers}


def onnx_sparsity(model: Any) -> dict[str, Any]:
    """Zeros in the weight tensors of Conv/Gemm/MatMul nodes of an ONNX model."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    layers = []
    for node in model.graph.node:
        if node.op_type in WEIGHT_OPS_ONNX and len(node.input) > 1 and node.input[1] in inits:
            w = numpy_helper.to_array(inits[node.input[1]])
            layers.append({"layer": node.name or node.input[1], "zeros": int(np.count_nonzero(w == 0)),
                           "weights": int(w.size)})
    return _summary(layers)


def tflite_sparsity(path: str | Path) -> dict[str, Any]:
    """Weights equal to their zero point in the conv/FC weight tensors of a .tflite; plus its zlib size."""
    interp = load_interpreter(path, op_resolver="no-delegates", trusted=True)
    details = {t["index"]: t for t in interp.get_tensor_details()}
    layers = []
    for op in interp._get_ops_details():
        if op["op_name"] not in WEIGHT_OPS_TFLITE or len(op["inputs"]) < 2:
            continue
        t = details[int(op["inputs"][1])]
        try:
            w = interp.get_tensor(t["index"])
        except ValueError:  # not a constant buffer
            continue
        zps = np.asarray(t["quantization_parameters"]["zero_points"])
        zp = int(zps[0]) if zps.size == 1 else 0
        layers.append({"layer": t["name"], "zeros": int(np.count_nonzero(w == zp)), "weights": int(w.size)})
    out = _summary(layers)
    data = Path(path).read_bytes()
    out["file_bytes"] = len(data)
    out["zlib_bytes"] = len(zlib.compress(data, 6))
    return out


def sparsity_report(float_part: dict[str, Any], int8_part: dict[str, Any]) -> dict[str, Any]:
    note = ("TFLite stores weights dense: the int8 file is about 4x smaller than float32 because of int8, not "
            "because of zeros. ")
    if float_part["fraction"] > 0.01:
        note += (f"{float_part['fraction']:.1%} of the float weights are zero and {int8_part['fraction']:.1%} of "
                 f"the int8 weights; they shrink the file only when compressed: zlib gives "
                 f"{int8_part['zlib_bytes'] / 1e6:.2f} MB for the {int8_part['file_bytes'] / 1e6:.2f} MB file.")
    return {"float": float_part, "int8": int8_part,
            "zeros_kept": int8_part["zeros"] >= float_part["zeros"], "note": note.strip()}
