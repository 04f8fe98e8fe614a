"""convert(): export -> translate -> quantize, checked at every stage, written atomically.

The output directory holds ``model.onnx``, ``model_int8.tflite`` (plus requested
variants) and ``conversion.json``.  The model's inputs are resolved first (:mod:`.inputs`: names, static
shapes, image or tensor); every .tflite is finalized with the user's names and the ``tflite_int8`` metadata
(:mod:`.finalize`).  It is built in a hidden sibling folder and
moved into place only when complete; an existing directory is replaced only
with ``force=True``.
"""
from __future__ import annotations

import importlib
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..config.inputs import InputTable
from ..config.preprocess import PreprocessSpec
from ..config.recipe import FULL_INTEGER, Recipe
from ..config.tasks import check_task
from ..config.thresholds import check_outputs, check_qat, resolve_check_thresholds
from ..data.files import check_destination, dump_json, staging
from ..data.images import file_sha256
from ..data.readers import default_data_dir, open_reader
from ..errors import AlreadyQuantizedError, ConversionError, InputError, Int8Warning, UnsupportedOpError
from ..progress import Progress
from ..runtime import child
from ..runtime.adapter import Runner
from ..runtime.checkpoint import load_weights
from ..runtime.describe import describe
from ..runtime.metrics import combine, compare
from ..runtime.reference import is_module, load_factory, load_onnx, run_onnx
from .export import export, prepare_onnx
from . import qat
from .qat_check import simulation_check
from .finalize import finalize
from .guards import check_module, check_onnx, fold_pruning, freeze_fake_quant
from .heads import apply, carry
from .int8_lint import check_file
from .quantize import quantize
from .record import FILE, load_conversion, new_record, stage
from .rewrites import adjustment_text, rewrite
from .sparsity import onnx_sparsity, sparsity_report, tflite_sparsity
from .table import exported_layouts, model_inputs, passthrough_notes
from .translate import translate

__all__ = ["ConversionResult", "convert", "load_conversion"]
CHECK_SAMPLES = 8


@dataclass
class ConversionResult:
    """The files written and conversion.json; ``passed`` is False when the conversion's own int8 check (int8 vs
    float32 TFLite on the check samples) failed its thresholds: the files are kept for inspection, ``failures``
    says what failed (the CLI exits 1)."""

    out_dir: Path
    files: dict[str, Path]
    report: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    passed: bool = True
    failures: list[str] = field(default_factory=list)

    @property
    def int8_path(self) -> Path:
        return self.files["full-integer"]


