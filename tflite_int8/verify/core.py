"""verify(): is the int8 model as good as the float model?  Stage by stage, on task metrics, with reports.

Give it a conversion's output folder (or a reference — nn.Module, factory,
.onnx or float .tflite — and an int8 .tflite) and verification data.  It runs
the parity ladder (:mod:`.ladder`), the task metrics (:mod:`.tasks`) and the
per-layer diagnosis (:mod:`.diagnose`), checks thresholds, and writes
``report.json`` and ``report.html`` atomically into the report folder.
"""
from __future__ import annotations

import datetime
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..cluster import RAY_TIMEOUT, check_ray
from ..config.inputs import InputTable
from ..config.preprocess import PreprocessSpec
from ..config.recipe import Recipe
from ..config.thresholds import check_outputs, check_qat, resolve_thresholds
from ..convert.qat import SIMULATION_STEP
from ..convert.record import Conversion
from ..convert.translate import translate
from ..data.files import check_destination, dump_json, staging
from ..data.readers import default_data_dir, open_reader
from ..errors import InputError, Int8Error, Int8Warning
from ..progress import Progress
from ..runtime import child
from ..runtime.latency import conditions, median_latency_ms
from ..runtime.reference import declared_class_names
from ..runtime.versions import versions
from .detection import DetectionTask, read_coco
from .diagnose import diagnose
from .distributed import run_ladder_on_ray
from .engines import EngineSpec
from .html import render
from .ladder import LadderJob, run_ladder, summarize_outputs, summarize_steps
from .plan import Plan, make_plan
from .qat_layers import QAT_SAMPLES, simulation_layers
from .tasks import OutputInfo, choose_task, label_for, onnx_outputs, read_class_names, read_labels
from .undecided import undecided

LAYER_SAMPLES = 16


@dataclass
class VerifyResult:
    passed: bool
    report: dict[str, Any]
    report_dir: Path | None
    failures: list[str] = field(default_factory=list)


