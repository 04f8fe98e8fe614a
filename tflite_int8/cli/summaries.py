"""Plain-text summaries of a conversion for the terminal (the CLI prints them)."""
from __future__ import annotations

from typing import Any

from ..runtime.describe import counts_text
from ..verify.tasks import flip_text


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def conversion_summary(report: dict[str, Any], out_dir: str) -> str:
    lines = [f"Output: {out_dir}"]
    files = report.get("files", {})
    f32 = report.get("stages", {}).get("translate", {}).get("float32_tflite_bytes")
    lines.append("")
    lines.append(f"{'file':32} {'size':>10} {'vs float32':>10}  verdict")
    for variant, f in files.items():
        ratio = f"{f['bytes'] / f32:.3f}x" if f32 else "-"
        lines.append(f"{f['file']:32} {_mb(f['bytes']):>10} {ratio:>10}  {f['verdict']}")
    lines.append("")
    lines.append(f"{'stage':12} {'seconds':>8}  {'check':40}")
    for stage, info in report.get("stages", {}).items():
        check = info.get("check", info) if stage != "quantize" else {}
        outs = check.get("outputs", {}) if isinstance(check, dict) else {}
        desc = "; ".join(f"{n}: cos {m['cosine']:.6f}" + (f", SQNR {m['sqnr_db']:.1f} dB" if "sqnr_db" in m else "")
                         + f", max err {m['max_abs_err']:.3g}"
                         + (f", top-1 {m['top1_agreement']:.0%}" if "top1_agreement" in m else "")
                         for n, m in outs.items())
        if stage == "quantize":
            ranges = (report.get("recipe") or {}).get("ranges", "minmax")
            desc = f"{info.get('calibration_samples')} calibration samples, " + (
                f"{ranges} activation ranges" if ranges else "the QAT model's own activation ranges")
        elif stage == "rewrite":
            desc = ", ".join(r["rewrite"] for r in info.get("rewrites", []) if r.get("applied")) or "none needed"
        elif stage == "int8_lint":
            desc = "; ".join(f"{k}: loads with XNNPACK, largest scale {v['largest_scale']:.3g}"
                             for k, v in info.get("files", {}).items())
        lines.append(f"{stage:12} {info.get('seconds', 0):8.1f}  {desc}")
    tensors = report.get("tensors", {})
    for kind in ("inputs", "outputs"):
        for t in tensors.get(kind, []):
            quant = (f"scale {t['scale'][0]:.6g} zero point {t['zero_point'][0]}" if t["scale"]
                     else "as it is (integer values, not quantized)")
            lines.append(f"{kind[:-1]} {t['name']}: {t['dtype']} {t['shape']} {quant}")
    sp = report.get("sparsity")
    if sp and sp["float"]["fraction"] > 0.01:
        lines.append(f"sparsity: {sp['float']['fraction']:.1%} of float weights are zero, {sp['int8']['fraction']:.1%} "
                     f"of int8 weights. {sp['note']}")
    q = report.get("qat")
    if q:
        sim = report.get("stages", {}).get("int8_check", {}).get("qat_simulation", {}).get("outputs", {})
        lines.append(f"quantization: the model's own (QAT, not re-calibrated): {q['activations_exact']} of "
                     f"{q['activations_in_tflite']} activation scales and {q['weights_exact']} of "
                     f"{q['weights_in_tflite']} weight grids exactly as trained (the rest: notes below); vs its QDQ "
                     "simulation (float fake-quant): " + "; ".join(_qat_output(n, m) for n, m in sim.items()))
    for adj in report.get("adjustments", []):
        lines.append(f"note: {adj}")
    if report.get("failures"):
        against = ("its QDQ simulation" if report.get("stages", {}).get("int8_check", {}).get("judged_against")
                   == "qat_simulation" else "float32 TFLite")
        lines.append(f"FAILED: the conversion's own int8 check (int8 vs {against}); the files are kept for "
                     "inspection:\n  " + "\n  ".join(report["failures"]))
    return "\n".join(lines)


