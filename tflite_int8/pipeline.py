"""convert(): export -> translate -> quantize, checked at every stage, written atomically.

The output directory holds ``model.onnx``, ``model_int8.tflite`` (plus requested
variants) and ``conversion.json``.  It is built in a hidden sibling folder and
moved into place only when complete; an existing directory is replaced only
with ``force=True``.
"""
from __future__ import annotations

import datetime
import json
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._files import check_destination, dump_json, staging
from .calibrate import default_data_dir, open_reader
from .images import file_sha256
from .errors import AlreadyQuantizedError, InputError, Int8Warning, UnsupportedOpError
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
            task: str = "auto", head_fix: bool = True, decode: str = "model",
            force: bool = False, translate_thresholds: dict[str, float] | None = None,
            progress: Callable[[str, int | None], Any] | None = None) -> ConversionResult:
    """Convert ``model`` (nn.Module, 'package.module:factory' or .onnx path) to full-integer TFLite in ``out_dir``.

    ``task="detect"``: a YOLOv5/YOLOv8-layout detector; its head is split into boxes and scores (``head_fix``)
    so they do not share one int8 scale; ``decode="host"`` moves the grid/anchor decode out of the model
    (``decode.onnx``).  Every conversion lints its outputs for such mixed ranges.
    """
    if task not in ("auto", "classify", "raw", "detect"):
        raise InputError(f"unknown task {task!r}; choose auto, classify, raw or detect")
    out_dir = Path(out_dir)
    check_destination(out_dir, force)
    report: dict[str, Any] = {"schema": SCHEMA, "tool": _tool_version(), "created":
                              datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                              "versions": versions(), "stages": {}, "adjustments": []}
    with warnings.catch_warnings(record=True) as caught, staging(out_dir, force) as stage_dir, \
            tempfile.TemporaryDirectory(prefix="tflite-int8-work-") as work:
        warnings.simplefilter("always", Int8Warning)
        module, source, spec = _resolve_model(model, spec, weights, trust_checkpoint, allow_partial_weights, report)
        report["preprocess"] = spec.to_dict()
        reader = open_reader(data if data is not None else default_data_dir(), spec, views=views,
                             num_samples=num_samples, seed=seed)
        calib_source = data if data is not None else default_data_dir()
        report["calibration"] = {"source": ([str(Path(p).resolve()) for p in calib_source]
                                            if isinstance(calib_source, (list, tuple))
                                            else str(Path(calib_source).resolve())),
                                 "samples": len(reader), "num_samples": num_samples, "views": views, "seed": seed,
                                 "hash": reader.content_hash, "description": reader.description,
                                 "skipped_files": len(getattr(reader, "skipped", {}))}
        check_inputs = _first(reader, CHECK_SAMPLES)
        if max(float(np.std(spec.to_nhwc(x), axis=(0, 1, 2)).max()) for x in check_inputs) < 0.01:  # per channel
            warnings.warn(f"the calibration samples look constant (blank or single-colour images, e.g. "
                          f"{reader.description}): int8 ranges fitted to them will not fit real inputs; calibrate on "
                          f"real, representative photos", Int8Warning, stacklevel=2)
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
        import onnx

        from .sparsity import onnx_sparsity

        onnx_model = onnx.load(str(onnx_path))
        float_sparsity = onnx_sparsity(onnx_model)
        report["stages"]["export"] = {"seconds": round(time.perf_counter() - t, 3),
                                      "simplify_seconds": exported.simplify_seconds, "check": exported.check}
        output_names = _head(onnx_path, onnx_model, exported.output_names, onnx_samples, task, head_fix, decode,
                             spec, report)
        report["onnx"] = {"file": "model.onnx", "inputs": exported.input_names, "outputs": output_names,
                          "input_shapes": exported.input_shapes, "opset": _opset(onnx_model)}

        from .translate import translate

        t = time.perf_counter()
        tr = translate(onnx_path, work, spec, samples=onnx_samples, check_inputs=check_inputs,
                       output_names=output_names, thresholds=translate_thresholds)
        report["stages"]["translate"] = {"seconds": round(time.perf_counter() - t, 3), "check": tr.check,
                                         "float32_tflite_bytes": tr.float32_tflite.stat().st_size}

        from .quantize import quantize

        t = time.perf_counter()
        q = quantize(tr.saved_model, stage_dir, reader, spec, recipe, float32_tflite=tr.float32_tflite,
                     progress=progress)
        report["stages"]["quantize"] = {"seconds": round(time.perf_counter() - t, 3),
                                        "calibration_samples": q.calibration_samples}
        report["recipe"] = {"io_dtype": recipe.io_dtype, "per_channel": recipe.per_channel,
                            "variants": list(recipe.variants), "ranges": recipe.ranges}
        t = time.perf_counter()
        report["files"], report["tensors"] = _describe_files(q.files, output_names)
        from .sparsity import sparsity_report, tflite_sparsity

        report["sparsity"] = sparsity_report(float_sparsity, tflite_sparsity(q.files["full-integer"]))
        report["stages"]["int8_check"] = _int8_check(q.files["full-integer"], tr.float32_tflite, spec, check_inputs,
                                                     output_names)
        report["stages"]["int8_check"]["seconds"] = round(time.perf_counter() - t, 3)
        report["warnings"] = [str(w.message) for w in caught if issubclass(w.category, Int8Warning)]
        (stage_dir / "conversion.json").write_text(dump_json(report))
    files = {k: out_dir / v.name for k, v in q.files.items()}
    for w in caught:  # hand our warnings on to the caller (the CLI shows them)
        if issubclass(w.category, Int8Warning):
            warnings.warn(w.message, Int8Warning, stacklevel=2)
    return ConversionResult(out_dir, files, report, report["warnings"])