def convert(model: Any, out_dir: str | Path, *, spec: PreprocessSpec | None = None, data: Any = None,
            weights: str | Path | None = None, trust_checkpoint: bool = False, allow_partial_weights: bool = False,
            num_samples: int | None = None, views: int = 1, seed: int = 0, recipe: Recipe = Recipe(),
            task: str = "auto", head_fix: bool = True, decode: str = "model", head_from: str | Path | None = None,
            input_shapes: Mapping[str, Sequence[int]] | None = None,
            input_layouts: Mapping[str, str] | None = None, input_values: Mapping[str, Any] | None = None,
            force: bool = False, translate_thresholds: dict[str, float] | None = None,
            check_thresholds: Mapping[str, float | None] | None = None,
            progress: Progress | None = None) -> ConversionResult:
    """Convert ``model`` (nn.Module, 'package.module:factory' or .onnx path) to full-integer TFLite in ``out_dir``.

    Inputs of any number and rank: ``data`` is a folder of photos (image inputs, through ``spec``), a ``.npy``
    (one input), a ``.npz`` (one array per input name) or {input name: source}; ``input_shapes`` ({name: shape})
    fixes dynamic dimensions (and gives a PyTorch input's shape); an array for an input of shape S is (N, *S), or
    (N, *S[1:]) when S[0] is 1.  ``input_layouts`` ({name: 'NHWC' | 'NCHW'}) declares a 4-D input's source layout
    when the graph does not show it (:mod:`.layouts`); ``input_values`` ({name: value}) fixes an ONNX input to a
    constant, folded into the model (:mod:`.constants`).  ``spec`` (``size`` None: the model's own) is
    the image inputs' preprocessing; tensor inputs take their arrays as they are.

    ``task="detect"``: a YOLOv5/YOLOv8-layout detector; its head is split into boxes and scores (``head_fix``)
    so they do not share one int8 scale; ``decode="host"`` moves the grid/anchor decode out of the model
    (``decode.onnx``).  ``head_from``: a conversion folder whose head-split ``model.onnx`` ``model`` is (weights
    changed, graph not): its head description is carried over instead of a second split.  Every conversion lints
    its outputs for such mixed ranges.

    Before translation the graph rewrites (:mod:`.rewrites`) make ceil-mode pools, erf GELUs, recurrent layers and
    names TensorFlow rejects int8-ready, each reported in ``adjustments`` with its measured float change; every
    written file is loaded with XNNPACK and its quantized tensors linted (:mod:`.int8_lint`).
    ``check_thresholds``: the int8 check's limits (:data:`~tflite_int8.config.thresholds.CHECK_DEFAULTS`); a
    failed check gives ``passed=False``, not an exception, and the folder is kept.
    """
    check_task(task)
    if head_from is not None and (task != "detect" or not head_fix):
        raise InputError("head_from carries a split detector head: it needs task='detect' and head_fix=True")
    out_dir = Path(out_dir)
    check_destination(out_dir, force)
    report = new_record()
    report["task"] = task
    with warnings.catch_warnings(record=True) as caught, staging(out_dir, force) as stage_dir, \
            tempfile.TemporaryDirectory(prefix="tflite-int8-work-") as work:
        warnings.simplefilter("always", Int8Warning)
        module, source, spec = _resolve_model(model, spec, weights, trust_checkpoint, allow_partial_weights, report)
        is_qat = report["quantization_source"] == "qat"
        if is_qat:
            _check_qat_request(recipe, task, head_fix, str(report["source"]["model"]))
        calib_source = data if data is not None else default_data_dir()
        table = model_inputs(module, source, spec, input_shapes, calib_source, report, input_layouts, input_values)
        reader = open_reader(calib_source, table, views=views, num_samples=num_samples, seed=seed)
        report["calibration"] = _calibration_section(calib_source, reader, num_samples, views, seed)
        check_names, check_inputs = _spread(reader, CHECK_SAMPLES, table)
        _warn_if_constant(check_inputs, table, reader)
        onnx_samples = _first(reader, 20, table)
        onnx_path = stage_dir / "model.onnx"
        with stage(report, "export") as st:
            exported = _export(module, source, onnx_path, table, check_inputs, input_values)
            report["adjustments"] += exported.adjustments
            import onnx

            onnx_model = onnx.load(str(onnx_path))
            if module is not None:  # a PyTorch model's layouts, read from its export
                table = exported_layouts(onnx_model, table, input_layouts, report)
            float_sparsity = onnx_sparsity(onnx_model)
            report["adjustments"] += passthrough_notes(onnx_model)
            st.update(simplify_seconds=exported.simplify_seconds, check=exported.check)
        output_names = _head(onnx_path, onnx_model, exported.output_names, onnx_samples, task, head_fix, decode,
                             table, report, head_from)
        with stage(report, "rewrite") as st:
            applied, renamed = rewrite(onnx_path, check_inputs)
            st["rewrites"] = applied
            report["rewrites"] = {"applied": [r["rewrite"] for r in applied if r["applied"]], "renamed": renamed}
            report["adjustments"] += [adjustment_text(r) for r in applied]
        report["onnx"] = {"file": onnx_path.name, "inputs": exported.input_names, "outputs": output_names,
                          "input_shapes": exported.input_shapes, "opset": _opset(onnx_model)}
        translated, plan = onnx_path, None
        if is_qat:
            translated, plan = qat.prepare(onnx_path, stage_dir, Path(work), table, check_inputs[:2],
                                           str(report["source"]["model"]))
        with child.Worker(log=Path(work) / "onnx2tf.log") as worker:  # one child: onnx2tf, converter, loads
            with stage(report, "translate") as st:
                tr = translate(translated, work, table, samples=onnx_samples, check_inputs=check_inputs,
                               output_names=output_names, thresholds=translate_thresholds, worker=worker,
                               check_names=check_names)
                st.update(check=tr.check, float32_tflite_bytes=tr.float32_tflite.stat().st_size)
            with stage(report, "quantize") as st:
                q = quantize(tr.saved_model, stage_dir, reader, table, recipe, float32_tflite=tr.float32_tflite,
                             progress=progress, worker=worker, qat=plan)
                plan = q.qat  # filled by the converter in the child process
                st["calibration_samples"] = q.calibration_samples
                _finalize(q.files, table, onnx_path, output_names)
            report["recipe"] = recipe.to_dict()
            if plan is not None:
                report["recipe"]["ranges"] = None  # none calibrated: the model's own learned ranges
                report["qat"] = qat.section(plan)
                report["adjustments"] += plan.adjustments
            with stage(report, "int8_lint") as st:
                node_map = {k: renamed.get(v, v) for k, v in tr.node_map.items()}
                st["files"] = {name: check_file(path, node_map=node_map, worker=worker)
                               for name, path in q.files.items() if name != "float32"}
        with stage(report, "int8_check") as st:
            report["files"], report["tensors"] = _describe_files(q.files, output_names)
            report["sparsity"] = sparsity_report(float_sparsity, tflite_sparsity(q.files[FULL_INTEGER]))
            limits = resolve_check_thresholds(check_thresholds)
            st.update(_int8_check(q.files[FULL_INTEGER], tr.float32_tflite, table, check_inputs, output_names,
                                  check_names, limits))
            if plan is not None:  # the model's own simulation is its reference (config.thresholds.check_qat)
                st["qat_simulation"] = simulation_check(q.files[FULL_INTEGER], onnx_path, stage_dir / qat.FLOAT_ONNX,
                                                        table, check_inputs, output_names,
                                                        report["qat"]["activations"])
                st["judged_against"] = "qat_simulation"
                st["failures"] = check_qat(st["qat_simulation"], limits)
            report["passed"], report["failures"] = not st["failures"], st["failures"]
            for failure in st["failures"]:
                warnings.warn(f"the conversion's own int8 check failed: {failure}", Int8Warning, stacklevel=2)
        report["warnings"] = [str(w.message) for w in caught if issubclass(w.category, Int8Warning)]
        (stage_dir / FILE).write_text(dump_json(report))
    files = {k: out_dir / v.name for k, v in q.files.items()}
    for w in caught:  # hand our warnings on to the caller (the CLI shows them)
        if issubclass(w.category, Int8Warning):
            warnings.warn(w.message, Int8Warning, stacklevel=2)
    return ConversionResult(out_dir, files, report, report["warnings"], passed=report["passed"],
                            failures=report["failures"])


