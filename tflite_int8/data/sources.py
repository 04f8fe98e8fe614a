"""Which data feeds which model input: photos for image inputs, arrays for the others.

``--data`` (``data=``) is a folder of images, a list of image files, a ``.npy`` (a single-input model), a ``.npz``
(one array per input, named after it) or a mapping ``{input name: folder | .npy | .npz}``; the key ``""`` holds
unnamed sources (a path or a list of paths: a ``.npz`` feeds the inputs it has arrays for, a folder the one image
input, a ``.npy`` the one input left).  :func:`assign_sources` turns any of these into one source per input, or
an InputError naming the input that has no data, or the name that is no input.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError

FOLDER, FILES, ARRAY = "folder", "files", "array"
Assigned = tuple[str, Any, "str | None"]  # (kind, path or list of paths, .npz member name)


def npz_names(path: str | Path) -> list[str]:
    """The array names in a .npz file (InputError naming the file when it cannot be read)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"calibration array {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return list(npz.files)
    except Exception as exc:  # BadZipFile, OSError, ValueError
        raise InputError(f"cannot read {path} as a .npz array: {type(exc).__name__}: {exc}") from None


def assign_sources(source: Any, table: Any = None) -> dict[str, Assigned]:
    """{input name: (kind, where, npz key)} for every input of ``table`` (an InputTable, a list of names, or None
    for the classic one-image-input model named 'input')."""
    names = list(getattr(table, "names", table) or ["input"])
    images = {s.name for s in table.images} if hasattr(table, "images") else set(names)
    if isinstance(source, Mapping):
        named = {str(k): v for k, v in source.items() if str(k)}
        unnamed = source.get("", [])
        unnamed = list(unnamed) if isinstance(unnamed, (list, tuple)) else [unnamed]
    else:
        named, unnamed = {}, [source]
    unknown = sorted(set(named) - set(names))
    if unknown:
        raise InputError(f"data given for {', '.join(repr(n) for n in unknown)}, which the model has no input of; "
                         f"its inputs are {', '.join(names)}")
    out = {n: _one(v, n, len(names) == 1) for n, v in named.items()}
    for item in sorted(unnamed, key=_unnamed_order):
        _unnamed(item, names, images, out)
    missing = [n for n in names if n not in out]
    if missing:
        raise InputError(f"no data for input(s) {', '.join(missing)}; the model has {len(names)} inputs "
                         f"({', '.join(names)}): give a .npz with one array per input name, or --data NAME=PATH "
                         f"(a folder of images for an image input, a .npy (N, ...) otherwise) for each")
    return {n: out[n] for n in names}


def _unnamed_order(item: Any) -> int:
    """Named arrays (.npz) first, then photos (the one image input left), then a .npy (the one input left)."""
    suffix = "" if isinstance(item, (list, tuple)) else Path(item).suffix.lower()
    return {".npz": 0, ".npy": 2}.get(suffix, 1)


def _one(value: Any, name: str, only: bool) -> Assigned:
    if isinstance(value, (list, tuple)):
        return (FILES, list(value), None)
    path = Path(value)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        found = npz_names(path)
        key = found[0] if only and name not in found and len(found) == 1 else name
        return (ARRAY, path, key)
    return (ARRAY, path, None) if suffix == ".npy" else (FOLDER, path, None)


def _unnamed(item: Any, names: Sequence[str], images: set[str], out: dict[str, Assigned]) -> None:
    """Assign one unnamed source to the input(s) it can only mean."""
    left = [n for n in names if n not in out]
    if isinstance(item, (list, tuple)) or Path(item).suffix.lower() not in (".npz", ".npy"):
        targets = [n for n in left if n in images]
        what = "a folder (or list) of images feeds one image input"
        if len(left) == 1 and len(names) == 1:
            targets = left
    elif Path(item).suffix.lower() == ".npz":
        found = npz_names(item)
        targets = [n for n in left if n in found]
        if not targets and len(names) == 1 and len(found) == 1:
            out[names[0]] = (ARRAY, Path(item), found[0])
            return
        if not targets:
            raise InputError(f"{item} has no array named after an input still without data ({', '.join(left)}); it "
                             f"has: {', '.join(found) or 'none'}. A .npz needs one array per model input, named "
                             f"after the input")
        for n in targets:
            out[n] = (ARRAY, Path(item), n)
        return
    else:
        targets, what = left, "a .npy holds the data of one input"
    if len(targets) != 1:
        raise InputError(f"{item}: {what}, but the model has {len(names)} inputs ({', '.join(names)}) and "
                         f"{len(targets)} could take it; name it: --data NAME=PATH, or give a .npz with one array "
                         f"per input name")
    out[targets[0]] = _one(item, targets[0], len(names) == 1)


def load_array(path: Path, key: str | None) -> np.ndarray:
    """The .npy array (memory-mapped) or the .npz member ``key``; InputError naming the file otherwise."""
    kind = ".npz" if key is not None else ".npy"
    if not path.is_file():
        raise InputError(f"calibration array {path} does not exist")
    try:
        arr: Any = np.load(path, mmap_mode="r" if key is None else None, allow_pickle=False)
        if key is not None:
            with arr as npz:
                if key not in npz.files:
                    raise InputError(f"{path} has no array '{key}' (it has: {', '.join(npz.files) or 'none'}); a .npz "
                                     f"needs one array per model input, named after the input")
                arr = npz[key]
    except InputError:
        raise
    except Exception as exc:  # OSError, ValueError, EOFError (empty file), pickled objects refused, BadZipFile
        raise InputError(f"cannot read {path} as a {kind} array: {type(exc).__name__}: {exc}") from None
    if not isinstance(arr, np.ndarray):
        raise InputError(f"cannot read {path} as a .npy array: it is a {type(arr).__name__} (.npz?)")
    return arr


def array_forms(shape: Sequence[int]) -> str:
    """The arrays an input of ``shape`` S takes: (N, *S) — one leading sample axis — or, when S[0] is 1, also
    (N, *S[1:]) (the batch axis of 1 holding the samples), e.g. '(N, 1, 576) or (N, 576)'."""
    def form(dims: Sequence[int]) -> str:
        return "(N, " + ", ".join(str(int(d)) for d in dims) + ")" if len(dims) else "(N,)"

    shape = tuple(shape)
    return form(shape) + (f" or {form(shape[1:])}" if shape and shape[0] == 1 else "")


def samples_lead(array_shape: Sequence[int], shape: Sequence[int]) -> bool | None:
    """How an array of ``array_shape`` holds samples of an input of ``shape`` S: False for (N, *S), True for
    (N, *S[1:]) with S[0] == 1 (each sample needs the batch axis back), None for neither."""
    got, want = tuple(array_shape)[1:], tuple(shape)
    if len(array_shape) and got == want:
        return False
    if want and want[0] == 1 and len(array_shape) and got == want[1:]:
        return True
    return None


def array_shape(assigned: Assigned) -> tuple[int, ...] | None:
    """The per-sample shape of an array source, (N, *shape)[1:] (None for images); InputError if unreadable."""
    kind, where, key = assigned
    if kind != ARRAY:
        return None
    return tuple(load_array(Path(where), key).shape[1:])


def array_dtype(assigned: Assigned) -> str | None:
    """The numpy type name of an array source ('float32', 'int64', ...; None for images)."""
    kind, where, key = assigned
    if kind != ARRAY:
        return None
    return load_array(Path(where), key).dtype.name