def demo_summary(result: dict[str, Any]) -> str:
    """The conversion, the verification, and the headline: agreement on photos the calibration never saw."""
    conv, checked = result["conversion"], result["verification"]
    rep = checked.report
    lines = [conversion_summary(conv.report, str(conv.out_dir)), "", verify_summary(checked), ""]
    calib, held = result.get("calibration_photos", []), result.get("verification_photos", [])
    shared = rep.get("hygiene", {}).get("shared_source_files")
    lines.append(f"Held out: calibrated on {len(calib)} bundled photos ({conv.report['calibration']['samples']} "
                 f"samples), verified on the other {len(held)} ({rep['data']['samples']} samples; "
                 f"{shared if shared is not None else '?'} photos shared with calibration).")
    c = rep.get("classification")
    if c:
        sure = c.get("top1_agreement_confident")
        lines.append(f"int8 vs float top-1 agreement on them: {c['top1_agreement']:.1%} overall; "
                     f"{'-' if sure is None else f'{sure:.1%}'} where the float model is confident "
                     f"(top-1 probability >= 0.5, {c.get('confident_samples', 0)} samples)")
    return "\n".join(lines)


def verify_summary(result: Any) -> str:
    rep = result.report
    lines = [f"Verification of {rep['model']} against {rep['reference']}: {rep['data']['description']}"]
    if rep["data"].get("ray"):
        lines.append(ray_line(rep["data"]["ray"]))
    lines.append(f"{'step':16} {'vs':16} {'output':20} {'mean cos':>10} {'min cos':>10} {'SQNR dB':>8} {'max err':>10}")
    for st in rep["stages"]:
        if "skipped" in st:
            lines.append(f"{st['step']:16} skipped: {st['skipped']}")
            continue
        if st.get("note"):
            lines.append(f"{st['step']:16} ({st['note']})")
        for name, m in st.get("outputs", {}).items():
            lines.append(f"{st['step']:16} {st['compared_with']:16} {name[:20]:20} {m['cosine']:10.6f} "
                         f"{m['cosine_min']:10.6f} {m['sqnr_db']:8.1f} {m['max_abs_err']:10.4g}")
            if "within_1_step" in m:
                lines.append(f"{'':16} in output steps: {m['exact']:.2%} equal, {m['within_1_step']:.2%} within 1 "
                             f"step, largest gap {m['max_steps']:.0f}")
    for name, m in rep["outputs"].items():
        steps = f", max err {m['max_abs_err_steps']:.1f} quantization steps" if "max_abs_err_steps" in m else ""
        lines.append(f"int8 vs {rep['reference']}, '{name}': mean cosine {m['cosine']:.4f}, SQNR "
                     f"{m['sqnr_db']:.1f} dB{steps}")
    c = rep.get("classification")
    if c:
        lines += classification_lines(c, rep.get("class_names"))
    d = rep.get("detection")
    if d:
        line = (f"detection: box agreement {d['box_agreement']:.3f} ({d['boxes_matched']} matched of "
                f"{d['boxes_float']} float / {d['boxes_int8']} int8 boxes); int8 mAP50-95 vs float's boxes "
                f"{d['map50_95_vs_float']:.4f}")
        if "map50_float" in d:
            line += (f"\n  mAP50 float {d['map50_float']:.4f}, int8 {d['map50_int8']:.4f}; mAP50-95 float "
                     f"{d['map50_95_float']:.4f}, int8 {d['map50_95_int8']:.4f} ({d['map50_95_drop_points']:+.2f} "
                     f"points drop)")
        lines.append(line)
    if "qat_check" in rep:
        lines.append("int8 vs QAT simulation (float fake-quant), against the float model: " +
                     "; ".join(_qat_output(n, m) for n, m in rep["qat_check"]["outputs"].items()))
    departs = [r for r in rep.get("qat_layers", []) if r["departs"]]
    if "qat_layers" in rep:
        first = (f"; first to depart: {departs[0]['onnx']} ({departs[0]['local_within_1_step']:.1%})"
                 if departs else "")
        lines.append(f"int8 vs QAT simulation, tensor by tensor (each op fed the int8 file's own inputs): "
                     f"{len(rep['qat_layers']) - len(departs)} of {len(rep['qat_layers'])} within 1 step on >= 99% "
                     f"of values{first}")
    lines += _dense_and_text(rep)
    worst = rep.get("layers", [])[:5]
    if worst:
        lines.append("worst layers (rmse/scale; 0.29 ideal, > 0.7 bad):")
        for r in worst:
            node = f" <- ONNX {', '.join(r['onnx_nodes'][:2])}" if r["onnx_nodes"] else ""
            lines.append(f"  {r['rmse_over_scale']:7.3f} {r['op']:18} {r['tensor'][:60]}{node}")
    if result.report_dir:
        lines.append(f"reports: {result.report_dir}/report.json, {result.report_dir}/report.html")
    lines.append("PASSED" if result.passed else "FAILED:\n  " + "\n  ".join(result.failures))
    return "\n".join(lines)


