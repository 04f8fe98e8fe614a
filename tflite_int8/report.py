"""Plain-text summaries of a conversion for the terminal (the CLI prints them)."""
from __future__ import annotations

from typing import Any


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
        desc = "; ".join(f"{n}: cos {m['cosine']:.6f}, max err {m['max_abs_err']:.3g}"
                         + (f", top-1 {m['top1_agreement']:.0%}" if "top1_agreement" in m else "")
                         for n, m in outs.items())
        if stage == "quantize":
            desc = f"{info.get('calibration_samples')} calibration samples"
        lines.append(f"{stage:12} {info.get('seconds', 0):8.1f}  {desc}")
    tensors = report.get("tensors", {})
    for kind in ("inputs", "outputs"):
        for t in tensors.get(kind, []):
            lines.append(f"{kind[:-1]} {t['name']}: {t['dtype']} {t['shape']} scale {t['scale'][0]:.6g} "
                         f"zero point {t['zero_point'][0]}")
    for adj in report.get("adjustments", []):
        lines.append(f"note: {adj}")
    return "\n".join(lines)


def demo_summary(result: dict[str, Any]) -> str:
    conv = result["conversion"]
    agree = result["agreement"]
    lines = [conversion_summary(conv.report, str(conv.out_dir)), ""]
    lines.append(f"Top-1 agreement, int8 vs {agree['reference']}, on {agree['images']} bundled photos: "
                 f"{agree['top1_agreement']:.1%} (mean logits cosine {agree['mean_cosine']:.4f})")
    for r in agree["rows"]:
        if r["float_top1"] != r["int8_top1"]:
            lines.append(f"  disagrees: {r['image']}: float class {r['float_top1']}, int8 class {r['int8_top1']}")
    return "\n".join(lines)
