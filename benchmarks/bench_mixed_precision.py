"""Few-layer mixed precision with ai-edge-quantizer (AEQ) on MobileNetV2, against the latency budget (issue 19,
item 3).

Same split as bench_adaround: calibration on the even half of the bundled photos (10 views each, 120 samples),
verification on 25 views of each odd photo (300 samples never calibrated on), against the float model (ONNX
Runtime on the exported ONNX).  Rows: the converter's int8 file with min/max and with MSE activation ranges; AEQ
on the same float32 .tflite (model_float32.tflite) with the same 120 samples and global min/max ranges
(``qsv_utils.min_max_update``; AEQ's ``Quantizer.calibrate`` keeps a moving average instead): a8w8 everywhere,
a8w8 + a16w8 on the k most sensitive ops, on the k most sensitive *tensors* (their producer and every consumer in
a16w8, so the tensor itself is stored in int16), on the last ops of the graph (a contiguous int16 run), and a16w8
everywhere.  Sensitivity: the project's own per-layer diagnosis (``verify``'s ``report["layers"]``, TF's
quantization debugger, worst first: what ``recover``'s float fallback uses), computed on calibration photos.

Needs ai-edge-quantizer 0.10.0 and ai-edge-litert 2.3.0 (not in the project's pins: litert 2.1.0 cannot run a
mixed a16w8/a8w8 file, "QUANTIZE failed to prepare"):

    PYTHONPATH=. python -m benchmarks.bench_mixed_precision [--json out.json]
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.common import confident_cell

CALIB_VIEWS, VERIFY_VIEWS = 10, 25
MODEL = "tflite_int8.zoo:mobilenet_v2"
KS = (1, 3, 5, 10)
TENSOR_KS = (1, 3)
TAILS = (2, 3)  # the last ops of the graph: MEAN + FULLY_CONNECTED, then the last 1x1 conv too
DIAGNOSIS_VIEWS = 2  # 24 calibration samples for the diagnosis (it uses the first 16 as debug inputs)


def _op_config(bits: int) -> dict[str, Any]:
    return {"activation_tensor_config": {"num_bits": bits, "symmetric": bits == 16, "granularity": "TENSORWISE",
                                         "dtype": "INT"},
            "weight_tensor_config": {"num_bits": 8, "symmetric": True, "granularity": "CHANNELWISE", "dtype": "INT"},
            "compute_precision": "INTEGER", "explicit_dequantize": False, "skip_checks": False,
            "min_weight_elements": 0}


def recipe(int16_outputs: list[str] = (), everywhere: int = 8) -> list[dict[str, Any]]:
    """An AEQ recipe: ``everywhere``-bit activations on every op, a16w8 on the ops writing ``int16_outputs``
    (exact output tensor names; AEQ matches ``regex`` with re.search on the op's scope, its output names joined
    and ended by ``;``; the last match wins; an unsupported entry is skipped silently: see ``int16_in_file``)."""
    entry = {"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize",
             "op_config": _op_config(everywhere)}
    return [entry] + [{**entry, "regex": f"^{re.escape(n)};$", "op_config": _op_config(16)} for n in int16_outputs]


@dataclass(frozen=True)
class AeqJob:
    """Calibrate (global min/max) and quantize ``float_path`` with ``recipe`` into ``out``; in a child process
    (AEQ calibrates with the native interpreter).  Returns the seconds it took."""

    float_path: str
    calib_npy: str
    recipe: str  # JSON
    out: str

    def __call__(self, progress: Any) -> float:
        from ai_edge_quantizer import calibrator, quantizer
        from ai_edge_quantizer.utils import qsv_utils

        t = time.perf_counter()
        qt = quantizer.Quantizer(self.float_path, json.loads(self.recipe))
        cal = calibrator.Calibrator(qt._float_model_buffer, num_threads=1, qsv_update_func=qsv_utils.min_max_update)
        name = _io(self.float_path)[0]
        cal.calibrate({"serving_default": [{name: x} for x in np.load(self.calib_npy)]}, qt._recipe_manager)
        qt.quantize(cal.get_model_qsvs(), enable_progress_report=False).export_model(self.out, overwrite=True)
        return time.perf_counter() - t


def _io(path: str) -> tuple[str, str]:
    from ai_edge_litert.interpreter import Interpreter

    sig = Interpreter(model_path=str(path)).get_signature_list()["serving_default"]
    return sig["inputs"][0], sig["outputs"][0]


def _ops(path: str | Path, delegate: bool = False) -> list[dict[str, Any]]:
    """The file's ops in order: name, output tensor names, input/output tensor indices, dtypes (DELEGATE nodes
    included when ``delegate``: XNNPACK, the default, applied)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kind = OpResolverType.AUTO if delegate else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(model_path=str(path), num_threads=1, experimental_op_resolver_type=kind)
    it.allocate_tensors()
    td = {t["index"]: t for t in it.get_tensor_details()}
    ops = []
    for d in it._get_ops_details():
        ins, outs = [i for i in d["inputs"] if i in td], [i for i in d["outputs"] if i in td]
        ops.append({"op": d["op_name"], "outputs": [td[i]["name"] for i in outs], "in_idx": ins, "out_idx": outs,
                    "sig": f'{d["op_name"]}({",".join(td[i]["dtype"].__name__ for i in ins)}->'
                           f'{",".join(td[i]["dtype"].__name__ for i in outs)})'})
    return ops


