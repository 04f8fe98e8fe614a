"""report.html: one self-contained page (plots embedded as PNG) from a verification report."""
from __future__ import annotations

import base64
import html
import io
from typing import Any, Sequence

import numpy as np

from ..config.preprocess import PreprocessSpec

MAX_THUMBS = 40
MAX_LAYER_BARS = 25


def render(report: dict[str, Any], records: Sequence[dict[str, Any]]) -> str:
    parts = [_head(report), _summary(report), _ladder(report), _outputs(report)]
    if "classification" in report:
        parts.append(_classification(report, records))
    if "detection" in report:
        parts.append(_detection(report, records))
    if "qat_layers" in report:
        parts.append(_qat_layers(report))
    parts += [_layers(report), _sizes(report), "</body></html>\n"]
    return "\n".join(parts)


def _e(value: Any) -> str:
    return html.escape(str(value))


def _f(value: Any, digits: int = 4) -> str:
    if isinstance(value, (int, float, np.floating)) and np.isfinite(value):
        return f"{value:.{digits}f}"
    return _e(value)


def _none(value: Any) -> Any:
    return "- (no such sample)" if value is None else value


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _figure(w: float, h: float) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(w, h))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _head(report: dict) -> str:
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>tflite-int8 verification</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}}th{{background:#f3f3f3}}
.pass{{color:#fff;background:#2a7d2a;padding:4px 12px}}.fail{{color:#fff;background:#b22;padding:4px 12px}}
.thumbs div{{display:inline-block;margin:4px;font-size:11px;text-align:center;width:110px}}
.boxes div{{display:inline-block;margin:6px;font-size:11px;text-align:center;vertical-align:top}}
.warn{{color:#8a5a00}}.thumbs div.confident{{outline:2px solid #b22}}</style></head><body>
<h1>int8 verification: {_e(report.get('model', ''))}</h1>"""


def _summary(report: dict) -> str:
    badge = '<span class="pass">PASS</span>' if report.get("passed") else '<span class="fail">FAIL</span>'
    fails = "".join(f"<li>{_e(f)}</li>" for f in report.get("failures", []))
    warns = "".join(f'<li class="warn">{_e(w)}</li>' for w in report.get("warnings", []))
    data = report.get("data", {})
    return (f"<p>{badge} reference: <b>{_e(report.get('reference'))}</b>; data: {_e(data.get('description'))}; "
            f"task: {_e(report.get('task'))}; {report.get('seconds', '?')} s</p>"
            + (f"<h3>Failed checks</h3><ul>{fails}</ul>" if fails else "")
            + (f"<h3>Warnings</h3><ul>{warns}</ul>" if warns else ""))


def _ladder(report: dict) -> str:
    rows = []
    for st in report.get("stages", []):
        if "skipped" in st:
            rows.append([_e(st["step"]), "-", "skipped", _e(st["skipped"]), "", "", ""])
        elif "outputs" in st:
            for name, m in st["outputs"].items():
                rows.append([_e(st["step"]), _e(st["compared_with"]), _e(name), _f(m["cosine"], 6),
                             _f(m["cosine_min"], 6), _f(m["sqnr_db"], 1), _f(m["max_abs_err"])])
        else:
            rows.append([_e(st["step"]), "(reference)", "", "", "", "", ""])
    notes = "".join(f"<li>{_e(st['step'])}: {_e(st['note'])}</li>" for st in report.get("stages", []) if "note" in st)
    return ("<h2>Parity ladder</h2><p>Each step against the previous one: a loss shows where it happens.</p>"
            + _table(["step", "vs", "output", "mean cosine", "min cosine", "mean SQNR dB", "max |err|"], rows)
            + (f"<ul>{notes}</ul>" if notes else ""))


def _outputs(report: dict) -> str:
    out = ["<h2>int8 vs reference, per output</h2>"]
    thr = report.get("thresholds", {})
    rows = []
    for name, m in report.get("outputs", {}).items():
        rows.append([_e(name), _f(m["cosine"]), _f(m["sqnr_db"], 2), _f(m["max_abs_err"]), _f(m["mean_abs_err"]),
                     _f(m.get("max_abs_err_steps", "-"), 2), _f(m.get("mean_abs_err_steps", "-"), 3)])
    out.append(_table(["output", f"mean cosine (≥{thr.get('cosine')})", f"mean SQNR dB (≥{thr.get('sqnr_db')})",
                       "max |err|", "mean |err|", "max |err| steps", "mean |err| steps"], rows))
    for name, m in report.get("outputs", {}).items():
        counts = np.asarray(m["histogram"]["counts"])
        if counts.sum() == 0:
            continue
        edges = np.asarray(m["histogram"]["edges_steps"])
        fig, ax = _figure(7, 2.4)
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4a7ab5")
        ax.set_yscale("log")
        ax.set_xlabel("int8 − float, in output quantization steps (ends collect everything beyond ±8)")
        ax.set_ylabel("values")
        ax.set_title(f"error histogram: {name}")
        out.append(_png(fig))
    return "\n".join(out)


def _classification(report: dict, records: Sequence[dict]) -> str:
    c = report["classification"]
    thr = report.get("thresholds", {})
    rows = [[f"top-1 agreement, all {c['samples']} samples", _f(c["top1_agreement"]), thr.get("top1_agreement")]]
    if "confident_samples" in c:
        rows += [[f"top-1 agreement where the float model is confident ({_e(c['confident_rule'])}): "
                  f"{c['confident_samples']} samples", _f(_none(c["top1_agreement_confident"])),
                  thr.get("top1_agreement_confident")],
                 [f"top-1 agreement by margin ({_e(c['margin_rule'])}): {c['margin_samples']} samples",
                  _f(_none(c["top1_agreement_margin"])), ""]]
    rows.append(["top-5 agreement (float top-1 in int8 top-5)", _f(c["top5_agreement"]), thr.get("top5_agreement")])
    if "accuracy_float" in c:
        rows += [["accuracy float", _f(c["accuracy_float"]), ""], ["accuracy int8", _f(c["accuracy_int8"]), ""],
                 ["accuracy drop (points)", _f(c["accuracy_drop_points"], 2), thr.get("accuracy_drop_points")]]
    thumbs = {r["name"]: r.get("thumbnail") for r in records}
    flips = c.get("disagreements", [])
    cells = []
    for d in flips[:MAX_THUMBS]:
        img = thumbs.get(d["sample"])
        pic = f'<img alt="" src="data:image/png;base64,{img}"><br>' if img else ""
        fl = d["float_class"] or d["float_top1"]
        ql = d["int8_class"] or d["int8_top1"]
        p = f" (p {d['float_p']:.2f})" if "float_p" in d else ""
        mark = ' class="confident"' if d.get("confident") else ""
        cells.append(f"<div{mark}>{pic}{_e(d['sample'])}<br>float {_e(fl)}{p} → int8 {_e(ql)}</div>")
    more = len(flips) - MAX_THUMBS
    sure = sum(bool(d.get("confident")) for d in flips)
    names = report.get("class_names")
    where = (f"<p>Class names: {names['count']}, {_e(names['source'])}.</p>" if names else
             "<p>No class names (give --class-names): classes are shown by index.</p>")
    probs = f"<p>Probabilities: {_e(c['probabilities'])}.</p>" if "probabilities" in c else ""
    return ("<h2>Classification</h2>" + _table(["metric", "value", "threshold"], rows) + probs + where
            + f"<h3>Samples where int8 changes the top-1 class ({len(flips)}; {sure} where the float model was "
              f"confident, framed red and shown first)</h3>"
            + f'<div class="thumbs">{"".join(cells)}</div>' + (f"<p>and {more} more</p>" if more > 0 else ""))


def _detection(report: dict, records: Sequence[dict]) -> str:
    d = report["detection"]
    thr = report.get("thresholds", {})
    rows = [["box agreement", _f(d["box_agreement"]), thr.get("box_agreement")],
            ["boxes float / int8 / matched", f"{d['boxes_float']} / {d['boxes_int8']} / {d['boxes_matched']}", ""],
            ["int8 mAP50 / mAP50-95 against the float model's boxes",
             f"{_f(d['map50_vs_float'])} / {_f(d['map50_95_vs_float'])}", ""]]
    if "map50_float" in d:
        rows += [["mAP50 float / int8", f"{_f(d['map50_float'])} / {_f(d['map50_int8'])}", ""],
                 ["mAP50-95 float / int8", f"{_f(d['map50_95_float'])} / {_f(d['map50_95_int8'])}", ""],
                 ["mAP50-95 drop (points)", _f(d["map50_95_drop_points"], 2), thr.get("map50_95_drop_points")]]
    sources = {r["name"]: r.get("source") for r in records}
    cells = []
    for w in d.get("worst_samples", []):
        img = _boxes_png(sources.get(w["sample"]), report, w["float_boxes"], w["int8_boxes"])
        pic = f'<img alt="" src="data:image/png;base64,{img}"><br>' if img else ""
        cells.append(f"<div>{pic}{_e(w['sample'])}<br>agreement {_f(w['agreement'], 2)}</div>")
    return ("<h2>Detection</h2>" + _table(["metric", "value", "threshold"], rows)
            + f"<p>{_e(d['box_agreement_rule'])}</p>"
            + "<h3>Least agreeing images: float boxes green, int8 boxes red (dashed)</h3>"
            + f'<div class="boxes">{"".join(cells)}</div>')


def _boxes_png(source: str | None, report: dict, float_boxes: list, int8_boxes: list) -> str | None:
    """The image at model-input size with both models' boxes drawn (PNG, base64)."""
    if not source:
        return None
    from PIL import Image, ImageDraw

    try:
        spec = PreprocessSpec.from_dict(report["preprocess"])
        im = Image.fromarray(spec.resize_image(Image.open(source))[..., :3].squeeze()).convert("RGB")
    except (OSError, ValueError):
        return None
    draw = ImageDraw.Draw(im)
    for x1, y1, x2, y2, _, c in float_boxes:
        draw.rectangle([x1, y1, x2, y2], outline=(0, 200, 0), width=2)
        draw.text((x1 + 2, y1 + 1), str(int(c)), fill=(0, 200, 0))
    for x1, y1, x2, y2, _, c in int8_boxes:
        for k in range(int(x1), int(x2), 8):  # dashed
            draw.line([k, y1, min(k + 4, x2), y1], fill=(230, 0, 0))
            draw.line([k, y2, min(k + 4, x2), y2], fill=(230, 0, 0))
        for k in range(int(y1), int(y2), 8):
            draw.line([x1, k, x1, min(k + 4, y2)], fill=(230, 0, 0))
            draw.line([x2, k, x2, min(k + 4, y2)], fill=(230, 0, 0))
        draw.text((x2 - 8, y2 - 11), str(int(c)), fill=(230, 0, 0))
    if max(im.size) > 320:
        im.thumbnail((320, 320))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _qat_layers(report: dict) -> str:
    """A QAT conversion: every fake-quantized tensor of the int8 file against the model's own simulation."""
    rows = [[_e(r["onnx"][:80]), _e(r["tflite"][-60:]), f"{r['local_exact']:.2%}", f"{r['local_within_1_step']:.2%}",
             f"{r['exact']:.2%}", f"{r['within_1_step']:.2%}", _f(r["max_steps"], 0), "departs" if r["departs"] else ""]
            for r in report["qat_layers"]]
    return ("<h2>Int8 file vs its QAT simulation, tensor by tensor</h2><p>Each fake-quantized tensor read from the "
            "QDQ model as float fake-quant (ONNX Runtime, graph optimizations off) and from the int8 file (TFLite's built-in kernels), in that tensor's QAT steps, "
            "in graph order. <b>Locally</b>: the simulation's op fed the int8 file's own input tensors — a tensor "
            "that departs here is where a parameter or a kernel's rounding differs. <b>End to end</b>: the "
            "simulation run from the input on its own — one-step rounding differences (int32 bias, fixed-point "
            "requantization) carried and grown through the layers.</p>" +
            _table(["ONNX tensor", "TFLite tensor", "locally equal", "locally within 1 step", "end to end equal",
                    "end to end within 1 step", "largest gap (steps)", ""], rows))


def _layers(report: dict) -> str:
    layers = report.get("layers", [])
    out = [f"<h2>Per-layer diagnosis</h2><p>{_e(report.get('layers_note', ''))}. rmse/scale is each op's own error "
           "in quantization steps: ≈0.29 is ideal (rounding only), above 0.7 the layer is hurt.</p>"]
    if not layers:
        return out[0]
    top = layers[:MAX_LAYER_BARS]
    fig, ax = _figure(8, 0.28 * len(top) + 1.2)
    labels = [_short(r) for r in top][::-1]
    vals = [min(r["rmse_over_scale"], 50.0) for r in top][::-1]
    colors = ["#b22" if v > 0.7 else "#d9a400" if v > 0.45 else "#2a7d2a" for v in vals]
    ax.barh(range(len(vals)), vals, color=colors)
    ax.set_yticks(range(len(vals)), labels, fontsize=7)
    ax.axvline(0.289, color="k", ls="--", lw=0.8, label="ideal 0.29")
    ax.axvline(0.7, color="#b22", ls=":", lw=0.8, label="bad > 0.7")
    ax.set_xlabel("rmse / scale")
    ax.legend(fontsize=7, loc="lower right")
    out.append(_png(fig))
    rows = [[_e(r["op"]), _f(r["rmse_over_scale"], 3), _e(r["verdict"]), _e(", ".join(r["onnx_nodes"]) or "-"),
             f"<small>{_e(r['tensor'][:120])}</small>"] for r in layers[:15]]
    out.append(_table(["op", "rmse/scale", "verdict", "ONNX node", "TFLite tensor"], rows))
    return "\n".join(out)


def _short(row: dict) -> str:
    name = row["onnx_nodes"][0] if row["onnx_nodes"] else row["tensor"].split(";")[0]
    return f"{row['op']} {name[-40:]}"


def _sizes(report: dict) -> str:
    rows = [[_e(r["file"]), _e(r["step"]), f"{r['bytes'] / 1e6:.2f} MB", _f(r["latency_ms_1_thread"], 2)]
            for r in report.get("sizes_latency", [])]
    c = report.get("latency_conditions")
    how = (f"<p>Median of {c['runs']} invokes after {c['warmup']} warm-up ones, {c['threads']} thread, "
           f"{_e(c['delegate'])}, the files interleaved; CPU {_e(c['cpu']['name'])} ({c['cpu']['cores']} cores, "
           f"int8 flags: {_e(', '.join(c['cpu']['int8_flags']) or 'none')}): int8/float32 ratios depend on "
           f"them.</p>" if c else "")
    return "<h2>Size and latency</h2>" + _table(["file", "step", "size", "median invoke ms (1 thread)"], rows) + how