def classification_lines(c: dict[str, Any], names: dict[str, Any] | None, flips: int = 5) -> list[str]:
    """Agreement overall and where the float model is confident, then the flips, confident ones first."""
    def pct(key: str) -> str:
        return "-" if c.get(key) is None else f"{c[key]:.1%}"

    lines = [f"top-1 agreement {pct('top1_agreement')} ({c['samples']} samples), top-5 agreement "
             f"{pct('top5_agreement')}"]
    if "confident_samples" in c:
        lines.append(f"  where the float model is confident ({c['confident_rule']}): top-1 agreement "
                     f"{pct('top1_agreement_confident')} ({c['confident_samples']} samples); by margin "
                     f"({c['margin_rule']}): {pct('top1_agreement_margin')} ({c['margin_samples']} samples)")
    if "accuracy_float" in c:
        lines.append(f"  accuracy float {c['accuracy_float']:.2%}, int8 {c['accuracy_int8']:.2%} "
                     f"({c['accuracy_drop_points']:+.2f} points drop)")
    d = c.get("disagreements", [])
    if d:
        sure = sum(bool(x.get("confident")) for x in d)
        lines.append(f"  {len(d)} sample(s) change top-1 class, {sure} where the float model was confident"
                     f"{'' if names else ' (no class names: give --class-names)'}:")
        lines += [f"    {'!' if x.get('confident') else ' '} {flip_text(x)}" for x in d[:flips]]
        if len(d) > flips:
            lines.append(f"      ... and {len(d) - flips} more (report.json, report.html)")
    return lines


def ray_line(where: dict[str, Any]) -> str:
    """Where the Ray tasks ran, and which shards Ray ran again after losing their worker."""
    line = (f"ran on Ray at {where['address']} ({where['nodes']} node(s), {where['cpus']} CPUs): "
            f"{where['shards']} shards")
    retried = where.get("retried", [])
    if retried:
        line += "; retried after losing their worker: " + ", ".join(
            f"shard {r['shard']} (samples {r['samples'][0]}-{r['samples'][1]}, {r['attempts']} attempts)" for r in retried)
    return line


def _dense_and_text(rep: dict[str, Any]) -> list[str]:
    """The segment, mask and ctc task lines of a verify report."""
    lines = []
    s = rep.get("segment")
    if s:
        lines.append(f"segment '{s['output']}': per-pixel class agreement {s['pixel_agreement']:.2%}, mean IoU "
                     f"{s['miou']:.4f} over {s['classes_present']} classes (int8 vs float argmax)")
    m = rep.get("mask")
    if m:
        for name, o in m["outputs"].items():
            skipped = f", {len(o['skipped_samples'])} empty in both skipped" if o["skipped_samples"] else ""
            lines.append(f"mask '{name}' (> {m['threshold']}): IoU int8 vs float {o['mask_iou']:.4f} over "
                         f"{o['samples_judged']} samples{skipped}")
    c = rep.get("ctc")
    if c:
        if c["lines"]:
            lines.append(f"ctc '{c['output']}': decoded text identical on {c['lines_matched']} of {c['lines']} lines "
                         f"({c['sequence_match']:.1%}), character error rate {c['char_error_rate']:.2%}")
        else:
            lines.append(f"ctc '{c['output']}': the float model reads no text on any sample")
        for ch in c["changed"][:5]:
            lines.append(f"  {ch['sample']}: float {ch['float']!r} -> int8 {ch['int8']!r}")
    return lines