def _calibration_section(source: Any, reader: Any, num_samples: int | None, views: int, seed: int) -> dict:
    return {"source": _resolved(source), "samples": len(reader), "num_samples": num_samples, "views": views,
            "seed": seed,
            "hash": reader.content_hash, "description": reader.description,
            "skipped_files": len(getattr(reader, "skipped", {}))}


def _resolved(source: Any) -> Any:
    """The data source with absolute paths (a path, a list of paths, or {input name: either})."""
    if isinstance(source, Mapping):
        return {str(k): _resolved(v) for k, v in source.items()}
    if isinstance(source, (list, tuple)):
        return [str(Path(p).resolve()) for p in source]
    return str(Path(source).resolve())


def _warn_if_constant(feeds: list[dict[str, np.ndarray]], table: InputTable, reader: Any) -> None:
    for s in table.images:  # per channel, over the first samples
        if max(float(np.std(s.to_tflite(f[s.name]), axis=(0, 1, 2)).max()) for f in feeds) < 0.01:
            warnings.warn(f"the calibration samples look constant (blank or single-colour images, e.g. "
                          f"{reader.description}): int8 ranges fitted to them will not fit real inputs; calibrate on "
                          f"real, representative photos", Int8Warning, stacklevel=3)


def _export(module: Any, source: Any, onnx_path: Path, table: InputTable, feeds: list[dict[str, np.ndarray]],
            values: Mapping[str, Any] | None) -> Any:
    if module is not None:
        exported = export(module, onnx_path, table, check_inputs=feeds)
    else:
        exported = prepare_onnx(source, onnx_path, shapes={s.name: s.shape for s in table}, values=values,
                                check_inputs=feeds)
    _check_input_shape(exported, table, source)
    if module is None:
        run_onnx(onnx_path, feeds[:1], name=str(source))  # fails early, naming the file, if ORT cannot run it
    return exported


