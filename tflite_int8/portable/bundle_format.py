"""The Android bundle and results formats: reading, comparing, writing.  Standard library and numpy only.

This module is what every "device" shares: the host's ``android compare``, the ARM64
runner (copied alone into an arm64 Debian root, where tflite_int8 is not installed) and,
line for line, the Java core in ``android_harness/core`` (see android_harness/README.md).

A bundle is a folder::

    manifest.json        format, versions, hashes, tensors (dtype, shape, scale, zero point), thresholds
    model.tflite
    inputs/000_0.raw     sample 000, input 0: already quantized, little-endian, model dtype, NHWC
    inputs/000_0.f32     the same input as float32 (little-endian) before quantization
    expected/000_0.raw   sample 000, output 0: the host interpreter's raw output
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

try:  # inside the package, or copied beside qmath.py into an ARM64 root
    from . import qmath
except ImportError:  # pragma: no cover - the ARM64 runner's layout
    import qmath  # type: ignore[no-redef]

BUNDLE_FORMAT = "tflite-int8 android bundle v1"
RESULTS_FORMAT = "tflite-int8 android results v1"
DTYPES = {"int8": "<i1", "uint8": "<u1", "int16": "<i2", "int32": "<i4", "float32": "<f4"}
DEFAULT_THRESHOLDS = {"max_step_diff": 1, "min_cosine": 0.999}


class BundleError(ValueError):
    """A bundle or results file is missing, malformed or does not match (raised here; tflite_int8 wraps it)."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: Path, what: str) -> Any:
    """A JSON document (a manifest, a device's results), or a BundleError naming the file."""
    if not path.is_file():
        raise BundleError(f"{what} file {path} does not exist")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from None


def read_manifest(bundle: str | Path, *, check_hashes: bool = True) -> dict[str, Any]:
    """The bundle's manifest, validated: every file present (and hashed right, unless told not to check)."""
    root = Path(bundle)
    path = root / "manifest.json"
    if not path.is_file():
        raise BundleError(f"{root} is not a bundle: no manifest.json (make one with `tflite-int8 android bundle`)")
    manifest = read_json(path, "manifest")
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: format {manifest.get('format')!r} is not {BUNDLE_FORMAT!r}")
    for key in ("model", "inputs", "outputs", "samples", "thresholds"):
        if key not in manifest:
            raise BundleError(f"{path}: '{key}' is missing")
    files = [(manifest["model"]["file"], manifest["model"]["sha256"])]
    for s in manifest["samples"]:
        files += [(e["file"], e["sha256"]) for e in s["inputs"] + s["expected"]]
        files += [(e["float_file"], e["float_sha256"]) for e in s["inputs"] if "float_file" in e]
    for rel, digest in files:
        f = root / rel
        if not f.is_file():
            raise BundleError(f"bundle {root}: {rel} is missing")
        if check_hashes and sha256(f) != digest:
            raise BundleError(f"bundle {root}: {rel} does not match its sha256 in manifest.json (changed or damaged)")
    return manifest


def read_tensor(path: Path, tensor: dict[str, Any], *, as_float: bool = False) -> np.ndarray:
    """A raw little-endian file as the tensor's dtype (or float32) and shape."""
    dtype = DTYPES["float32"] if as_float else DTYPES[tensor["dtype"]]
    data = np.frombuffer(Path(path).read_bytes(), dtype=dtype)
    shape = tuple(tensor["shape"])
    if data.size != int(np.prod(shape)):
        raise BundleError(f"{path}: {data.size} values, tensor '{tensor['name']}' has shape {list(shape)}")
    return data.reshape(shape)


def to_bytes(array: np.ndarray, dtype: str) -> bytes:
    return np.ascontiguousarray(array, dtype=DTYPES[dtype]).tobytes()


def dequantize(q: np.ndarray, tensor: dict[str, Any]) -> np.ndarray:
    """The adapter's DEQUANTIZE for a manifest tensor (float32 tensors pass through)."""
    if tensor["dtype"] == "float32" or not tensor["scale"]:
        return np.asarray(q, dtype=np.float32)
    return qmath.dequantize(q, tensor["scale"], tensor["zero_point"], axis=tensor.get("quantized_dimension", 0))


def quantize(x: np.ndarray, tensor: dict[str, Any]) -> np.ndarray:
    """The adapter's QUANTIZE (XNNPACK rounding) for a manifest tensor."""
    return qmath.quantize(x, tensor["scale"], tensor["zero_point"], tensor["dtype"],
                          axis=tensor.get("quantized_dimension", 0))