def inspect(path: str | Path) -> dict[str, Any]:
    """Op dtype counts, whether any op computes in float, I/O dtypes, XNNPACK partitions."""
    from ai_edge_litert.interpreter import Interpreter

    ops = _ops(path)
    it = Interpreter(model_path=str(path))
    return {"op_dtypes": dict(collections.Counter(o["sig"] for o in ops)),
            "float_ops": sum("float" in o["sig"] for o in ops),
            "int16_in_file": sum("int16" in o["sig"] and o["op"] not in ("QUANTIZE", "DEQUANTIZE") for o in ops),
            "io": [d["dtype"].__name__ for d in it.get_input_details() + it.get_output_details()],
            "xnnpack_partitions": sum(o["op"] == "DELEGATE" for o in _ops(path, delegate=True))}


def map_layers(layers: list[dict[str, Any]], float_path: Path) -> list[dict[str, Any]]:
    """Each diagnosed layer (the debugger's int8 file) mapped to its op in model_float32.tflite.

    Both files come from the same SavedModel, but the converter names a fused op's output after all the graph
    nodes it fused, and the last of them differs (the int8 file's ``Const_109`` bias against the float file's
    ``model_2/tf.math.add/Add/y``), and the int8 file's output is ``PartitionedCall:0`` against ``output``.  Rule:
    the same first ``;``-separated node name and op type; else the one op of that type in the float file."""
    ops = _ops(float_path)
    mapped = []
    for r in layers:
        same = [o for o in ops if o["op"] == r["op"] and o["outputs"][0].split(";")[0] == r["tensor"].split(";")[0]]
        same = same or [o for o in ops if o["op"] == r["op"]]
        if len(same) == 1:
            mapped.append({**r, "float_output": same[0]["outputs"][0], "index": ops.index(same[0])})
    return mapped


def tensor_run(ops: list[dict[str, Any]], index: int) -> list[str]:
    """Output names of op ``index`` and of every op reading its output: all of them a16w8 keeps that tensor int16."""
    out = set(ops[index]["out_idx"])
    return [ops[index]["outputs"][0]] + [o["outputs"][0] for o in ops if out & set(o["in_idx"])]


@dataclass(frozen=True)
class MeasureJob:
    """Score one file against the float reference logits and time it interleaved with the baseline; in a child
    process (an interpreter may crash on an unusual mixed file)."""

    base: str
    path: str
    reference_npy: str
    held_out: tuple[str, ...]
    spec: Any

    def __call__(self, progress: Any) -> dict[str, Any]:
        from benchmarks.bench_default import classification_scores
        from tflite_int8.data.readers import open_reader
        from tflite_int8.runtime.adapter import Runner
        from tflite_int8.runtime.latency import median_latency_ms

        runner = Runner(self.path, self.spec, trusted=True)
        test = [s.x for s in open_reader(list(self.held_out), self.spec, views=VERIFY_VIEWS, seed=1, warn_few=False)]
        got = np.concatenate([next(iter(runner(x).values())) for x in test])
        base_ms, ms = median_latency_ms([self.base, self.path])
        return {**classification_scores(np.load(self.reference_npy), got), **inspect(self.path),
                "latency_ms": ms, "baseline_ms": base_ms, "latency_ratio": ms / base_ms}


