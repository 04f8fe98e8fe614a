"""Every file a conversion writes is loaded the way phones load it, and every quantized tensor is linted, before
the file is kept.

:func:`check_file` loads the file in a child process with the builtin kernels and with the XNNPACK delegate
(:func:`tflite_int8.runtime.interpreter.load_facts`) and reads each op's tensors.  The conversion fails, naming
the tensor and the op (and the ONNX node behind it, when onnx2tf's log names it), when

* a quantized tensor has an absurd scale (> :data:`MAX_SCALE`): its range absorbed a huge constant, such as the
  -3.4e38 a max-pool's padding is filled with, so every real value in it rounds to zero;
* a pad op's output range is dominated by its pad constant (its scale :data:`PAD_DOMINANCE` times its input's);
* the XNNPACK delegate (what LiteRT and phones use by default) cannot prepare the file, or the builtin kernels
  cannot run it.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import ConversionError, CrashError, Int8Error
from ..runtime import child
from ..runtime.interpreter import RESOLVERS, load_facts
from .translate import onnx_nodes_for

MAX_SCALE = 1e6
PAD_DOMINANCE = 16.0
QUANTIZED = ("int8", "uint8", "int16")
PAD_OPS = ("PAD", "PADV2", "MIRROR_PAD")


def check_file(path: str | Path, *, node_map: dict[str, str] | None = None,
               worker: child.Worker | None = None) -> dict[str, Any]:
    """Load and lint ``path`` (see module doc); ConversionError naming the tensor/op, else a small summary."""
    path = Path(path)

    def crashed(f: child.Failure) -> Int8Error:
        return CrashError(f"the TFLite interpreter {f.describe()} loading the new {path.name}: the converter wrote "
                          f"a file that does not run", stage="int8_lint", signal=f.signal)

    facts = load_facts(path, detail=True, fail=crashed, worker=worker)
    findings = lint(facts["ops"], node_map or {})
    if findings:
        more = f" ({len(findings) - 1} more finding(s))" if len(findings) > 1 else ""
        raise ConversionError(f"{path.name} was not kept: {findings[0]}{more}", stage="int8_lint")
    if facts["error"]:
        ops = Counter(op["op"] for op in facts["ops"])
        raise ConversionError(
            f"{path.name} was not kept: the {facts['resolver']} cannot prepare it ({facts['error'][:300]}); no "
            f"quantized tensor has an absurd scale, so the op is one of: "
            f"{', '.join(f'{k} x{v}' for k, v in sorted(ops.items())) or 'unknown'}", stage="int8_lint")
    scales = [t["scale"] for op in facts["ops"] for t in op["inputs"] + op["outputs"] if t["dtype"] in QUANTIZED]
    return {"loads_with": list(RESOLVERS), "quantized_tensors": len(scales),
            "largest_scale": max(scales, default=0.0)}


def lint(ops: list[dict[str, Any]], node_map: dict[str, str]) -> list[str]:
    """Messages for tensors with absurd scales and pad ops dominated by their constant, in graph order."""
    found: list[str] = []
    seen: set[str] = set()
    for op in ops:
        for t in op["outputs"] + op["inputs"]:
            if t["dtype"] in QUANTIZED and t["scale"] > MAX_SCALE and t["name"] not in seen:
                seen.add(t["name"])
                role = "output" if t in op["outputs"] else "input"
                found.append(f"tensor '{_short(t['name'])}' ({role} of {op['op']} #{op['index']}{_onnx(t, node_map)}) "
                             f"has {t['dtype']} scale {t['scale']:.3g} (> {MAX_SCALE:.0e}): its range absorbed a huge "
                             f"constant (a padding value such as -3.4e38?), so every real value in it rounds to zero")
        if op["op"] in PAD_OPS and op["inputs"] and op["outputs"]:
            t_in, t_out = op["inputs"][0], op["outputs"][0]
            if t_in["dtype"] in QUANTIZED and t_in["scale"] > 0 and t_out["scale"] > PAD_DOMINANCE * t_in["scale"]:
                found.append(f"{op['op']} #{op['index']}{_onnx(t_out, node_map)}: its output range is dominated by "
                             f"the pad constant (scale {t_out['scale']:.3g} vs the input's {t_in['scale']:.3g}, "
                             f"{t_out['scale'] / t_in['scale']:.3g}x): the padded tensor loses its resolution")
    return found


def _onnx(tensor: dict[str, Any], node_map: dict[str, str]) -> str:
    nodes = onnx_nodes_for(tensor["name"], node_map)
    return f", ONNX node {', '.join(nodes[:2])}" if nodes else ""


def _short(name: str) -> str:
    return name if len(name) <= 90 else name[:87] + "..."
