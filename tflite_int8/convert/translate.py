"""Stage 2, translate: ONNX -> float TF SavedModel (and float32 TFLite) with onnx2tf, offline.

onnx2tf runs in a child process (:class:`Onnx2tfJob` through :mod:`tflite_int8.runtime.child`): its
``sys.exit`` calls and native crashes end the child, not the caller, and its working directory holds
the sample-image file it would otherwise download from GitHub, built here from
the user's own calibration samples; for any model but one 3-channel image input,
onnx2tf's dummy inference gets one of the user's samples per input
(``custom_input_op_name_np_data_path``, in the TFLite layout).  Inputs of rank 0-3
keep the user's layout (``keep_shape_absolutely_input_names``: onnx2tf would turn
NCW into NWC), and so do channels-last (NHWC) 4-D inputs; channels-first 4-D/5-D
inputs become channels-last.  The float32 TFLite is then
checked against ONNX Runtime; a numerically wrong translation stops the pipeline.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config.inputs import InputSpec, InputTable
from ..config.preprocess import PreprocessSpec
from ..errors import ConversionError, CrashError, Int8Error, ParityError, UnsupportedOpError
from ..runtime import child
from ..runtime.adapter import Runner
from ..runtime.metrics import align_layout, combine, compare, skipped_note
from ..runtime.reference import load_onnx, run_onnx

ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
DEFAULT_THRESHOLDS = {"cosine": 0.9999, "rel_max_err": 1e-3}


@dataclass
class TranslateResult:
    saved_model: Path
    float32_tflite: Path
    check: dict[str, Any] = field(default_factory=dict)
    log: Path | None = None
    node_map: dict[str, str] = field(default_factory=dict)  # TF op name -> ONNX node name


@dataclass(frozen=True)
class Onnx2tfJob:
    """onnx2tf on one file, run in a child process (:mod:`tflite_int8.runtime.child`): its ``sys.exit`` calls and
    native crashes end the child, not the caller.  ``cwd`` holds the sample file onnx2tf would otherwise download;
    ``keep_shape``: inputs onnx2tf must not make channels-last; ``custom_data``: [input name, .npy path] pairs for
    its dummy inference."""

    onnx: str
    out: str
    cwd: str
    keep_shape: tuple[str, ...] = ()
    custom_data: tuple[tuple[str, str], ...] = ()

    def __call__(self, progress: Any) -> None:
        os.chdir(self.cwd)
        import onnx2tf

        bar = progress("translating (onnx2tf)", None)
        onnx2tf.convert(
            input_onnx_file_path=self.onnx,
            output_folder_path=self.out,
            not_use_onnxsim=True,
            output_signaturedefs=True,
            copy_onnx_input_output_names_to_tflite=True,
            verbosity="debug",  # per-node lines: the ONNX node behind each TF tensor (translate.node_map)
            keep_shape_absolutely_input_names=list(self.keep_shape) or None,
            custom_input_op_name_np_data_path=[list(p) for p in self.custom_data] or None,
        )
        bar.close()


def translate(onnx_path: str | Path, work_dir: str | Path, spec: PreprocessSpec | InputTable, *,
              samples: Sequence[Any] = (), check_inputs: Sequence[Any] = (),
              output_names: Sequence[str] | None = None, thresholds: dict[str, float] | None = None,
              timeout: float = 3600.0, worker: child.Worker | None = None,
              check_names: Sequence[str] | None = None) -> TranslateResult:
    """Translate ``onnx_path`` into ``work_dir``/saved_model; check float32 TFLite vs ONNX Runtime.

    ``spec``: the model's inputs (or, for a one-image-input model, its preprocessing).
    ``samples``: preprocessed inputs (source layout; an array or {input name: array} each) for onnx2tf's dummy
    inference.  ``check_inputs``: inputs for the numeric check (none: no check); ``check_names``: their names.
    ``worker``: the child process to run onnx2tf in (a conversion's quantization then reuses it); its log is
    onnx2tf's log.  Without one, a child of its own logging to ``work_dir``/onnx2tf.log.
    """
    onnx_path, work_dir = Path(onnx_path).resolve(), Path(work_dir).resolve()
    table = input_table(onnx_path, spec)
    scratch = work_dir / "onnx2tf_cwd"
    scratch.mkdir(parents=True, exist_ok=True)
    out = work_dir / "saved_model"
    job = Onnx2tfJob(str(onnx_path), str(out), str(scratch),
                     tuple(s.name for s in table if s.layout_change is None),
                     tuple(tuple(p) for p in _write_samples(scratch, table, samples)))
    own = worker is None
    worker = worker or child.Worker(log=work_dir / "onnx2tf.log")
    log = worker.log
    try:
        worker.call(job, what="onnx2tf", stage="translate", timeout=timeout,
                    fail=lambda f: _failure(onnx_path, log, f))
    finally:
        if own:
            worker.close()
    tflites = sorted(out.glob("*_float32.tflite"))
    if not tflites:
        raise ConversionError(f"onnx2tf wrote no float32 TFLite for {onnx_path.name}.{keep_log(log, onnx_path)}",
                              stage="translate")
    result = TranslateResult(out, tflites[0], log=log, node_map=node_map(log))
    if check_inputs:
        result.check = check_translation(onnx_path, tflites[0], table, check_inputs, output_names=output_names,
                                         thresholds=thresholds, sample_names=check_names)
    return result


def input_table(onnx_path: str | Path, spec: PreprocessSpec | InputTable) -> InputTable:
    """The model's inputs; a bare spec describes a one-image-input model (named as in the ONNX file)."""
    if isinstance(spec, InputTable):
        return spec
    model = load_onnx(onnx_path)
    inits = {i.name for i in model.graph.initializer}
    name = next(i.name for i in model.graph.input if i.name not in inits)
    return InputTable((InputSpec(name, spec.input_shape(), spec),))


def node_map(log: Path) -> dict[str, str]:
    """TF op name (e.g. ``tf.math.add/Add``) -> the ONNX node it came from, read from onnx2tf's debug log."""
    mapping: dict[str, str] = {}
    node = None
    with open(log, errors="replace") as f:
        for line in f:
            line = re.sub(r"\x1b\[[0-9;]*m", "", line)
            m = re.search(r"onnx_op_name:\s*(\S+)", line)
            if m:
                node = m.group(1)
                continue
            # outputs, and helper ops onnx2tf inserted as a node's inputs (e.g. the Pad before a Conv)
            m = re.search(r"(?:output\.\d+\.output|input\.\d+\.\w+): name: (\S+?)(?::\d+)? shape", line)
            if m and node:
                mapping.setdefault(m.group(1), node)
    return mapping


def onnx_nodes_for(tensor_name: str, mapping: dict[str, str]) -> list[str]:
    """ONNX node names behind a TFLite tensor name like ``model_1/tf.math.add/Add;model_1/tf.nn.conv/conv;Const``."""
    found = []
    for part in tensor_name.split(";"):
        key = part.split("/", 1)[1] if part.startswith("model") and "/" in part else part
        node = mapping.get(key)
        if node and node not in found:
            found.append(node)
    return found


def _write_samples(scratch: Path, table: InputTable, samples: Sequence[Any]) -> list[list[str]]:
    """onnx2tf's dummy-inference data, from the user's samples; returns its ``custom_input_op_name_np_data_path``.

    Always: the 20x128x128x3 sample-image file onnx2tf would download (NHWC, up to 20 samples of the first image
    input, random ones without).  For any model but one 3-channel 4-D input, also one file per input with one of
    the user's samples in the TFLite layout (onnx2tf's dummy inference otherwise feeds ones).
    """
    feeds = [table.feed(s) for s in list(samples)[:20]]
    first = table.images[0] if table.images else None
    arrays = [first.to_tflite(np.asarray(f[first.name], np.float32)) for f in feeds] if first is not None else []
    if arrays:
        data = np.concatenate(arrays, axis=0)
    else:
        h, w = first.preprocess.sized if first is not None else (128, 128)
        c = first.preprocess.num_channels if first is not None else 3
        data = np.random.default_rng(0).random((20, h, w, c), dtype=np.float32)
    np.save(scratch / ONNX2TF_SAMPLE_FILE, np.ascontiguousarray(data, dtype=np.float32))
    if len(table) == 1 and table.specs[0].layout_change and table.specs[0].tflite_shape[-1] == 3:
        return []  # onnx2tf's own path (an NCHW image input): the sample-image file above, resized
    custom = []
    for k, s in enumerate(table):  # integer inputs (ids, masks) in their own dtype; without samples, zeros
        x = (s.to_tflite(np.asarray(feeds[0][s.name], s.dtype)) if feeds
             else np.zeros(s.tflite_shape, s.dtype) if s.integer
             else np.random.default_rng(k).standard_normal(s.tflite_shape).astype(np.float32))
        path = scratch / f"dummy_input_{k}.npy"
        np.save(path, np.ascontiguousarray(x, dtype=s.dtype))
        custom.append([s.name, str(path)])
    return custom


def _failure(onnx_path: Path, log: Path, f: child.Failure) -> Int8Error:
    """onnx2tf's failure as a typed error naming the ONNX op and node its log blames."""
    text = log.read_text(errors="replace") if log.exists() else ""
    clean = re.sub(r"\x1b\[[0-9;]*m", "", text)
    missing = re.findall(r"No module named 'onnx2tf\.ops\.([A-Za-z0-9_]+)'", clean)  # no handler for the op
    op_types = missing or re.findall(r"onnx_op_type:\s*([A-Za-z0-9_]+)", clean)
    op_names = re.findall(r"Error from ONNX operation:\s*(\S+)", clean) or re.findall(r"onnx_op_name:\s*(\S+)", clean)
    detail = f.message if f.kind != "crash" else f"the onnx2tf process {f.describe()}"
    errors = [ln.strip() for ln in clean.splitlines() if "ERROR" in ln or "Error" in ln][-3:]
    hint = f" Last messages: {' | '.join(errors)[:600]}" if errors else ""
    if op_types:
        where = f" (node '{op_names[-1]}')" if op_names else ""
        cls = CrashError if f.kind == "crash" else UnsupportedOpError
        message = (f"onnx2tf cannot translate ONNX op {op_types[-1]}{where} in {onnx_path.name}: {detail}.{hint}"
                   f"{keep_log(log, onnx_path)}")
        if cls is CrashError:
            return CrashError(message, stage="translate", ops=[op_types[-1]], signal=f.signal)
        return UnsupportedOpError(message, ops=[op_types[-1]], stage="translate")
    return ConversionError(f"onnx2tf failed on {onnx_path.name}: {detail}.{hint}{keep_log(log, onnx_path)}",
                           stage="translate")


def keep_log(log: Path, onnx_path: Path) -> str:
    """' Full log: PATH' for a failed run: onnx2tf's log copied out of the work folder (removed when the conversion
    ends) to ``<temp>/tflite-int8-logs/<UTC time>-<model>-*-onnx2tf.log``, never into the user's output folder;
    '' when there is no log."""
    try:
        folder = Path(tempfile.gettempdir()) / "tflite-int8-logs"
        folder.mkdir(parents=True, exist_ok=True)
        fd, kept = tempfile.mkstemp(prefix=f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{onnx_path.stem}-",
                                    suffix="-onnx2tf.log", dir=folder)
        with os.fdopen(fd, "wb") as out, open(log, "rb") as src:
            shutil.copyfileobj(src, out)
    except OSError:
        return f" Full log: {log}" if log.exists() else ""
    return f" Full log: {kept}"


def check_translation(onnx_path: Path, tflite_path: Path, spec: PreprocessSpec | InputTable, inputs: Sequence[Any],
                      *, output_names: Sequence[str] | None = None, thresholds: dict[str, float] | None = None,
                      sample_names: Sequence[str] | None = None) -> dict[str, Any]:
    """float32 TFLite vs ONNX Runtime on ``inputs``; ParityError when beyond ``thresholds``."""
    limits = dict(DEFAULT_THRESHOLDS, **(thresholds or {}))
    table = input_table(onnx_path, spec)
    feeds = [table.feed(x) for x in inputs]
    refs = run_onnx(onnx_path, feeds)
    runner = Runner(tflite_path, trusted=True, output_names=output_names, inputs=table)
    names = runner.output_names
    if len(names) != len(refs[0]):
        raise ConversionError(f"float32 TFLite has {len(names)} outputs, ONNX has {len(refs[0])}", stage="translate")
    per: dict[str, list] = {n: [] for n in names}
    for feed, ref in zip(feeds, refs):
        try:
            got = runner(*[feed[n] for n in table.names])
        except ValueError as exc:  # the interpreter's "Invalid tensor size": an output onnx2tf made empty
            shapes = ", ".join(f"'{o.name}' {list(o.shape)}" for o in runner.outputs)
            raise ConversionError(f"the float32 TFLite from onnx2tf cannot be run ({str(exc).rstrip('.')}; its "
                                  f"outputs: {shapes}, ONNX: {[list(np.shape(r)) for r in ref]}): the translation of "
                                  f"some op is wrong; report it with the ONNX file", stage="translate") from None
        for name, r in zip(names, ref):
            try:
                per[name].append(compare(r, align_layout(r, got[name])))
            except ValueError as exc:
                raise ConversionError(f"output '{name}': {exc}", stage="translate") from None
    outputs = {n: combine(m, sample_names) for n, m in per.items()}
    check = {"reference": "onnxruntime", "candidate": "tflite float32", "outputs": outputs, "thresholds": limits}
    for name, m in outputs.items():
        if m["cosine_min"] < limits["cosine"] or m["rel_max_err"] > limits["rel_max_err"]:
            raise ParityError(
                f"the float32 TFLite from onnx2tf does not match ONNX Runtime on output '{name}': cosine "
                f"{m['cosine_min']:.6f} (least over the samples; need >= {limits['cosine']}), max abs error "
                f"{m['max_abs_err']:.4g} = {m['rel_max_err']:.2%} of the output's range over the samples (need <= "
                f"{limits['rel_max_err']:.2%}){skipped_note(m)}; quantizing it would give garbage. The translation "
                f"of some op is wrong: report it with the ONNX file", stage="translate", metrics=m)
    return check
