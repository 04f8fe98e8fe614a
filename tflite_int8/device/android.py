"""The host side of the Android harness: make a bundle, run it on a phone over adb, compare results.

``bundle()`` writes what the phone needs (model, I/O quantization, quantized inputs,
the host interpreter's outputs, a manifest with hashes and thresholds);
``compare()`` turns a device's results document into a pass/fail report computed
here; ``run()`` pushes a bundle with adb, runs the instrumentation of
``android_harness/app`` and compares what it pulls back.  The formats are in
:mod:`.bundle_format`; the ARM64 check without a phone is :mod:`.arm64`.
"""
from __future__ import annotations

import datetime
from dataclasses import replace
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..config.inputs import InputSpec, InputTable
from ..config.preprocess import PreprocessSpec
from ..convert.record import read_conversion
from ..data.files import check_destination, dump_json, staging
from ..data.readers import default_data_dir, open_reader
from ..errors import InputError, Int8Error
from ..portable import bundle_format as bf
from ..progress import Progress, step
from ..runtime.adapter import Runner, quantize, read_io
from ..runtime.interpreter import probe
from ..runtime.metadata import input_table, read_metadata
from ..runtime.versions import __version__, versions

DEVICE_DIR = "/data/local/tmp/tflite_int8"
APP_ID = "org.tflite_int8.harness"
RUNNER = f"{APP_ID}.test/androidx.test.runner.AndroidJUnitRunner"


def _tensor(t: Any) -> dict[str, Any]:
    return {"name": t.name, "index": t.index, "shape": list(t.shape), "dtype": t.dtype,
            "scale": list(t.scales), "zero_point": list(t.zero_points),
            "quantized_dimension": t.quantized_dimension}


def _resolve(target: str | Path, spec: PreprocessSpec | None, data: Any) -> tuple[Path, InputTable]:
    """The model and its inputs: a conversion's (the image input's preprocessing replaced by ``spec`` if given),
    the file's own metadata, or for a file without any, one input described by ``spec`` or by ``data``."""
    path = Path(target)
    if path.is_dir():
        conv = read_conversion(path)
        if not conv.int8_path.is_file():
            raise InputError(f"{path}: the full-integer model {conv.int8_path.name} is missing")
        return conv.int8_path, _with_image_spec(conv.inputs, spec, path)
    if path.suffix.lower() != ".tflite" or not path.is_file():
        raise InputError(f"{target} is neither a conversion output folder nor a .tflite file")
    declared = input_table(read_metadata(path), path)
    if declared is not None:
        return path, _with_image_spec(declared, spec, path)
    ins = read_io(path)[0]
    if len(ins) != 1:
        raise InputError(f"{path.name} has {len(ins)} inputs ({', '.join(i.name for i in ins)}) and no tflite_int8 "
                         f"metadata saying what each takes: bundle its conversion folder, or a file written by "
                         f"tflite-int8 convert")
    (info,) = ins
    if spec is not None:
        return path, InputTable.single(spec, name=info.name)
    if data is None or Path(str(data)).suffix.lower() != ".npy":
        raise InputError(f"{path.name}: without a conversion folder or a preprocessing spec (--preset/--spec), give "
                         f"--data as a .npy of float inputs ({', '.join(map(str, ['N', *info.shape[1:]]))}, the "
                         f"TFLite layout)")
    if len(info.shape) == 4:  # arrays as the file takes them: channels-last
        return path, InputTable.single(PreprocessSpec(size=tuple(info.shape[1:3]), layout="NHWC"), name=info.name)
    return path, InputTable((InputSpec(info.name, tuple(info.shape)),))


def _with_image_spec(table: InputTable, spec: PreprocessSpec | None, source: Path) -> InputTable:
    """``table`` with its one image input's preprocessing replaced by ``spec`` (None: as declared)."""
    if spec is None:
        return table
    images = table.images
    if len(images) != 1:
        raise InputError(f"{source}: --preset/--spec describe one image input; the model has {len(images)}")
    spec = spec if spec.size is not None else spec.with_overrides(size=images[0].preprocess.size)
    return InputTable(tuple(replace(s, preprocess=spec) if s.kind == "image" else s for s in table))