def inspect_summary(info: dict[str, Any]) -> str:
    lines = [f"{info['path']}: {info['verdict']} ({info['size_bytes'] / 1e6:.2f} MB)", ""]
    lines.append(f"{'':7} {'name':24} {'shape':18} {'dtype':8} {'quantization':34} float range")
    for kind, key in (("inputs", "accepts"), ("outputs", "represents")):
        for t in info[kind]:
            if t["scale"]:
                axis = (f"per-axis ({len(t['scale'])} scales, dim {t['quantized_dimension']})"
                        if len(t["scale"]) > 1 else "per-tensor")
                q = f"scale {t['scale'][0]:.4g}, zp {t['zero_point'][0]} {axis}"
            else:
                q = "none"
            rng = t.get(key)
            verb = "accepts" if kind == "inputs" else "represents"
            span = f"{verb} {rng[0]:.4g}..{rng[1]:.4g}" if rng else "-"
            lines.append(f"{kind[:-1]:7} {t['name'][:24]:24} {str(t['shape']):18} {t['dtype']:8} {q:34} {span}")
    lines += ["", "ops: " + counts_text(info["op_histogram"])]
    if info.get("input_casts"):
        lines.append(f"input casts: {info['input_casts']} (an integer input CAST to float32 and QUANTIZEd at once: "
                     f"no float math, not counted as a float op)")
    x = info["xnnpack"]
    lines.append(f"XNNPACK: {x['partitions']} partition(s); takes {sum(x['delegated'].values())} ops, falls back on: "
                 f"{counts_text(x['fallback'])}")
    if info["float_op_detail"]:
        lines.append("float ops (why it is not full-integer):")
        for d in info["float_op_detail"][:20]:
            lines.append(f"  #{d['index']} {d['op']}: " + ", ".join(d["float_tensors"][:4]))
        if len(info["float_op_detail"]) > 20:
            lines.append(f"  ... and {len(info['float_op_detail']) - 20} more")
    sigs = "; ".join(f"{k}({', '.join(v.get('inputs', []))}) -> {', '.join(v.get('outputs', []))}"
                     for k, v in info["signatures"].items())
    lines.append(f"signatures: {sigs or 'none'}")
    lines.append("metadata: " + ", ".join(f"{k}={v}" for k, v in info["metadata"].items()))
    lines += feeding_lines(info)
    return "\n".join(lines)


def feeding_lines(info: dict[str, Any]) -> list[str]:
    """How to feed the model, from its tflite_int8 metadata: names, layout change, preprocessing, quantization."""
    meta = info.get("feeding")
    if not meta:
        return ["how to feed: not described (no tflite_int8 metadata): see the inputs above"]
    tensors = {t["name"]: t for t in info["inputs"] + info["outputs"]}
    lines = ["", "how to feed (tflite_int8 metadata):"]
    for i in meta.get("inputs", []):
        src, _, dst = (i.get("layout_change") or "").partition(" -> ")
        shape = f"{i['shape']} {src} -> TFLite {i['tflite_shape']} {dst}" if dst else f"{i['shape']}"
        kept = f" {i['layout']}, as in the source model" if i.get("layout") else ", layout as in the source model"
        lines.append(f"  input '{i['name']}' ({i['kind']}): {shape}" + ("" if i.get("layout_change") else kept))
        p = i.get("preprocess")
        if p:
            mean = ",".join(f"{v:.4g}" for v in p["mean"])
            std = ",".join(f"{v:.4g}" for v in p["std"])
            lines.append(f"    {p['channels']} pixels, {p['resize']} to {p['size'][0]}x{p['size'][1]}, float = "
                         f"(pixel / {p['pixel_max']:g} - mean) / std, mean {mean}, std {std}")
        elif i.get("dtype", "float32") != "float32":
            lines.append(f"    {i['dtype']} values (token ids, masks, indices) as the source model takes them: set as "
                         f"they are, never quantized (values must fit int32)")
        else:
            lines.append("    float values as the source model takes them (no mean/std)")
        lines.append(f"    {_quant_text(tensors.get(i['name']), 'in')}")
    for o in meta.get("outputs", []):
        back = o.get("to_source")
        layout = (f", TFLite {o['tflite_shape']} -> source {o['shape']}: transpose {tuple(back)}"
                  if back and back != sorted(back) else "")
        quant = _quant_text(tensors.get(o["name"]), "out")
        lines.append(f"  output '{o['name']}': {o['tflite_shape']}{layout}; {quant}")
    return lines


