"""Writing outputs safely: a destination check, an atomic output folder, JSON that stays valid."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import InputError


def check_destination(out_dir: Path, force: bool) -> None:
    """Refuse an existing ``out_dir`` unless ``force``; refuse unwritable or missing parents."""
    if out_dir.exists() and not force:
        raise InputError(f"output directory {out_dir} already exists; choose another one or pass --force to replace it")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output path {out_dir} exists and is not a directory")
    parent = out_dir.resolve().parent
    if not parent.exists():
        raise InputError(f"the folder {parent} for the output does not exist")
    if not os.access(parent, os.W_OK):
        raise InputError(f"cannot write into {parent}: permission denied")


@contextmanager
def staging(out_dir: Path, force: bool) -> Iterator[Path]:
    """A hidden sibling folder, moved to ``out_dir`` only if the block completes; removed otherwise."""
    parent = out_dir.resolve().parent
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = None
    if out_dir.exists() and force:
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=parent))
        os.replace(out_dir, old / "previous")
    try:
        os.replace(stage, out_dir)
    except OSError:
        if old is not None:
            os.replace(old / "previous", out_dir)
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def finite(obj: Any) -> Any:
    """JSON has no Infinity/NaN: store them as strings."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)) and not np.isfinite(obj):
        return str(float(obj))
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in JSON")


def dump_json(obj: Any) -> str:
    return json.dumps(finite(obj), indent=2, default=_json_default) + "\n"