def bundle(target: str | Path, out_dir: str | Path, *, spec: PreprocessSpec | None = None, data: Any = None,
           num_samples: int = 8, seed: int = 0, thresholds: Mapping[str, float] | None = None,
           warmup: int = 3, runs: int = 20, force: bool = False) -> dict[str, Any]:
    """Write a bundle for ``target`` (a conversion folder or a .tflite) into ``out_dir``; return its manifest.

    Every input of the model, of any kind and number: ``data`` as ``convert`` takes it (a folder of photos for
    the image input, a ``.npy`` for a single input, a ``.npz`` or {input name: source}; default: the bundled
    photos), each quantized with the adapter in the file's own layout; expected outputs are the host
    interpreter's raw outputs.  The manifest lists inputs and outputs in the interpreter's order (LiteRT's).
    """
    if num_samples < 1:
        raise InputError(f"num_samples must be at least 1, got {num_samples}")
    unknown = set(thresholds or {}) - set(bf.DEFAULT_THRESHOLDS)
    if unknown:
        raise InputError(f"unknown bundle threshold(s) {sorted(unknown)}; known: {sorted(bf.DEFAULT_THRESHOLDS)}")
    out = Path(out_dir)
    check_destination(out, force)
    model, table = _resolve(target, spec, data)
    probe(model)
    if data is None and not table.images:
        raise InputError(f"{model.name} has no image input ({', '.join(table.names)}): give --data (a .npy for one "
                         f"input, a .npz with one array per input name, or NAME=PATH per input)")
    runner = Runner(model, trusted=True, inputs=table)
    others = {k: Runner(model, op_resolver=k, trusted=True, inputs=table) for k in ("no-delegates", "reference")}
    ins, outs = runner.interpreter_order()
    reader = open_reader(data if data is not None else default_data_dir(), table, num_samples=num_samples,
                         seed=seed, warn_few=False)
    manifest = _manifest(model, ins, outs, thresholds, warmup, runs, getattr(reader, "description", str(data)))
    manifest["model"]["inputs"] = table.to_list()
    declared = dict(zip((i.index for i in runner.inputs), runner.input_specs))
    with staging(out, force) as stage:
        shutil.copyfile(model, stage / "model.tflite")
        manifest["model"]["sha256"] = bf.sha256(stage / "model.tflite")
        manifest["model"]["bytes"] = (stage / "model.tflite").stat().st_size
        (stage / "inputs").mkdir()
        (stage / "expected").mkdir()
        spread: dict[str, list[list[dict[str, Any]]]] = {k: [] for k in others}
        for k, sample in enumerate(reader):
            name = f"{k:03d}"
            arrays = dict(zip(table.names, sample.arrays(table.names)))
            entries, raw = _sample_inputs(stage, name, ins, declared, arrays)
            raw_in = [raw[i.index] for i in runner.inputs]  # Runner.invoke takes the model's order
            raw_outs = runner.invoke(raw_in)
            for kind, other in others.items():
                spread[kind].append([bf.compare_output(np.asarray(r), np.asarray(r2), _tensor(o)) for o, r, r2 in
                                     zip(runner.outputs, raw_outs, other.invoke(raw_in))])
            expected = [_write(stage, f"expected/{name}_{j}.raw", r, o.dtype) for j, (o, r) in
                        enumerate(zip(runner.outputs, raw_outs))]
            by_index = {o.index: e for o, e in zip(runner.outputs, expected)}
            manifest["samples"].append({"name": name, "source": sample.name, "inputs": entries,
                                        "expected": [by_index[o.index] for o in outs]})
        manifest["host_kernel_spread"] = _spread(runner.outputs, spread)
        (stage / "manifest.json").write_text(dump_json(manifest) + "\n")
    return manifest