def run(save: Callable[[dict], None] = lambda r: None) -> dict[str, Any]:
    from tflite_int8 import Recipe, convert, load_conversion, verify
    from tflite_int8.convert.converter import calibration_batches
    from tflite_int8.data.images import list_images
    from tflite_int8.data.readers import default_data_dir, open_reader
    from tflite_int8.recover.strategies import MAX_LATENCY_RATIO
    from tflite_int8.runtime import child
    from tflite_int8.runtime.latency import conditions
    from tflite_int8.runtime.reference import run_onnx

    photos = list_images(default_data_dir()).paths
    calib, held_out = photos[0::2], photos[1::2]
    out: dict[str, Any] = {"conditions": conditions(), "max_latency_ratio": MAX_LATENCY_RATIO, "rows": {}}
    with tempfile.TemporaryDirectory(prefix="bench-mixed-") as tmp, child.Worker() as worker:
        tmp = Path(tmp)
        convs, seconds = {}, {}
        for ranges in ("minmax", "mse"):
            t = time.perf_counter()
            extra = ("float32", "int16x8") if ranges == "minmax" else ("float32",)  # int16x8: the reference
            convs[ranges] = convert(MODEL, tmp / ranges, data=calib, views=CALIB_VIEWS,
                                    recipe=Recipe(ranges=ranges, variants=extra))
            seconds[ranges] = time.perf_counter() - t
        base = convs["minmax"]
        _, spec = load_conversion(base.out_dir)
        f32 = base.out_dir / "model_float32.tflite"
        reader = open_reader(calib, spec, views=CALIB_VIEWS, warn_few=False)
        batches = calibration_batches(reader, spec)
        np.save(tmp / "calib.npy", np.stack([batches.batch(s)[0] for s in reader]))
        test = [s.x for s in open_reader(held_out, spec, views=VERIFY_VIEWS, seed=1, warn_few=False)]
        np.save(tmp / "reference.npy", np.concatenate([r[0] for r in run_onnx(base.out_dir / "model.onnx", test)]))
        with warnings.catch_warnings():  # diagnosed on calibration photos on purpose: "verification overlaps"
            warnings.simplefilter("ignore")
            layers = verify(base.out_dir, data=calib, views=DIAGNOSIS_VIEWS, layers=True).report["layers"]
        ranked = map_layers(layers, f32)
        ops = _ops(f32)
        out["ranking"] = [{k: r[k] for k in ("op", "tensor", "float_output", "rmse_over_scale", "onnx_nodes")}
                          for r in ranked[:max(KS)]]
        out["unmapped_layers"] = [r["tensor"] for r in layers if r["tensor"] not in {m["tensor"] for m in ranked}]

        def measure(name: str, how: str, path: Path, info: dict[str, Any]) -> None:
            try:
                m = worker.call(MeasureJob(str(base.int8_path), str(path), str(tmp / "reference.npy"),
                                           tuple(map(str, held_out)), spec), what="scoring", stage="measure")
                m["within_budget"] = m["latency_ratio"] <= MAX_LATENCY_RATIO
            except Exception as exc:  # one bad row must not lose the others
                m = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            out["rows"][name] = {"how": how, **info, **m}
            save(out)

        def aeq(name: str, how: str, int16: list[str], everywhere: int = 8) -> None:
            kind = {"kind": "int16" if everywhere == 16 else "mixed" if int16 else "int8",
                    "int16_ops": "all" if everywhere == 16 else len(int16)}
            for n in int16:  # an exact name must match exactly one op output, or the entry is silently skipped
                if sum(n in o["outputs"][:1] for o in ops) != 1:
                    raise RuntimeError(f"{n!r} is not the output of exactly one op of {f32}")
            dst = tmp / f"{name}.tflite"
            try:
                secs = worker.call(AeqJob(str(f32), str(tmp / "calib.npy"), json.dumps(recipe(int16, everywhere)),
                                          str(dst)), what="ai-edge-quantizer", stage="aeq")
            except Exception as exc:
                out["rows"][name] = {"how": how, **kind, "error": f"{type(exc).__name__}: {exc}"}
                save(out)
                return
            measure(name, how, dst, {"seconds": round(secs, 1), **kind, "int16_outputs": int16})

        for ranges, conv in convs.items():
            measure(f"convert-{ranges}", f"TF converter, {ranges} ranges (model_int8.tflite)", conv.int8_path,
                    {"seconds": round(seconds[ranges], 1), "kind": "int8", "int16_ops": 0})
        measure("convert-int16x8", "TF converter int16x8, min/max ranges (model_int16x8.tflite, the same conversion)",
                base.out_dir / "model_int16x8.tflite", {"seconds": round(seconds["minmax"], 1), "kind": "int16",
                                                        "int16_ops": "all"})
        aeq("aeq-a8w8", "AEQ a8w8 everywhere", [])
        for k in KS:
            aeq(f"aeq-top{k}-ops", f"AEQ a8w8 + a16w8 on the {k} most sensitive op(s)",
                [r["float_output"] for r in ranked[:k]])
        for k in TENSOR_KS:
            names = list(dict.fromkeys(n for r in ranked[:k] for n in tensor_run(ops, r["index"])))
            aeq(f"aeq-top{k}-tensors", f"AEQ a16w8 on the {k} most sensitive tensor(s): producer + consumers", names)
        for n in TAILS:
            aeq(f"aeq-last{n}", f"AEQ a16w8 on the last {n} ops ({', '.join(o['op'] for o in ops[-n:])})",
                [o["outputs"][0] for o in ops[-n:]])
        aeq("aeq-a16w8", "AEQ a16w8 everywhere (like int16x8)", [], everywhere=16)
    return out


