"""Writes adapter_vectors.json: the adapter's quantize/dequantize on hard cases (see README.md here).

Run: .venv/bin/python tests/golden/make_adapter_vectors.py
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tflite_int8.runtime.adapter import TensorInfo, dequantize, quantize


def cases() -> list[dict]:
    rng = np.random.default_rng(2024)
    specs = [
        ("int8 scale 0.5 zp 0, half steps", "int8", 0.5, 0),
        ("int8 demo input 2/255 zp -1", "int8", float(np.float32(2 / 255)), -1),
        ("int8 imagenet-like 0.0186 zp -14", "int8", 0.0186, -14),
        ("int8 scale 1/255 zp -128", "int8", float(np.float32(1 / 255)), -128),
        ("uint8 scale 1/255 zp 0", "uint8", float(np.float32(1 / 255)), 0),
        ("uint8 scale 0.1 zp 128", "uint8", 0.1, 128),
        ("int8 tiny scale 1e-4 zp 3", "int8", 1e-4, 3),
        ("int8 big scale 7.5 zp 127", "int8", 7.5, 127),
        ("int16 scale 1/32768 zp 0", "int16", float(np.float32(1 / 32768)), 0),
    ]
    out = []
    for name, dtype, scale, zp in specs:
        s = np.float32(scale)
        k = np.arange(-6, 7, dtype=np.float32)
        halves = ((k + np.float32(0.5)) * s).astype(np.float32)
        edge = np.array([0.0, -0.0, s / 2, -s / 2, 3 * s / 2, -3 * s / 2, 1e30, -1e30], np.float32)
        info = TensorInfo("g", 0, (1,), dtype, (float(s),), (zp,))
        lo, hi = info.float_range()
        ends = np.array([lo, hi, lo - s, hi + s, np.nextafter(np.float32(hi), np.float32(0))], np.float32)
        rand = rng.uniform(lo * 1.2, hi * 1.2, 24).astype(np.float32)
        x = np.concatenate([halves, edge, ends, rand]).astype(np.float32)
        info = TensorInfo("g", 0, (len(x),), dtype, (float(s),), (zp,))
        qx = quantize(x, info)
        out.append({
            "name": name, "dtype": dtype, "scale": float(s), "zero_point": zp,
            "input": [float(v) for v in x],
            "expected_xnnpack": qx.tolist(),
            "expected_reference": quantize(x, info, rounding="reference").tolist(),
            "dequantized_xnnpack": [float(v) for v in dequantize(qx, info)],
        })
    return out


if __name__ == "__main__":
    path = Path(__file__).with_name("adapter_vectors.json")
    doc = {"format": "tflite-int8 adapter golden vectors v1", "see": "tests/golden/README.md", "cases": cases()}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {path} ({len(doc['cases'])} cases)")