def _quant_text(t: dict[str, Any] | None, way: str) -> str:
    if not t or not t["scale"] or len(t["scale"]) != 1:
        return f"{t['dtype'] if t else '?'} as it is"
    s, z = t["scale"][0], t["zero_point"][0]
    if way == "in":
        return f"{t['dtype']} = round(float / {s:.6g}) {'-' if z < 0 else '+'} {abs(z)} (the Runner does this)"
    return f"float = ({t['dtype']} {'+' if z < 0 else '-'} {abs(z)}) * {s:.6g}"


def compare_summary(a: dict[str, Any], b: dict[str, Any], rows: list) -> str:
    width = max(len(str(r[1])) for r in rows) + 2
    lines = [f"  {'':22} {'A: ' + a['path'][-width + 3:]:{width}} B: {b['path']}"]
    for field, x, y, differs in rows:
        lines.append(f"{'!' if differs else ' '} {field[:22]:22} {x:{width}} {y}")
    n = sum(r[3] for r in rows)
    lines.append(f"{n} difference(s) (marked !)" if n else "no differences")
    return "\n".join(lines)


def android_summary(report: dict[str, Any], *, results_path: str | None = None) -> str:
    """A device comparison (android compare/run/arm64-check) in a few lines."""
    dev = report.get("device", {})
    lines = [f"device: {dev.get('runner', '?')} on {dev.get('arch', '?')} ({dev.get('runtime', '?')})"]
    iq = report.get("input_quantization") or {}
    if iq:
        lines.append(f"input quantization: {iq.get('mismatches', 0)} of {iq.get('checked', 0)} values differ "
                     f"from the host adapter")
    lines.append(f"{'output':<28} {'max step diff':>13} {'differing':>14} {'min cosine':>11} {'top-1':>6}")
    for o in report["outputs"]:
        top1 = f"{o['top1_agreement']:.0%}" if "top1_agreement" in o else "-"
        lines.append(f"{o['name'][:28]:<28} {o['max_step_diff']:>13} {o['differing_values']:>6}/{o['values']:<7} "
                     f"{o['min_cosine']:>11.6f} {top1:>6}")
    for s in report.get("host_kernel_spread", []):
        lines.append(f"  for scale: on the host, '{s['name']}' differs by up to {s['xnnpack_vs_builtin_max_step_diff']} "
                     f"steps between XNNPACK and the builtin kernels, {s['xnnpack_vs_reference_max_step_diff']} vs "
                     f"the reference kernels (kernel rounding, not errors)")
    for t in report.get("timing", []):
        lines.append(f"latency ({'XNNPACK' if t['xnnpack'] else 'builtin kernels'}, {t['threads']} thread): "
                     f"median {t['median_ms']:.1f} ms over {t['runs']} runs")
    arm = report.get("arm64")
    if arm:
        setup = (f"built the root in {arm['build_seconds']} s" if arm.get("built") else "reused the root") + \
            (f", installed LiteRT in {arm['install_seconds']} s" if arm.get("installed") else "")
        lines.append(f"arm64: {setup} ({arm['root']}); bundle run {arm['run_seconds']} s, total "
                     f"{arm['total_seconds']} s")
    if results_path:
        lines.append(f"results: {results_path} (check again with `tflite-int8 android compare`)")
    lines += [f"  - {f}" for f in report["failures"]]
    if report.get("note"):
        lines.append(f"note: {report['note']}")
    lines.append("PASSED" if report["passed"] else "FAILED")
    return "\n".join(lines)