def table(r: dict[str, Any]) -> list[str]:
    lines = ["| row | int16 ops asked / in file | top-1 agreement | confident (n) | logits cosine | ms (1 thread) | x baseline | "
             f"within {r['max_latency_ratio']:g}x | XNNPACK partitions | float ops | I/O | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in r["rows"].items():
        if "error" in m:
            lines.append(f"| {name}: {m['how']} | {m.get('int16_ops', '-')} | failed: {m['error'][:150]} |"
                         + " |" * 9)
            continue
        lines.append(f"| {name}: {m['how']} | {m['int16_ops']} / {m['int16_in_file']} | {m['top1_agreement']:.1%} | "
                     f"{confident_cell(m)} | {m['cosine']:.4f} | "
                     f"{m['latency_ms']:.2f} | {m['latency_ratio']:.2f}x | {'yes' if m['within_budget'] else 'no'} | "
                     f"{m['xnnpack_partitions']} | {m['float_ops']} | {'/'.join(m['io'])} | {m['seconds']:.0f} |")
    return lines


def conclusion(r: dict[str, Any]) -> str:
    ok = {n: m for n, m in r["rows"].items() if "error" not in m}
    int8 = max((m for m in ok.values() if m["kind"] == "int8"), key=lambda m: m["top1_agreement"])
    mixed = [(n, m) for n, m in ok.items() if m["kind"] == "mixed" and m["within_budget"]]
    better = [(n, m) for n, m in mixed if m["top1_agreement"] > int8["top1_agreement"]]
    text = (f"Best int8 row: {int8['how']}, {int8['top1_agreement']:.1%} top-1 agreement. Mixed rows within "
            f"{r['max_latency_ratio']:g}x: {', '.join(n for n, _ in mixed) or 'none'}. ")
    if better:
        n, m = max(better, key=lambda x: x[1]["top1_agreement"])
        return text + f"Best of them: {n}, {m['top1_agreement']:.1%} at {m['latency_ratio']:.2f}x: it beats int8."
    return text + "None of them beats the best int8 row."


def section(r: dict[str, Any]) -> list[str]:
    """The BENCHMARKS.md section: machine and CPU flags, the table, the ranking used, a conclusion."""
    from importlib.metadata import version

    from benchmarks.common import machine

    cpu = r["conditions"]["cpu"]
    ranking = "; ".join(f"{i + 1}. {x['op']} `{x['float_output'].split(';')[0]}` ({x['rmse_over_scale']:.2f})"
                        for i, x in enumerate(r["ranking"]))
    return ["## Few-layer mixed precision with ai-edge-quantizer (MobileNetV2, "
            "`python -m benchmarks.bench_mixed_precision`; issue 19 item 3)", "",
            f"{machine()}, ai-edge-quantizer {version('ai-edge-quantizer')}; CPU flags "
            f"{', '.join(cpu.get('int8_flags', cpu.get('flags', [])))}. Calibration: even half of the bundled photos "
            f"x {CALIB_VIEWS} views (120 samples, global min/max in every AEQ row); verification: {VERIFY_VIEWS} "
            "views of each odd photo (300 samples), against the float model. AEQ rows quantize the converter's "
            "model_float32.tflite. Sensitivity ranking (the project's per-layer diagnosis, rmse/scale, worst first, "
            f"on calibration photos): {ranking}. Latency: interleaved with the baseline (convert-minmax) int8 file, "
            "1 thread, XNNPACK, median; the machine was shared (noisy), ratios are what count.", "", *table(r), "",
            conclusion(r), ""]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()

    def save(res: dict) -> None:
        if a.json:
            a.json.write_text(json.dumps(res, indent=2, default=str))

    res = run(save)
    save(res)
    print("\n".join(table(res)))
    print("\n" + conclusion(res))


if __name__ == "__main__":  # through the module name, so the child processes can unpickle its jobs
    from benchmarks.bench_mixed_precision import main as _main

    _main()
