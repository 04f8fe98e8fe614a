"""convert(): export -> translate -> quantize, checked at every stage, written atomically.

The output directory holds ``model.onnx``, ``model_int8.tflite`` (plus requested
variants) and ``conversion.json``.  It is built in a hidden sibling folder and
moved into place only when complete; an existing directory is replaced only
with ``force=True``.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .calibrate import default_data_dir, open_reader
from .errors import InputError, Int8Warning, UnsupportedOpError
from .metrics import compare, worst
from .preprocess import PreprocessSpec
from .quantize import Recipe

SCHEMA = 1
CHECK_SAMPLES = 8


@dataclass
class ConversionResult:
    out_dir: Path
    files: dict[str, Path]
    report: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def int8_path(self) -> Path:
        return self.files["full-integer"]


def convert(model: Any, out_dir: str | Path, *, spec: PreprocessSpec | None = None, data: Any = None,
            weights: str | Path | None = None, trust_checkpoint: bool = False, allow_partial_weights: bool = False,
            num_samples: int | None = None, views: int = 1, seed: int = 0, recipe: Recipe = Recipe(),
            force: bool = False, translate_thresholds: dict[str, float] | None = None,
            progress: Callable[[str, int | None], Any] | None = None) -> ConversionResult:
    """Convert ``model`` (nn.Module, 'package.module:factory' or .onnx path) to full-integer TFLite in ``out_dir``."""
    out_dir = Path(out_dir)
    _check_destination(out_dir, force)
    report: dict[str, Any] = {"schema": SCHEMA, "tool": _tool_version(), "created":
                              datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                              "versions": versions(), "stages": {}, "adjustments": []}
    with warnings.catch_warnings(record=True) as caught, _staging(out_dir, force) as stage_dir, \
            tempfile.TemporaryDirectory(prefix="tflite-int8-work-") as work:
        warnings.simplefilter("always", Int8Warning)
        module, source, spec = _resolve_model(model, spec, weights, trust_checkpoint, allow_partial_weights, report)
        report["preprocess"] = spec.to_dict()
        reader = open_reader(data if data is not None else default_data_dir(), spec, views=views,
                             num_samples=num_samples, seed=seed)
        report["calibration"] = {"source": str(data if data is not None else default_data_dir()),
                                 "samples": len(reader), "views": views, "seed": seed,
                                 "hash": reader.content_hash, "description": reader.description,
                                 "skipped_files": len(getattr(reader, "skipped", {}))}
        check_inputs = _first(reader, CHECK_SAMPLES)
        onnx_samples = _first(reader, 20)

        from .export import export, prepare_onnx

        t = time.perf_counter()
        onnx_path = stage_dir / "model.onnx"
        if module is not None:
            exported = export(module, onnx_path, spec.input_shape(), check_inputs=check_inputs)
        else:
            exported = prepare_onnx(source, onnx_path)
        _check_input_shape(exported.input_shapes, spec, source)
        if module is None:
            from .export import run_onnx

            run_onnx(onnx_path, check_inputs[:1])  # fails early, naming the file, if ORT cannot run it
        report["adjustments"] += exported.adjustments
        report["stages"]["export"] = {"seconds": round(time.perf_counter() - t, 3), "check": exported.check}
        report["onnx"] = {"file": "model.onnx", "inputs": exported.input_names, "outputs": exported.output_names,
                          "input_shapes": exported.input_shapes, "opset": _opset(onnx_path)}

        from .translate import translate

        t = time.perf_counter()
        tr = translate(onnx_path, work, spec, samples=onnx_samples, check_inputs=check_inputs,
                       output_names=exported.output_names, thresholds=translate_thresholds)
        report["stages"]["translate"] = {"seconds": round(time.perf_counter() - t, 3), "check": tr.check,
                                         "float32_tflite_bytes": tr.float32_tflite.stat().st_size}

        from .quantize import quantize

        t = time.perf_counter()
        q = quantize(tr.saved_model, stage_dir, reader, spec, recipe, float32_tflite=tr.float32_tflite,
                     progress=progress)
        report["stages"]["quantize"] = {"seconds": round(time.perf_counter() - t, 3),
                                        "calibration_samples": q.calibration_samples}
        report["recipe"] = {"io_dtype": recipe.io_dtype, "per_channel": recipe.per_channel,
                            "variants": list(recipe.variants)}
        t = time.perf_counter()
        report["files"], report["tensors"] = _describe_files(q.files, exported.output_names)
        report["stages"]["int8_check"] = _int8_check(q.files["full-integer"], tr.float32_tflite, spec, check_inputs,
                                                     exported.output_names)
        report["stages"]["int8_check"]["seconds"] = round(time.perf_counter() - t, 3)
        report["warnings"] = [str(w.message) for w in caught if issubclass(w.category, Int8Warning)]
        (stage_dir / "conversion.json").write_text(json.dumps(_finite(report), indent=2, default=_json_default) + "\n")
    files = {k: out_dir / v.name for k, v in q.files.items()}
    for w in caught:  # hand our warnings on to the caller (the CLI shows them)
        if issubclass(w.category, Int8Warning):
            warnings.warn(w.message, Int8Warning, stacklevel=2)
    return ConversionResult(out_dir, files, report, report["warnings"])


def _check_destination(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not force:
        raise InputError(f"output directory {out_dir} already exists; choose another one or pass --force to replace it")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output path {out_dir} exists and is not a directory")
    parent = out_dir.resolve().parent
    if not parent.exists():
        raise InputError(f"the folder {parent} for the output does not exist")
    if not os.access(parent, os.W_OK):
        raise InputError(f"cannot write into {parent}: permission denied")


@contextmanager
def _staging(out_dir: Path, force: bool) -> Iterator[Path]:
    """A hidden sibling folder, moved to ``out_dir`` only if the block completes; removed otherwise."""
    parent = out_dir.resolve().parent
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = None
    if out_dir.exists() and force:
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=parent))
        os.replace(out_dir, old / "previous")
    try:
        os.replace(stage, out_dir)
    except OSError:
        if old is not None:
            os.replace(old / "previous", out_dir)
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _resolve_model(model: Any, spec: PreprocessSpec | None, weights: Any, trust: bool, partial: bool,
                   report: dict) -> tuple[Any, Any, PreprocessSpec]:
    from .export import load_factory

    module, source = None, model
    if isinstance(model, (str, Path)) and str(model).lower().endswith(".onnx"):
        if weights is not None:
            raise InputError("--weights applies to PyTorch models, not to an .onnx file")
        from .export import load_onnx

        load_onnx(model)  # exists, non-empty, valid: or an InputError naming the file
        report["source"] = {"kind": "onnx", "model": str(model), "sha256": _sha256(model)}
    elif isinstance(model, (str, Path)):
        import importlib

        module = load_factory(str(model))
        factory = None
        if ":" in str(model):
            mod_name, _, attr = str(model).partition(":")
            factory = getattr(importlib.import_module(mod_name), attr.split(".")[0], None)
        if spec is None and factory is not None and isinstance(getattr(factory, "preprocess_spec", None),
                                                                PreprocessSpec):
            spec = factory.preprocess_spec
            report["adjustments"].append(f"preprocessing taken from {model}.preprocess_spec")
        report["source"] = {"kind": "pytorch", "model": str(model)}
    else:
        import torch

        if not isinstance(model, torch.nn.Module):
            raise InputError(f"model must be an nn.Module, 'package.module:factory' or an .onnx path, "
                             f"not {type(model).__name__}")
        module = model
        report["source"] = {"kind": "pytorch", "model": type(model).__name__}
    if module is not None and weights is not None:
        from .checkpoint import load_weights

        report["source"]["weights"] = load_weights(module, weights, trust_pickle=trust, allow_partial=partial)
        report["source"]["weights"]["sha256"] = _sha256(weights)
    if spec is None:
        spec = PreprocessSpec()
        report["adjustments"].append("no preprocessing given: used the ImageNet default (224x224 center crop, "
                                     "ImageNet mean/std, RGB, NCHW)")
    return module, source, spec


def _check_input_shape(shapes: list[list[int]], spec: PreprocessSpec, source: Any) -> None:
    if len(shapes) != 1:
        raise InputError(f"{source}: models with {len(shapes)} inputs need a .npz of inputs per name; image "
                         f"calibration feeds exactly one input")
    want = list(spec.input_shape())
    if shapes[0] != want:
        raise InputError(f"{source}: the model input is {shapes[0]} but the preprocessing spec gives {want} "
                         f"({spec.layout}); set --size/--layout/--channels to match the model")


def _first(reader: Any, n: int) -> list[np.ndarray]:
    out = []
    for sample in reader:
        out.append(sample.x)
        if len(out) >= n:
            break
    return out


def _describe_files(files: dict[str, Path], onnx_outputs: list[str]) -> tuple[dict, dict]:
    from .inspect import describe

    described, tensors = {}, {}
    for variant, path in files.items():
        info = describe(path, trusted=True)
        described[variant] = {"file": path.name, "bytes": info["size_bytes"], "sha256": _sha256(path),
                              "verdict": info["verdict"], "op_histogram": info["op_histogram"],
                              "float_ops": info["float_ops"]}
        if variant == "full-integer":
            if info["verdict"] != "full-integer":
                raise UnsupportedOpError(f"{path.name} is not full-integer ({info['verdict']}): float ops "
                                         f"{info['float_ops']}", ops=list(info["float_ops"]))
            tensors = {"inputs": info["inputs"], "outputs": info["outputs"]}
            for o, name in zip(tensors["outputs"], onnx_outputs):
                o["onnx_name"] = name
    return described, tensors


def _int8_check(int8_path: Path, float_path: Path, spec: PreprocessSpec, inputs: list[np.ndarray],
                names: list[str]) -> dict[str, Any]:
    """The quantization step on the check samples: int8 (through the adapter) vs float32 TFLite."""
    from .adapter import Runner

    ref_runner = Runner(float_path, spec, trusted=True, output_names=names)
    q_runner = Runner(int8_path, spec, trusted=True, output_names=names, clip_warn=1.0)
    per: dict[str, list] = {n: [] for n in names}
    agree: dict[str, list] = {n: [] for n in names}
    for x in inputs:
        ref, got = ref_runner(x), q_runner(x)
        for n in names:
            per[n].append(compare(ref[n], got[n]))
            if ref[n].ndim == 2 and ref[n].shape[-1] > 1:
                agree[n].append(bool(np.argmax(ref[n][0]) == np.argmax(got[n][0])))
    outputs = {n: worst(m) for n, m in per.items()}
    for n in names:
        if agree[n]:
            outputs[n]["top1_agreement"] = float(np.mean(agree[n]))
    return {"reference": "tflite float32", "candidate": "tflite int8 (via adapter)", "outputs": outputs}


def load_conversion(out_dir: str | Path) -> tuple[dict[str, Any], PreprocessSpec]:
    """Read a conversion's ``conversion.json`` and its preprocessing spec."""
    path = Path(out_dir) / "conversion.json"
    if not path.is_file():
        raise InputError(f"{out_dir} is not a conversion output (no conversion.json)")
    try:
        report = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    return report, PreprocessSpec.from_dict(report.get("preprocess", {}), source=str(path))


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "onnx", "onnxruntime", "onnxslim", "onnx2tf", "tensorflow-cpu", "tf-keras",
                "ai-edge-litert", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _tool_version() -> str:
    from . import __version__

    return __version__


def _opset(path: Path) -> int:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _sha256(path: Any) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _finite(obj: Any) -> Any:
    """JSON has no Infinity/NaN: store them as strings."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in conversion.json")