def _finalize(files: dict[str, Path], table: InputTable, onnx_path: Path, names: list[str]) -> None:
    """The user's names, the model's order and the metadata in every file written (:mod:`.finalize`)."""
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    shapes = {o.name: [d.dim_value if d.HasField("dim_value") else None for d in o.type.tensor_type.shape.dim]
              for o in graph.output}
    outputs = [(n, shapes.get(n)) for n in names]
    for path in files.values():
        finalize(path, table, outputs)


def _head(onnx_path: Path, model: Any, names: list[str], samples: list[dict[str, np.ndarray]], task: str, fix: bool,
          decode: str, table: InputTable, report: dict[str, Any], head_from: Any = None) -> list[str]:
    """Lint the outputs for mixed ranges; split a detector's head (heads.apply). Says what it did."""
    t = time.perf_counter()
    ranks = [len(o.type.tensor_type.shape.dim) for o in model.graph.output]
    if task != "detect" and all(r not in (0, 3) for r in ranks):  # 0: rank unknown, so measure it
        report["head"] = {"lint": []}  # the lint looks at [1, N, C] / [1, C, N] outputs only: nothing to run
        return names
    runs = run_onnx(onnx_path, samples[:16])
    outputs = {n: np.concatenate([r[i] for r in runs]) for i, n in enumerate(names)}
    first = table.first_preprocess
    size = first.sized if first is not None else tuple(table.specs[0].shape[-2:])
    if head_from is not None:
        new_names, section = names, carry(onnx_path, names, outputs, head_from)
    else:
        new_names, section = apply(onnx_path, names, outputs, task=task, fix=fix, input_size=size, decode=decode)
    section["seconds"] = round(time.perf_counter() - t, 3)
    report["head"] = section
    if section.get("carried_from"):
        report["adjustments"].append(f"head not split again: the ONNX file is the head-split model of the "
                                     f"conversion in {section['carried_from']} (head_from), whose head description "
                                     f"is carried over: {section['fix']}")
    elif section.get("fix"):
        report["adjustments"].append(f"head split (--task detect): {section['fix']}")
    elif task == "detect":
        report["adjustments"].append("head left as exported (--no-head-fix): boxes and scores share one int8 scale")
    for finding in section["lint"]:
        if not section.get("fix"):
            warnings.warn(finding["message"], Int8Warning, stacklevel=3)
    return new_names


def _resolve_model(model: Any, spec: PreprocessSpec | None, weights: Any, trust: bool, partial: bool,
                   report: dict) -> tuple[Any, Any, PreprocessSpec]:
    module, source = None, model
    if isinstance(model, (str, Path)) and str(model).lower().endswith(".tflite"):
        raise AlreadyQuantizedError(f"{model} is already a TFLite model; convert takes the float PyTorch model or its "
                                    f"ONNX export (quantizing a converted file again loses accuracy twice). To check "
                                    f"an existing .tflite use `tflite-int8 inspect` or `verify --tflite`")
    if isinstance(model, (str, Path)) and str(model).lower().endswith(".onnx"):
        if weights is not None:
            raise InputError("--weights applies to PyTorch models, not to an .onnx file")
        report["quantization_source"] = _source_kind(check_onnx(load_onnx(model), str(model)))  # valid, not integer
        report["source"] = {"kind": "onnx", "model": str(model), "sha256": file_sha256(model)}
    elif isinstance(model, (str, Path)):
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
        if not is_module(model):
            raise InputError(f"model must be an nn.Module, 'package.module:factory' or an .onnx path, "
                             f"not {type(model).__name__}")
        module = model
        report["source"] = {"kind": "pytorch", "model": type(model).__name__}
    if module is not None and weights is not None:
        report["source"]["weights"] = load_weights(module, weights, trust_pickle=trust, allow_partial=partial)
        report["source"]["weights"]["sha256"] = file_sha256(weights)
    if module is not None:
        report["quantization_source"] = _source_kind(check_module(module, str(report["source"]["model"])))
        if report["quantization_source"] == "qat":
            module, frozen = freeze_fake_quant(module)
            report["adjustments"] += frozen
        module, folded = fold_pruning(module)
        report["adjustments"] += folded
    return module, source, spec