def _manifest(model: Path, ins: list, outs: list, thresholds: Mapping[str, float] | None, warmup: int, runs: int,
              data: str) -> dict[str, Any]:
    return {
        "format": bf.BUNDLE_FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "tool": {"tflite_int8": __version__, "python": platform.python_version(), "machine": platform.machine(),
                 "numpy": np.__version__, "ai-edge-litert": _litert_version()},
        "model": {"file": "model.tflite", "source": str(model.resolve())},
        "rounding": "xnnpack: q = clamp(rint(x * (1/scale)) + zero_point), float32, ties to even",
        "inputs": [_tensor(t) for t in ins], "outputs": [_tensor(t) for t in outs],
        "samples": [], "thresholds": {**bf.DEFAULT_THRESHOLDS, **(thresholds or {})},
        "timing": {"warmup": warmup, "runs": runs}, "data": data,
    }


def _sample_inputs(stage: Path, name: str, ins: list, declared: Mapping[int, InputSpec | None],
                   arrays: Mapping[str, np.ndarray]) -> tuple[list[dict[str, str]], dict[int, np.ndarray]]:
    """One sample's inputs written in the interpreter's order: each in the file's layout, quantized by the adapter's
    rule (an integer input, e.g. token ids, as it is) and, when quantized, its float values beside it."""
    entries, raw = [], {}
    for j, info in enumerate(ins):
        spec = declared[info.index]
        x = np.asarray(arrays[spec.name] if spec is not None else arrays[info.name])
        x = spec.to_tflite(x) if spec is not None else x
        q = quantize(x.astype(np.float32), info) if info.quantized else np.ascontiguousarray(x.astype(info.dtype))
        entry = _write(stage, f"inputs/{name}_{j}.raw", q, info.dtype)
        if info.quantized:
            f = _write(stage, f"inputs/{name}_{j}.f32", x.astype(np.float32), "float32")
            entry.update({"float_file": f["file"], "float_sha256": f["sha256"]})
        entries.append(entry)
        raw[info.index] = q
    return entries, raw