def verify(target: str | Path | None = None, *, tflite: str | Path | None = None, reference: Any = None,
           spec: PreprocessSpec | None = None, data: Any = None, labels: Any = None,
           class_names: str | Path | Sequence[str] | None = None, views: int = 1, num_samples: int | None = None,
           seed: int = 0, task: str = "auto", thresholds: Mapping[str, float] | str | Path | None = None,
           workers: int = 1, layers: bool = True, report_dir: str | Path | None = None, force: bool = False,
           blank: int = 0, mask_threshold: float = 0.5, progress: Progress | None = None,
           ray: str | None = None, ray_timeout: float = RAY_TIMEOUT) -> VerifyResult:
    """Verify an int8 model against its float reference; write reports into ``report_dir``.

    Reports are written only when ``report_dir`` is given (the CLI's default is ``TARGET/verify``).
    ``labels``: a CSV ``file,label``, a root of class folders, a {file: class} mapping or a list in sample order.
    ``ray``: run the samples as Ray tasks on this cluster (:mod:`.distributed`; ``local``, ``auto``, an address)
    instead of ``workers`` local processes; an existing cluster must answer within ``ray_timeout`` seconds.
    ``task``: see :data:`~tflite_int8.config.tasks.TASKS` (``auto``: the conversion's ``--task``, else chosen from
    the outputs); ``blank``: the CTC blank class; ``mask_threshold``: where a probability map becomes a mask.
    """
    t0 = time.perf_counter()
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    if ray is not None and workers > 1:
        raise InputError("give either workers (processes on this machine) or ray (tasks on a Ray cluster), not both")
    if ray is not None:
        check_ray(ray, ray_timeout)
    limits = resolve_thresholds(thresholds)
    plan = make_plan(target, tflite, reference, spec)
    out_dir = Path(report_dir) if report_dir is not None else None
    if out_dir is not None:
        check_destination(out_dir, force)
    names, names_from = _class_names(class_names, plan.conversion, reference)
    head = plan.conversion.head.get("decode") if plan.conversion else None
    detect = task == "detect" or (task == "auto" and head is not None)
    truth = {}
    if detect:
        if head is None:
            raise InputError("--task detect needs a conversion made with `convert --task detect` (its head "
                             "description says where boxes and scores are)")
        if views != 1:
            raise InputError("detection is verified on whole images: --views must be 1 (crops would move the boxes)")
        if head.get("mode") == "host":
            head = {**head, "decode_model_path": str((Path(target) / head["decode_model"]).resolve())}
        if labels is not None:
            truth, labels = read_coco(labels, plan.spec), None
    elif isinstance(labels, (str, Path)):
        labels = read_labels(labels, names)  # a bad labels file fails now, not after the whole run
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", Int8Warning)
        reader = open_reader(data if data is not None else default_data_dir(), plan.feeding, views=views,
                             num_samples=num_samples, seed=seed, warn_few=False)
        hygiene, calib_reader = _hygiene(plan.conversion, plan.feeding, reader)
        with tempfile.TemporaryDirectory(prefix="tflite-int8-verify-") as work, \
                child.Worker(log=Path(work) / "onnx2tf.log") as worker:  # onnx2tf and the diagnosis: one child
            translated = _translate_if_needed(plan, reader, Path(work), layers, worker)
            if detect:
                the_task: Any = DetectionTask(head, truth, tuple(names))
            else:
                size = plan.spec.size if plan.spec is not None else None
                the_task = choose_task(_task_of(task, plan), _outputs_info(plan), names, input_size=size,
                                       blank=blank, mask_threshold=mask_threshold)
            job = LadderJob(tuple(plan.steps), plan.spec, tuple(plan.output_names or ()), the_task,
                            inputs=plan.inputs, in_steps_vs=SIMULATION_STEP if plan.qat else None)
            if ray is None:
                records, cluster = run_ladder(job, reader, workers=workers, progress=progress), None
            else:
                records, cluster = run_ladder_on_ray(job, reader, ray, progress=progress, timeout=ray_timeout)
            layer_rows, layer_note = _layers(layers, translated, plan, calib_reader, reader, progress, worker)
            qat = (simulation_layers(plan.conversion, plan.int8, [s for _, s in zip(range(QAT_SAMPLES), reader)],
                                     plan.inputs, plan.output_names or [], limits, LAYER_SAMPLES)
                   if plan.qat and plan.conversion is not None and plan.inputs is not None else None)
            sizes = _sizes_latency(plan)
        label_list = _labels_in_order(labels, records)
        report = _report(plan, records, the_task, label_list, limits, layer_rows, layer_note, hygiene, reader,
                         workers, views)
        report["sizes_latency"], report["latency_conditions"] = sizes, conditions()
        if names:
            report["class_names"] = {"count": len(names), "source": names_from}
        if cluster is not None:
            report["data"]["ray"] = cluster
        failures = check_outputs(report["outputs"], limits) + the_task.failures(report.get(the_task.name, {}), limits)
        why = undecided(_onnx_of(plan), plan.conversion.head.get("lint", []) if plan.conversion else [],
                        _task_of(task, plan), the_task.name)
        if why:  # a YOLO head judged raw: tensor metrics cannot pass it
            report["undecided"] = why
            failures.append(why)
        if qat is not None:  # judged against its own simulation (the int8-vs-float figures above are reported too)
            report["qat_layers"] = qat.pop("tensors")
            report["qat_check"] = qat
            failures += check_qat({"tensors": report["qat_layers"], **qat}, limits)
        report["passed"], report["failures"] = not failures, failures
        report["seconds"] = round(time.perf_counter() - t0, 2)
    report["warnings"] = [str(w.message) for w in caught if issubclass(w.category, Int8Warning)]
    if out_dir is not None:
        _write(out_dir, report, records, force)
    for w in report["warnings"]:
        warnings.warn(w, Int8Warning, stacklevel=2)
    return VerifyResult(not failures, report, out_dir, failures)


def _task_of(task: str, plan: Plan) -> str:
    """``auto`` follows the task the conversion was made for (convert --task), when it names one."""
    made_for = plan.conversion.report.get("task") if plan.conversion else None
    return made_for if task == "auto" and made_for in ("classify", "segment", "ctc", "mask") else task


def _onnx_of(plan: Plan) -> Path | None:
    """The ONNX model the outputs are read from: the conversion's, or an ONNX reference."""
    return plan.onnx or next((Path(s.source) for s in plan.steps if s.kind == "onnxruntime"), None)