def _source_kind(kind: str) -> str:
    """conversion.json's ``quantization_source``: ``qat`` (the model's own scales) or ``calibration``."""
    return "qat" if kind == "qat" else "calibration"


def _check_qat_request(recipe: Recipe, task: str, head_fix: bool, source: str) -> None:
    qat.check_recipe(recipe, source)
    if task == "detect" and head_fix:
        raise InputError(f"{source} is quantization-aware: the detector head split would rewrite its fake-quant "
                         f"graph; convert it with --no-head-fix (its own scales already keep boxes and scores apart "
                         f"where it was trained to)")


def _check_input_shape(exported: Any, table: InputTable, source: Any) -> None:
    got = dict(zip(exported.input_names, exported.input_shapes))
    want = {s.name: list(s.shape) for s in table}
    if got != want:
        raise ConversionError(f"{source}: the exported inputs are {got}, expected {want}", stage="export")


def _spread(reader: Any, n: int, table: InputTable) -> tuple[list[str], list[dict[str, np.ndarray]]]:
    """``n`` samples spread evenly over the data (the first ``n`` may all be views of one photo): their names
    and each as {input name: array} (source layout)."""
    picked = reader.subset(np.unique(np.linspace(0, len(reader) - 1, min(n, len(reader))).round().astype(int)))
    samples = list(picked)
    return [s.name for s in samples], [dict(zip(table.names, s.arrays(table.names))) for s in samples]


def _first(reader: Any, n: int, table: InputTable) -> list[dict[str, np.ndarray]]:
    """The first ``n`` samples, each as {input name: array} (source layout)."""
    out = []
    for sample in reader:
        out.append(dict(zip(table.names, sample.arrays(table.names))))
        if len(out) >= n:
            break
    return out


def _describe_files(files: dict[str, Path], onnx_outputs: list[str]) -> tuple[dict, dict]:
    described, tensors = {}, {}
    for variant, path in files.items():
        info = describe(path, trusted=True)
        described[variant] = {"file": path.name, "bytes": info["size_bytes"], "sha256": info["sha256"],
                              "verdict": info["verdict"], "op_histogram": info["op_histogram"],
                              "float_ops": info["float_ops"]}
        if variant == FULL_INTEGER:
            if info["verdict"] != "full-integer":
                raise UnsupportedOpError(f"{path.name} is not full-integer ({info['verdict']}): float ops "
                                         f"{info['float_ops']}", ops=list(info["float_ops"]))
            tensors = {"inputs": info["inputs"], "outputs": info["outputs"]}
            for o, name in zip(tensors["outputs"], onnx_outputs):
                o["onnx_name"] = name
    return described, tensors


def _int8_check(int8_path: Path, float_path: Path, table: InputTable, feeds: list[dict[str, np.ndarray]],
                names: list[str], sample_names: list[str], limits: Mapping[str, float | None]) -> dict[str, Any]:
    """The quantization step on the check samples: int8 (through the adapter) vs float32 TFLite, judged over the
    samples as a whole (an output that is ~0 on some sample does not make its cosine meaningless)."""
    ref_runner = Runner(float_path, trusted=True, output_names=names, inputs=table)
    q_runner = Runner(int8_path, trusted=True, output_names=names, clip_warn=1.0, inputs=table)
    steps = {o.name: o.scales[0] for o in q_runner.outputs if o.quantized and not o.per_axis}
    per: dict[str, list] = {n: [] for n in names}
    agree: dict[str, list] = {n: [] for n in names}
    for feed in feeds:
        ref, got = ref_runner.feed(feed), q_runner.feed(feed)
        for n in names:
            per[n].append(compare(ref[n], got[n]))
            if ref[n].ndim == 2 and ref[n].shape[-1] > 1:
                agree[n].append(bool(np.argmax(ref[n][0]) == np.argmax(got[n][0])))
    outputs = {n: combine(m, sample_names, steps.get(n)) for n, m in per.items()}
    for n in names:
        if agree[n]:
            outputs[n]["top1_agreement"] = float(np.mean(agree[n]))
    return {"reference": "tflite float32", "candidate": "tflite int8 (via adapter)", "outputs": outputs,
            "thresholds": dict(limits), "failures": check_outputs(outputs, limits)}


def _opset(model: Any) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