def _head(onnx_path: Path, model: Any, names: list[str], samples: list[np.ndarray], task: str, fix: bool,
          decode: str, spec: PreprocessSpec, report: dict[str, Any]) -> list[str]:
    """Lint the outputs for mixed ranges; split a detector's head (heads.apply). Says what it did."""
    from .export import run_onnx
    from .heads import apply

    t = time.perf_counter()
    ranks = [len(o.type.tensor_type.shape.dim) for o in model.graph.output]
    if task != "detect" and all(r not in (0, 3) for r in ranks):  # 0: rank unknown, so measure it
        report["head"] = {"lint": []}  # the lint looks at [1, N, C] / [1, C, N] outputs only: nothing to run
        return names
    runs = run_onnx(onnx_path, samples[:16])
    outputs = {n: np.concatenate([r[i] for r in runs]) for i, n in enumerate(names)}
    new_names, section = apply(onnx_path, names, outputs, task=task, fix=fix, input_size=spec.size, decode=decode)
    section["seconds"] = round(time.perf_counter() - t, 3)
    report["head"] = section
    if section.get("fix"):
        report["adjustments"].append(f"head split (--task detect): {section['fix']}")
    elif task == "detect":
        report["adjustments"].append("head left as exported (--no-head-fix): boxes and scores share one int8 scale")
    for finding in section["lint"]:
        if not section.get("fix"):
            warnings.warn(finding["message"], Int8Warning, stacklevel=3)
    return new_names


def _resolve_model(model: Any, spec: PreprocessSpec | None, weights: Any, trust: bool, partial: bool,
                   report: dict) -> tuple[Any, Any, PreprocessSpec]:
    from .export import load_factory

    module, source = None, model
    if isinstance(model, (str, Path)) and str(model).lower().endswith(".tflite"):
        raise AlreadyQuantizedError(f"{model} is already a TFLite model; convert takes the float PyTorch model or its "
                                    f"ONNX export (quantizing a converted file again loses accuracy twice). To check "
                                    f"an existing .tflite use `tflite-int8 inspect` or `verify --tflite`")
    if isinstance(model, (str, Path)) and str(model).lower().endswith(".onnx"):
        if weights is not None:
            raise InputError("--weights applies to PyTorch models, not to an .onnx file")
        from .export import load_onnx

        from .guards import check_onnx_float

        check_onnx_float(load_onnx(model), str(model))  # valid (else InputError) and not already quantized
        report["source"] = {"kind": "onnx", "model": str(model), "sha256": file_sha256(model)}
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
        report["source"]["weights"]["sha256"] = file_sha256(weights)
    if module is not None:
        from .guards import check_module_float, fold_pruning

        check_module_float(module, str(report["source"]["model"]))
        module, folded = fold_pruning(module)
        report["adjustments"] += folded
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
        described[variant] = {"file": path.name, "bytes": info["size_bytes"], "sha256": file_sha256(path),
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


def _opset(model: Any) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
