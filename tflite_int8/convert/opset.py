"""Old opsets upgraded before anything else touches the graph.

Below opset 13 several ops take as attributes what later opsets take as inputs (Split's sizes, ReduceSum's and
Squeeze/Unsqueeze's axes; Pad's pads and Clip's bounds below 11, Slice's below 10).  onnx2tf translates those
forms less well (an opset-12 ``Split`` with a ``split`` attribute became a float ``SPLIT_V`` in an otherwise int8
file), and the rewrites are tested at opset 17.  So a model below :data:`UPGRADE_BELOW` is upgraded with onnx's
version converter, ONNX Runtime runs both on the check samples, and the largest float change is said in
``adjustments``; a converter failure or a changed output is a one-line :class:`ConversionError` naming the opset
and the node.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConversionError
from ..runtime.reference import run_onnx

UPGRADE_BELOW = 13  # the first opset with sizes and axes as inputs (Split, ReduceSum, Squeeze, Unsqueeze)
# ops whose rewrite (unroll-rnn) needs opset >= 13 forms: onnx2tf writes a float SPLIT_V for an opset-12 attribute
# Split. Other old-opset models are left as they are: upgraded, a paddle2onnx opset-12 Squeeze stops onnx2tf
# (PP-OCRv4's recognizer: "Can not squeeze dim[2]").
NEEDS_UPGRADE = frozenset({"LSTM", "GRU", "RNN"})


def wants_upgrade(model: Any) -> bool:
    """Whether ``model`` is below :data:`UPGRADE_BELOW` and holds ops (:data:`NEEDS_UPGRADE`) that need it."""
    return default_opset(model) < UPGRADE_BELOW and any(n.op_type in NEEDS_UPGRADE for n in model.graph.node)
TOLERANCE = 1e-5  # the largest change allowed, as a fraction of an output's range (an upgrade keeps the math)
MIN_IR_VERSION = 8  # opset 17 needs IR version 8


def default_opset(model: Any) -> int:
    """The model's opset of the default ONNX domain."""
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def upgrade(model: Any, target: int, samples: Sequence[Any], source: Path) -> tuple[Any, str | None]:
    """``model`` at opset ``target`` when it is below :data:`UPGRADE_BELOW` (else unchanged); the adjustment."""
    old = default_opset(model)
    if old >= UPGRADE_BELOW:
        return model, None
    from onnx import version_converter

    try:
        new = version_converter.convert_version(model, target)
    except Exception as exc:  # noqa: BLE001 - onnx raises RuntimeError, ValidationError, IndexError, ...
        raise ConversionError(f"{source.name}: onnx's version converter cannot upgrade opset {old} to {target} "
                              f"({_culprit(model, old, target, str(exc))}: {_first_line(exc)}); re-export the "
                              f"model at opset {UPGRADE_BELOW} or newer", stage="export") from None
    new.ir_version = max(new.ir_version, MIN_IR_VERSION)
    worst, name = _change(model, new, samples)
    if worst["relative"] > TOLERANCE:
        raise ConversionError(f"{source.name}: upgrading opset {old} to {target} with onnx's version converter "
                              f"changed output '{name}' by {worst['max_abs']:.3g} ({worst['relative']:.2g} of its "
                              f"range); re-export the model at opset {UPGRADE_BELOW} or newer", stage="export")
    return new, (f"opset {old} upgraded to {target} with onnx's version converter (ops below opset "
                 f"{UPGRADE_BELOW} take sizes and axes as attributes, which onnx2tf and the rewrites handle less "
                 f"well); max float change (ONNX Runtime before vs after, {len(samples)} sample(s)): "
                 f"{worst['max_abs']:.3g} on '{name}'")


def _change(before: Any, after: Any, samples: Sequence[Any]) -> tuple[dict[str, float], str]:
    """The largest absolute change over the samples, of the output where it is largest (and that output's name)."""
    a, b = run_onnx(before, samples), run_onnx(after, samples)
    names = [o.name for o in before.graph.output]
    worst, at = {"max_abs": 0.0, "relative": 0.0}, names[0]
    for k, name in enumerate(names):
        err = max(float(np.max(np.abs(np.asarray(x[k], np.float64) - np.asarray(y[k], np.float64))))
                  for x, y in zip(a, b))
        peak = max(float(np.max(np.abs(x[k]))) for x in a)
        rel = err / peak if peak > 0 else err
        if rel >= worst["relative"]:
            worst, at = {"max_abs": err, "relative": rel}, name
    return worst, at


def _culprit(model: Any, old: int, target: int, message: str) -> str:
    """The node the failure is about: one whose op the message names, else the first whose op changed between the
    two opsets."""
    from onnx import defs

    nodes = [n for n in model.graph.node if n.domain in ("", "ai.onnx")]
    named = [n for n in nodes if re.search(rf"\b{n.op_type}\b", message)]
    if not named:
        named = [n for n in nodes if _since(defs, n.op_type, old) != _since(defs, n.op_type, target)]
    if not named:
        return "no single node named"
    return f"node '{named[0].name or named[0].output[0]}' ({named[0].op_type})"


def _since(defs: Any, op: str, opset: int) -> int:
    try:
        return defs.get_schema(op, opset).since_version
    except Exception:  # noqa: BLE001 - op not defined at that opset
        return -1


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"