def _outputs_info(plan: Plan) -> dict[str, OutputInfo]:
    """Each output's reference shape and producing op: from the ONNX model when there is one (the int8 file's
    shapes are channels-last and say nothing of softmax or sigmoid)."""
    onnx_path = _onnx_of(plan)
    if onnx_path is not None and onnx_path.is_file():
        info = onnx_outputs(onnx_path)
        if plan.output_names is None or set(plan.output_names) <= set(info):
            return {n: info[n] for n in (plan.output_names or info)}
    names = plan.output_names or list(plan.int8_outputs)
    return {n: OutputInfo(tuple(s)) for n, s in zip(names, plan.int8_outputs.values())}


def _class_names(class_names: Any, conversion: Conversion | None, reference: Any) -> tuple[list[str], str | None]:
    """The class names and where they came from: given, else declared by the reference model or the
    conversion's model factory (its ``class_names`` attribute, as the zoo's ImageNet models do)."""
    source = "given"
    if class_names is None:
        model = reference
        if model is None and conversion is not None and conversion.source.get("kind") == "pytorch":
            model = str(conversion.source.get("model", ""))
        class_names = declared_class_names(model) if model is not None else None
        source = f"declared by {model if isinstance(model, str) else type(model).__name__}"
    if class_names is None:
        return [], None
    if isinstance(class_names, (list, tuple)):
        return [str(c) for c in class_names], source
    return read_class_names(class_names), f"{source}: {class_names}"


def _hygiene(conversion: Conversion | None, spec: PreprocessSpec | InputTable, reader: Any
             ) -> tuple[dict[str, Any], Any]:
    """Overlap of verification with calibration (by content hash), and the calibration reader when reproducible."""
    info: dict[str, Any] = {"verification_hash": reader.content_hash, "verification_samples": len(reader)}
    calib = conversion.calibration if conversion else None
    if not calib:
        info["calibration"] = "unknown (no conversion.json)"
        return info, None
    try:
        c_reader = open_reader(calib["source"], spec, views=calib.get("views", 1), num_samples=calib.get("num_samples"),
                               seed=calib.get("seed", 0), warn_few=False)
    except (Int8Error, KeyError, TypeError) as exc:
        info["calibration"] = f"not available to compare ({exc})"
        return info, None
    same_set = c_reader.content_hash == calib.get("hash")
    info["calibration"] = "reproduced" if same_set else "changed since the conversion"
    ver, cal = reader.item_digests, set(c_reader.item_digests)
    info["identical_samples"] = sum(d in cal for d in ver)
    cal_files = {d.split(":")[0] for d in cal}
    info["shared_source_files"] = len({d.split(":")[0] for d in ver} & cal_files)
    if info["shared_source_files"]:
        warnings.warn(f"verification overlaps calibration: {info['shared_source_files']} source file(s) "
                      f"({info['identical_samples']} identical samples) were also used to calibrate; the figures "
                      f"are optimistic. Verify on data the model was not calibrated on", Int8Warning, stacklevel=3)
    return info, (c_reader if same_set else None)


def _translate_if_needed(plan: Plan, reader: Any, work: Path, layers: bool, worker: child.Worker) -> Any:
    """Re-translate model.onnx (SavedModel for the diagnosis, float32 TFLite for the ladder) when useful."""
    has_f32 = any(s.step == "tflite-float32" for s in plan.steps)
    if plan.qat:
        return None
    if plan.onnx is None or (has_f32 and not layers):
        if not has_f32 and plan.conversion is not None:
            plan.skipped.append({"step": "tflite-float32", "reason": "no float32 TFLite and no model.onnx"})
        return None
    names = plan.inputs.names if plan.inputs is not None else ["input"]
    samples = [dict(zip(names, s.arrays(names))) if plan.inputs is not None else s.x for _, s in zip(range(20), reader)]
    tr = translate(plan.onnx, work, plan.feeding, samples=samples, output_names=plan.output_names, worker=worker)
    if not has_f32:
        plan.steps.insert(len(plan.steps) - 1, EngineSpec("tflite-float32", "tflite", str(tr.float32_tflite)))
        plan.notes["tflite-float32"] = "not in the output folder: re-translated from model.onnx for this run"
    return tr