def _spread(outputs: list, rows: dict[str, list[list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """How far the host's own kernel families (XNNPACK vs builtin vs reference) disagree, per output.

    Integer requantization rounds differently per kernel family and per CPU; a device that differs from
    the host by about this much computes correctly, just with another kernel's rounding.
    """
    out = []
    for j, o in enumerate(outputs):
        row: dict[str, Any] = {"name": o.name}
        for kind, samples in rows.items():
            cells = [s[j] for s in samples]
            kind = "builtin" if kind == "no-delegates" else kind
            row[f"xnnpack_vs_{kind}_max_step_diff"] = max(c["max_step_diff"] for c in cells)
            row[f"xnnpack_vs_{kind}_min_cosine"] = min(c["cosine"] for c in cells)
        out.append(row)
    return out


def _write(stage: Path, rel: str, array: np.ndarray, dtype: str) -> dict[str, str]:
    path = stage / rel
    path.write_bytes(bf.to_bytes(array, dtype))
    return {"file": rel, "sha256": bf.sha256(path)}


def _litert_version() -> str:
    return versions()["ai-edge-litert"]


def read_bundle(path: str | Path) -> dict[str, Any]:
    """A bundle's manifest, with every file checked against its hash."""
    try:
        return bf.read_manifest(path)
    except bf.BundleError as exc:
        raise InputError(str(exc)) from None


def compare(results: str | Path | Mapping[str, Any], bundle_dir: str | Path) -> dict[str, Any]:
    """Recompute a device's results against the bundle here: the pass/fail report (results schema).

    The device's own verdict is kept under ``device_verdict``; a disagreement is a failure.
    """
    manifest = read_bundle(bundle_dir)
    try:
        doc = dict(results) if isinstance(results, Mapping) else bf.read_json(Path(results), "results")
    except bf.BundleError as exc:
        raise InputError(str(exc)) from None
    try:
        outputs = bf.device_outputs(doc, manifest)
        report = bf.results(bundle_dir, manifest, outputs, device=doc.get("device", {}),
                            timing=doc.get("timing", []), input_check=doc.get("input_quantization"))
    except (bf.BundleError, KeyError, ValueError) as exc:
        raise InputError(f"results do not fit bundle {bundle_dir}: {exc}") from None
    report["host_kernel_spread"] = manifest.get("host_kernel_spread", [])
    report["device_verdict"] = {"passed": doc.get("passed"), "failures": doc.get("failures", [])}
    same_limits = doc.get("thresholds") == report["thresholds"]  # else the device judged another bundle's limits
    if same_limits and doc.get("passed") is not None and bool(doc["passed"]) != report["passed"]:
        report["failures"].append(f"the device reported passed={doc['passed']}, the host's recomputation says "
                                  f"{report['passed']}")
        report["passed"] = False
    spread = {r["name"]: max(r.get("xnnpack_vs_builtin_max_step_diff", 0), r.get("xnnpack_vs_reference_max_step_diff", 0))
              for r in report["host_kernel_spread"]}
    if not report["passed"] and report["outputs"] and all(
            o["max_step_diff"] <= spread.get(o["name"], 0) for o in report["outputs"]):
        worst = max(o["max_step_diff"] for o in report["outputs"])
        low = min(o["min_cosine"] for o in report["outputs"])
        report["note"] = (f"the device's differences ({worst} steps at most) are no larger than the host's own kernels' "
                          f"spread on these inputs: integer rounding, not a broken device. To accept them, bundle again "
                          f"with --max-step-diff {max(spread.values())} --min-cosine {np.floor(low * 1000) / 1000:g}")
    for row in report["samples"]:
        for o in row["outputs"]:
            o.pop("data_b64", None)  # the report is for reading; the results file keeps the data
    return report


def write_report(report: Mapping[str, Any], path: str | Path, *, force: bool = False) -> Path:
    out = Path(path)
    if out.exists() and not force:
        raise InputError(f"{out} already exists; choose another path or pass --force to replace it")
    tmp = out.with_name(f".{out.name}.partial")
    tmp.write_text(dump_json(report) + "\n")
    tmp.replace(out)
    return out


def run(bundle_dir: str | Path, *, serial: str | None = None, adb: str = "adb", xnnpack: bool = True,
        timeout: float = 1800.0, progress: Progress | None = None) -> dict[str, Any]:
    """Push the bundle to a phone, run the harness app's instrumentation, pull the results, compare them."""
    manifest = read_bundle(bundle_dir)
    exe = shutil.which(adb)
    if exe is None:
        raise InputError(f"'{adb}' not found: install Android platform-tools (Debian: apt install adb) and connect "
                         f"a phone with USB debugging, or check a bundle without one: `tflite-int8 android "
                         f"arm64-check`")
    base = [exe] + (["-s", serial] if serial else [])

    def call(*args: str, what: str) -> str:
        try:
            with step(progress, what):
                proc = subprocess.run(base + list(args), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Int8Error(f"adb {' '.join(args[:2])} did not finish within {timeout:.0f} s") from None
        if proc.returncode != 0:
            raise InputError(f"adb {' '.join(args[:2])} failed ({what}): {(proc.stderr or proc.stdout).strip()}")
        return proc.stdout

    state = call("get-state", what="finding the device").strip()
    if state != "device":
        raise InputError(f"the phone is '{state}', not ready; unlock it and allow USB debugging")
    remote = f"{DEVICE_DIR}/{manifest['model']['sha256'][:12]}"
    call("shell", "rm", "-rf", remote, what="clearing the old bundle")
    call("shell", "mkdir", "-p", remote, what="making the bundle folder")
    call("push", f"{Path(bundle_dir)}/.", f"{remote}/bundle", what="pushing the bundle")
    out = call("shell", "am", "instrument", "-w", "-e", "bundleDir", f"{remote}/bundle", "-e", "resultsFile",
               f"{remote}/results.json", "-e", "xnnpack", str(xnnpack).lower(), RUNNER,
               what="running the harness (install android_harness/app first)")
    if "FAILURES!!!" in out or "INSTRUMENTATION_FAILED" in out:
        raise Int8Error(f"the harness instrumentation failed on the phone:\n{out.strip()[-2000:]}")
    with tempfile.TemporaryDirectory() as tmp:
        call("pull", f"{remote}/results.json", tmp, what="pulling the results")
        return compare(Path(tmp) / "results.json", bundle_dir)