def recovery_summary(result: Any) -> str:
    """The strategy table of ``recover``: accuracy, size, latency and its ratio to the baseline int8 file; under
    each row the task metric that decided it."""
    lines = [f"{'strategy':16} {'passed':6} {'top-1':>7} {'cosine':>8} {'SQNR dB':>8} {'MB':>6} {'ms':>8} "
             f"{'x base':>7}  how"]
    over = []
    for a in result.attempts:
        if a.get("error"):
            lines.append(f"{a['strategy']:16} {'error':6} {a['error'][:200]}")
            continue
        top1 = f"{a['top1_agreement']:.1%}" if a.get("top1_agreement") is not None else "-"
        ms = f"{a['latency_ms_1_thread']:.3g}" if a.get("latency_ms_1_thread") is not None else "-"
        ratio = f"{a['latency_ratio']:.2f}x" if a.get("latency_ratio") is not None else "-"
        if a.get("within_budget") is False:
            ratio += "!"
            if a["passed"]:
                over.append(a)
        lines.append(f"{a['strategy']:16} {str(a['passed']):6} {top1:>7} {a['mean_cosine']:8.4f} "
                     f"{a['sqnr_db']:8.1f} {a['bytes'] / 1e6:6.2f} {ms:>8} {ratio:>7}  {a['how']}")
        if a.get("decided_by"):
            lines.append(f"{'':16} decided by {a['decided_by']}")
    budget = result.max_latency_ratio
    lines.append("ms: median invoke, 1 thread, XNNPACK, each attempt timed interleaved with the baseline int8 file; "
                 + (f"! over the latency budget ({budget:g}x)" if budget is not None else "no latency budget"))
    for a in over:
        lines.append(f"{a['strategy']} passed verification but cannot win: {a['latency_note']} (accept it with "
                     f"--max-latency-ratio {a['latency_ratio'] * 1.05:.3g})")
    if getattr(result, "stopped", None):
        lines.append(f"stopped after the baseline: {result.stopped}")
    if result.winner:
        full = "" if result.winner != "float-fallback" else " (NOT full-integer: float ops inside)"
        lines.append(f"winner: {result.winner}{full}; files and recovery.json in {result.out_dir}")
    else:
        within = " within the latency budget" if over else ""
        lines.append(f"no strategy passed{within}; every attempt is in {result.out_dir} (recovery.json)")
    return "\n".join(lines)


def batch_summary(doc: dict[str, Any], out_dir: str) -> str:
    """The model table of ``batch``, the worst result last."""
    lines = [f"{'model':20} {'result':14} {'top-1':>7} {'cosine':>8} {'SQNR dB':>8} {'MB':>6} {'s':>6}  note"]
    for r in doc["models"]:
        top1 = f"{r['top1_agreement']:.1%}" if r.get("top1_agreement") is not None else "-"
        cos = f"{r['cosine']:8.4f}" if r.get("cosine") is not None else f"{'-':>8}"
        sqnr = f"{r['sqnr_db']:8.1f}" if r.get("sqnr_db") is not None else f"{'-':>8}"
        size = f"{r['int8_bytes'] / 1e6:6.2f}" if r.get("int8_bytes") else f"{'-':>6}"
        note = (f"{r['stage']}: {r['error']}" if r.get("error") else "; ".join(r.get("failures", [])))
        first = note.splitlines()[0] if note else ""
        if len(first) > 160 or first != note:
            first = first[:160] + "... (whole in batch.json)"
        lines.append(f"{r['model'][:20]:20} {r['status']:14} {top1:>7} {cos} {sqnr} {size} {r['seconds']:6.1f}  "
                     f"{first}")
    for r in doc["models"]:
        lines += [f"warning ({r['model']}): {w}" for w in r.get("warnings", [])]
    worst = {0: "every model passed", 1: "a check failed", 2: "a model had bad input or did not convert"}
    lines.append(f"exit code {doc['exit_code']} ({worst[doc['exit_code']]}); one folder per model and batch.json in "
                 f"{out_dir}")
    if doc["executor"].get("executor") == "ray":
        where = doc["executor"]
        lines.append(f"ran on Ray at {where['address']} ({where['nodes']} node(s), {where['cpus']} CPUs)")
    return "\n".join(lines)


def _qat_output(name: str, m: dict) -> str:
    """One output of a QAT conversion: cosine (and top-1) with the float model, int8 and simulation, and the
    share of int8 values within one output step of the simulation (reported, not judged)."""
    q, sim = m.get("int8_vs_float", {}), m.get("simulation_vs_float", {})
    text = f"{name}: cosine int8 {q.get('cosine', float('nan')):.4f} / simulation {sim.get('cosine', float('nan')):.4f}"
    if "top1_agreement" in q:
        text += f", top-1 {q['top1_agreement']:.1%} / {sim['top1_agreement']:.1%}"
    return text + (f", {m['within_1_step']:.1%} within 1 output step" if "within_1_step" in m else "")