def _layers(enabled: bool, translated: Any, plan: Plan, calib_reader: Any, reader: Any,
            progress: Any, worker: child.Worker) -> tuple[list[dict], str]:
    if not enabled:
        return [], "skipped (layers=False)"
    if plan.qat:
        return [], ("TF's quantization debugger re-calibrates the model, which a quantization-aware conversion never "
                    "does: see qat_layers, every fake-quantized tensor of the int8 file against the QAT simulation")
    if translated is None:
        return [], "skipped: needs the conversion's model.onnx"
    note = "calibrated on the conversion's own calibration set"
    if calib_reader is None:
        calib_reader = reader
        note = ("the conversion's calibration set could not be reproduced: calibrated on the verification set, so "
                "the layers are those of a re-calibrated model, not necessarily of the shipped one")
    debug = [s for _, s in zip(range(LAYER_SAMPLES), reader)]
    recipe = plan.conversion.recipe if plan.conversion else Recipe()
    renamed = plan.conversion.renamed if plan.conversion else {}
    node_map = {k: renamed.get(v, v) for k, v in translated.node_map.items()}  # the user's own node names
    rows = diagnose(translated.saved_model, calib_reader, debug, plan.feeding, recipe=recipe, node_map=node_map,
                    progress=progress, worker=worker)
    return rows, note + f"; errors measured on {len(debug)} verification samples"


def _labels_in_order(labels: Any, records: Sequence[dict]) -> list[int | None]:
    if labels is None:
        return [None] * len(records)
    if isinstance(labels, Mapping):
        found = [label_for(r["source"], r["name"], labels) for r in records]
        if not any(v is not None for v in found):
            raise InputError(f"none of the {len(records)} verification samples has a label (labels are keyed by "
                             f"file name or path, e.g. {next(iter(labels), '?')!r})")
        return found
    seq = [int(v) for v in np.asarray(labels).ravel()]
    if len(seq) != len(records):
        raise InputError(f"{len(seq)} labels given for {len(records)} verification samples")
    return seq


def _report(plan: Plan, records: list[dict], task: Any, labels: list, limits: dict, layer_rows: list,
            layer_note: str, hygiene: dict, reader: Any, workers: int, views: int) -> dict[str, Any]:
    step_names = [s.step for s in plan.steps]
    per_step = summarize_steps(step_names[1:], records)
    stages = [{"step": step_names[0], "role": "reference", "engine": plan.steps[0].kind}]
    for prev, step in zip(step_names, step_names[1:]):
        stages.append({"step": step, "compared_with": prev, "outputs": per_step[step]})
        if step in plan.notes:
            stages[-1]["note"] = plan.notes[step]
    stages += [{"step": s["step"], "skipped": s["reason"]} for s in plan.skipped]
    report: dict[str, Any] = {
        "schema": 1, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": str(plan.int8), "reference": step_names[0], "versions": versions(),
        "preprocess": plan.spec.to_dict() if plan.inputs is None or plan.inputs.images else None,
        "inputs": plan.inputs.to_list() if plan.inputs is not None else None,
        "data": {"description": reader.description, "views": views, "samples": len(records), "workers": workers},
        "hygiene": hygiene, "stages": stages, "outputs": summarize_outputs(records), "task": task.name,
        "layers": layer_rows, "layers_note": layer_note, "thresholds": limits,
    }
    if task.name != "raw":
        report[task.name] = task.summarize([r["name"] for r in records], [r["task"] for r in records], labels)
    return report


def _sizes_latency(plan: Plan) -> list[dict[str, Any]]:
    """Size and median latency of each TFLite step, timed interleaved (runtime.latency's fixed conditions)."""
    files = [Path(s.source) for s in plan.steps if s.kind == "tflite"]
    steps = [s.step for s in plan.steps if s.kind == "tflite"]
    return [{"file": f.name, "step": step, "bytes": f.stat().st_size, "latency_ms_1_thread": round(ms, 3)}
            for f, step, ms in zip(files, steps, median_latency_ms(files))]


def _write(out_dir: Path, report: dict, records: list[dict], force: bool) -> None:
    with staging(out_dir, force) as stage:
        (stage / "report.json").write_text(dump_json(report))
        (stage / "report.html").write_text(render(report, records))