def compare_output(expected: np.ndarray, actual: np.ndarray, tensor: dict[str, Any]) -> dict[str, Any]:
    """Max difference in output steps (integer units), values that differ, and the cosine of dequantized values.

    The cosine sums float64 products in index order, as the Java core does.
    """
    if expected.shape != actual.shape:
        raise BundleError(f"output '{tensor['name']}': device gave shape {list(actual.shape)}, "
                          f"expected {list(expected.shape)}")
    if tensor["dtype"] == "float32":
        diff = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
        steps = float(diff.max()) if diff.size else 0.0
    else:
        steps = int(np.max(np.abs(expected.astype(np.int64) - actual.astype(np.int64)))) if expected.size else 0
        diff = expected != actual
    a = dequantize(expected, tensor).astype(np.float64).ravel()
    b = dequantize(actual, tensor).astype(np.float64).ravel()
    dot = math.fsum(a * b)
    na, nb = math.sqrt(math.fsum(a * a)), math.sqrt(math.fsum(b * b))
    if na == 0.0 and nb == 0.0:
        cos = 1.0
    elif na == 0.0 or nb == 0.0:
        cos = 0.0
    else:
        cos = dot / (na * nb)
    row = {"max_step_diff": steps, "differing_values": int(np.count_nonzero(diff)), "cosine": cos}
    if is_scores(tensor):
        row["same_top1"] = bool(int(np.argmax(a)) == int(np.argmax(b)))
    return row


def is_scores(tensor: dict[str, Any]) -> bool:
    """A vector of class scores ([1, C] or [C], C > 1): top-1 agreement is reported for it."""
    shape = list(tensor["shape"])
    return len(shape) >= 1 and shape[-1] > 1 and all(d == 1 for d in shape[:-1])


def results(bundle: str | Path, manifest: dict[str, Any], outputs: Sequence[Sequence[bytes]], *,
            device: dict[str, Any], timing: Sequence[dict[str, Any]] = (),
            input_check: dict[str, Any] | None = None) -> dict[str, Any]:
    """The results document: per sample and output, compared with the bundle's expected outputs.

    ``outputs[i][j]``: raw little-endian bytes of output j for sample i, as the device produced them.
    """
    root = Path(bundle)
    limits = {**DEFAULT_THRESHOLDS, **manifest.get("thresholds", {})}
    if len(outputs) != len(manifest["samples"]):
        raise BundleError(f"{len(outputs)} samples of device outputs, the bundle has {len(manifest['samples'])}")
    samples, per_output = [], [[] for _ in manifest["outputs"]]
    for sample, raws in zip(manifest["samples"], outputs):
        rows = []
        for j, (tensor, raw) in enumerate(zip(manifest["outputs"], raws)):
            actual = np.frombuffer(raw, dtype=DTYPES[tensor["dtype"]]).reshape(tensor["shape"])
            expected = read_tensor(root / sample["expected"][j]["file"], tensor)
            row = {"name": tensor["name"], **compare_output(expected, actual, tensor),
                   "data_b64": base64.b64encode(raw).decode("ascii")}
            per_output[j].append(row)
            rows.append(row)
        samples.append({"name": sample["name"], "outputs": rows})
    summary, failures = [], []
    for tensor, rows in zip(manifest["outputs"], per_output):
        s = {"name": tensor["name"], "max_step_diff": max(r["max_step_diff"] for r in rows),
             "differing_values": sum(r["differing_values"] for r in rows),
             "values": len(rows) * int(np.prod(tensor["shape"])),
             "min_cosine": min(r["cosine"] for r in rows),
             "mean_cosine": sum(r["cosine"] for r in rows) / len(rows)}
        if is_scores(tensor):
            s["top1_agreement"] = sum(r["same_top1"] for r in rows) / len(rows)
        if s["max_step_diff"] > limits["max_step_diff"]:
            failures.append(f"output '{tensor['name']}': max difference {s['max_step_diff']} steps > "
                            f"{limits['max_step_diff']}")
        if s["min_cosine"] < limits["min_cosine"]:
            failures.append(f"output '{tensor['name']}': min cosine {s['min_cosine']:.6f} < {limits['min_cosine']}")
        summary.append(s)
    if input_check and input_check.get("mismatches"):
        failures.append(f"the device quantized {input_check['mismatches']} of {input_check['checked']} input values "
                        f"differently from the host adapter")
    return {"format": RESULTS_FORMAT, "passed": bool(summary) and not failures, "failures": failures,
            "bundle": {"model_sha256": manifest["model"]["sha256"], "samples": len(manifest["samples"])},
            "device": dict(device), "thresholds": limits, "input_quantization": input_check or {},
            "outputs": summary, "timing": list(timing), "samples": samples}


def device_outputs(doc: dict[str, Any], manifest: dict[str, Any]) -> list[list[bytes]]:
    """The raw outputs a results document carries (base64), checked against the bundle's tensors."""
    if doc.get("format") != RESULTS_FORMAT:
        raise BundleError(f"not a results file: format {doc.get('format')!r} is not {RESULTS_FORMAT!r}")
    if doc.get("bundle", {}).get("model_sha256") != manifest["model"]["sha256"]:
        raise BundleError("these results were made with another model than the bundle's (model sha256 differs)")
    out = []
    for sample in doc.get("samples", []):
        raws = [base64.b64decode(o["data_b64"]) for o in sample["outputs"]]
        if len(raws) != len(manifest["outputs"]):
            raise BundleError(f"sample {sample.get('name')}: {len(raws)} outputs, the model has "
                              f"{len(manifest['outputs'])}")
        out.append(raws)
    return out
