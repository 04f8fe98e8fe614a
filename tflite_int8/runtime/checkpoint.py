"""Loading user checkpoints into a module, safely, with a report of what matched.

``torch.load(weights_only=True)`` unless the user trusts the file; missing,
unexpected and shape-mismatched keys are reported, and a missing or mismatched
conv/linear weight fails unless partial loading is allowed.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from ..errors import AlreadyQuantizedError, InputError

_STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")


def load_state_dict(path: str | Path, *, trust_pickle: bool = False) -> dict[str, Any]:
    """A flat {name: tensor} dict from a checkpoint file (plain, nested under a usual key, or a saved module)."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise InputError(f"checkpoint {path} is empty")
    with open(path, "rb") as f:
        head = f.read(2)
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":
        raise InputError(f"cannot read checkpoint {path}: not a PyTorch checkpoint (neither torch.save's zip "
                         f"format nor a pickle)")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise InputError(
            f"checkpoint {path} holds Python objects, not only tensors, and was not loaded ({first}). Loading it "
            f"would run code from the file: if you trust it, pass --trust-checkpoint (trust_pickle=True), or "
            f"re-save it with torch.save(model.state_dict(), ...)") from None
    except Exception as exc:  # zip errors, truncated files, EOFError, RuntimeError
        raise InputError(f"cannot read checkpoint {path}: {type(exc).__name__}: {str(exc)[:200]}") from None
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in _STATE_KEYS:
            inner = obj.get(key)
            if isinstance(inner, torch.nn.Module):
                inner = inner.state_dict()
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"checkpoint {path} is not a state dict of tensors (found {type(obj).__name__})")
    check_state_dict_float(obj, str(path))
    return dict(obj)


def load_weights(module: Any, path: str | Path, *, trust_pickle: bool = False,
                 allow_partial: bool = False) -> dict[str, Any]:
    """Load a checkpoint into ``module``; return {loaded, missing, unexpected, mismatched, adjustments}."""
    state = load_state_dict(path, trust_pickle=trust_pickle)
    adjustments = []
    own = module.state_dict()
    if not (set(state) & set(own)) and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        adjustments.append("removed the 'module.' prefix (a DataParallel checkpoint) from every key")
    mismatched = {k: (list(v.shape), list(own[k].shape)) for k, v in state.items()
                  if k in own and tuple(v.shape) != tuple(own[k].shape)}
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    report = {"file": str(path), "loaded": len(state) - len(unexpected) - len(mismatched), "missing": missing,
              "unexpected": unexpected, "mismatched": {k: {"checkpoint": a, "model": b} for k, (a, b) in
                                                       mismatched.items()},
              "adjustments": adjustments}
    critical = [k for k in missing + list(mismatched) if _is_weight_of_layer(module, k)]
    if critical and not allow_partial:
        detail = "; ".join(
            f"{k}: checkpoint {mismatched[k][0]} vs model {mismatched[k][1]}" if k in mismatched else f"{k}: missing"
            for k in critical[:5])
        more = f" (and {len(critical) - 5} more)" if len(critical) > 5 else ""
        raise InputError(
            f"checkpoint {path} does not match the model: {len(critical)} conv/linear weight(s) missing or of another "
            f"shape: {detail}{more}. Is it for another variant or input size? Use the matching checkpoint, or pass "
            f"--allow-partial-weights to convert with those layers left at their initial values")
    usable = {k: v for k, v in state.items() if k in own and k not in mismatched}
    module.load_state_dict(usable, strict=False)
    if allow_partial and (missing or mismatched):
        report["left_random"] = sorted(set(missing) | set(mismatched))
    return report


def _is_weight_of_layer(module: Any, key: str) -> bool:
    import torch

    owner_name, _, leaf = key.rpartition(".")
    if leaf not in ("weight", "bias"):
        return False
    owner = dict(module.named_modules()).get(owner_name)
    return isinstance(owner, (torch.nn.modules.conv._ConvNd, torch.nn.Linear))


def check_state_dict_float(state: dict[str, Any], source: str) -> None:
    """AlreadyQuantizedError if a checkpoint holds quantized tensors."""
    quantized = [k for k, v in state.items() if getattr(v, "is_quantized", False)]
    if quantized:
        raise AlreadyQuantizedError(f"checkpoint {source} holds {len(quantized)} quantized tensor(s) (e.g. "
                                    f"'{quantized[0]}': {state[quantized[0]].dtype}). {AlreadyQuantizedError.ADVICE}")
