"""Representative data: what feeds calibration and verification.

A small data-reader protocol (as onnxruntime's quantization tools have): a reader
knows its length, a content hash, and yields :class:`Sample` objects one at a
time, so a calibration set is streamed, never held in memory whole.

Readers: :class:`ImageReader` (a folder or list of photos, with deterministic
crop/flip views), :class:`ArrayReader` (a ``.npy``, or one array of a ``.npz``, of
already-preprocessed inputs) and, for models with several inputs, :class:`MultiReader`
(one reader per input, zipped).  :func:`open_reader` picks them for a model's inputs
(:mod:`.sources` says which data feeds which input).
"""
from __future__ import annotations

import copy
import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol, Sequence

import numpy as np
from PIL import Image

from ..config.inputs import FLOAT, InputTable, check_values
from ..config.preprocess import PreprocessSpec
from ..errors import InputError, Int8Warning
from .images import file_sha256, list_images, load_image
from .sources import ARRAY, FILES, array_forms, assign_sources, load_array, samples_lead

FEW_SAMPLES = 100


@dataclass(frozen=True)
class Sample:
    """One model input: float32 (an integer input: its own dtype) with a batch axis of 1, in the spec's layout.

    ``x`` is the (first) input; a multi-input sample also has ``inputs``, every input by name.
    """

    name: str
    x: np.ndarray
    pixels: np.ndarray | None = None  # uint8 HxWxC after resizing, when the sample is an image
    source: str | None = None  # the file it came from
    inputs: Mapping[str, np.ndarray] | None = None

    def arrays(self, names: Sequence[str]) -> list[np.ndarray]:
        """The sample's arrays for the inputs ``names``, in that order."""
        if self.inputs is None:
            if len(names) > 1:
                raise InputError(f"sample {self.name} holds one array, the model takes {len(names)} inputs "
                                 f"({', '.join(names)})")
            return [self.x]
        return [self.inputs[n] for n in names]


class DataReader(Protocol):
    description: str
    content_hash: str

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Sample]: ...


@dataclass(frozen=True)
class _Item:
    path: Path
    digest: str
    view: int


class ImageReader:
    """Photos -> samples through a :class:`PreprocessSpec`.

    ``views`` > 1 adds deterministic random-resized crops and flips of each photo
    (view 0 is always the plain photo).  ``num_samples`` picks that many items
    with ``seed`` (all when None).
    """

    def __init__(self, paths: Sequence[str | Path], spec: PreprocessSpec, *, views: int = 1,
                 num_samples: int | None = None, seed: int = 0, skipped: dict[str, str] | None = None):
        if views < 1:
            raise InputError(f"views must be at least 1, got {views}")
        self.spec = spec
        self.seed = int(seed)
        self.views = int(views)
        self.skipped = dict(skipped or {})
        items = [_Item(Path(p), file_sha256(p), v) for p in paths for v in range(views)]
        if num_samples is not None:
            if num_samples < 1:
                raise InputError(f"the number of samples must be at least 1, got {num_samples}")
            order = np.random.default_rng(self.seed).permutation(len(items))
            items = [items[i] for i in sorted(order[:num_samples])]
        self._items = items
        h = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode())
        for it in items:
            h.update(f"{it.digest}:{it.view}:{self.seed}\n".encode())
        self.content_hash = h.hexdigest()
        self.description = f"{len(items)} samples from {len(set(i.path for i in items))} images, {views} view(s) each"

    @property
    def item_digests(self) -> list[str]:
        """Content hash of each sample (file hash + view), to detect overlap between sets."""
        return [f"{it.digest}:{it.view}" for it in self._items]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Sample]:
        mode = "L" if self.spec.channels == "L" else "RGB"
        for it in self._items:
            im = load_image(it.path, mode=mode, target=self.spec.size)
            if it.view:
                im = _view(im, np.random.default_rng([self.seed, int(it.digest[:12], 16), it.view]))
            pixels = self.spec.resize_image(im)
            name = it.path.name if it.view == 0 else f"{it.path.name}#view{it.view}"
            yield Sample(name, self.spec.normalize(pixels), pixels, str(it.path))

    def subset(self, indices: Sequence[int]) -> "ImageReader":
        """A reader of these samples only (e.g. one worker's share), same views and seed."""
        other = copy.copy(self)
        other._items = [self._items[i] for i in indices]
        return other


def _view(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random-resized crop (35-100 % of the area, aspect 3/4-4/3) and a coin-flip mirror."""
    w, h = im.size
    area = w * h * rng.uniform(0.35, 1.0)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw = int(min(w, max(1, round(np.sqrt(area * aspect)))))
    ch = int(min(h, max(1, round(np.sqrt(area / aspect)))))
    left = int(rng.integers(0, w - cw + 1))
    top = int(rng.integers(0, h - ch + 1))
    im = im.crop((left, top, left + cw, top + ch))
    if rng.random() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    return im


class ArrayReader:
    """A ``.npy`` file (or the array ``key`` of a ``.npz``) of preprocessed float inputs: for an input of shape S,
    (N, *S) — one leading sample axis — or, when S[0] is 1, (N, *S[1:]); for an integer input (``dtype``: token ids,
    masks) integer values, taken as they are."""

    def __init__(self, path: str | Path, input_shape: Sequence[int], *, num_samples: int | None = None,
                 seed: int = 0, key: str | None = None, input_name: str | None = None, dtype: str = FLOAT):
        path = Path(path)
        arr = load_array(path, key)
        label = f"{path}[{key!r}]" if key is not None else str(path)
        lead = samples_lead(arr.shape, input_shape)
        if lead is None:
            which = f"the model input '{input_name}'" if input_name else "the model input"
            raise InputError(f"{label}: the array is {tuple(arr.shape)}; {which} is {list(input_shape)}, so its "
                             f"array must be {array_forms(input_shape)}")
        self._lead = lead
        if dtype != FLOAT:
            arr = check_values(input_name or "input", arr, dtype, label)
        elif arr.dtype.kind != "f":
            raise InputError(f"{label}: dtype is {arr.dtype}, expected float32 preprocessed inputs")
        bad = [i for i in range(arr.shape[0]) if not np.isfinite(arr[i]).all()] if dtype == FLOAT else []
        if bad:
            raise InputError(f"{label}: samples {bad[:10]} contain NaN or Inf; remove or fix them")
        self.dtype = np.dtype(np.float32 if dtype == FLOAT else dtype)
        idx = np.arange(arr.shape[0])
        if num_samples is not None:
            idx = np.sort(np.random.default_rng(seed).permutation(arr.shape[0])[:num_samples])
        self._arr, self._idx, self.path, self._key = arr, idx, path, key
        h = hashlib.sha256()
        for i in idx:
            h.update(np.ascontiguousarray(arr[i], dtype=self.dtype).tobytes())
        self.content_hash = h.hexdigest()
        self.description = f"{len(idx)} samples from {path.name}" + (f"[{key}]" if key is not None else "")
        self.skipped: dict[str, str] = {}

    @property
    def item_digests(self) -> list[str]:
        return [hashlib.sha256(np.ascontiguousarray(self._arr[i], self.dtype).tobytes()).hexdigest() for i in self._idx]

    def __len__(self) -> int:
        return len(self._idx)

    def __iter__(self) -> Iterator[Sample]:
        for i in self._idx:
            x = self._arr[i][None] if self._lead else self._arr[i]
            yield Sample(f"{self.path.name}[{i}]", np.array(x, dtype=self.dtype, order="C"), source=str(self.path))

    def __getstate__(self) -> dict:
        """Pickled (for a child process or a worker) without the data: the other side reads the file again (a .npy
        memory-mapped)."""
        state = dict(self.__dict__)
        state["_arr"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("dtype", np.dtype(np.float32))
        self._arr = load_array(self.path, self.__dict__.get("_key"))

    def subset(self, indices: Sequence[int]) -> "ArrayReader":
        other = copy.copy(self)
        other._idx = self._idx[np.asarray(indices, dtype=np.int64)]
        return other


class MultiReader:
    """Several inputs per sample: one reader per input name, zipped (all must hold the same number of samples)."""

    def __init__(self, readers: Mapping[str, Any]):
        self.readers = dict(readers)
        lengths = {n: len(r) for n, r in self.readers.items()}
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"'{n}': {k} ({self.readers[n].description})" for n, k in lengths.items())
            raise InputError(f"the inputs' data hold different numbers of samples ({detail}); every input needs one "
                             f"array per sample (views multiply images only: use --views 1)")
        h = hashlib.sha256()
        for n, r in self.readers.items():
            h.update(f"{n}:{r.content_hash}\n".encode())
        self.content_hash = h.hexdigest()
        self.description = "; ".join(f"{n}: {r.description}" for n, r in self.readers.items())
        self.skipped = {k: v for r in self.readers.values() for k, v in getattr(r, "skipped", {}).items()}

    @property
    def item_digests(self) -> list[str]:
        """The first input's digest decides the source file (hygiene compares files); the rest are appended."""
        parts = [r.item_digests for r in self.readers.values()]
        return ["+".join(p) for p in zip(*parts)]

    def __len__(self) -> int:
        return len(next(iter(self.readers.values())))

    def __iter__(self) -> Iterator[Sample]:
        names = list(self.readers)
        for samples in zip(*self.readers.values()):
            first = samples[0]
            image = next((s for s in samples if s.pixels is not None), None)
            yield Sample(first.name, first.x, image.pixels if image else None, first.source,
                         {n: s.x for n, s in zip(names, samples)})

    def subset(self, indices: Sequence[int]) -> "MultiReader":
        return MultiReader({n: r.subset(indices) for n, r in self.readers.items()})


def open_reader(source: Any, spec: PreprocessSpec | InputTable, *, views: int = 1, num_samples: int | None = None,
                seed: int = 0, warn_few: bool = True) -> Any:
    """A reader for a model's inputs (``spec``: one image input's preprocessing, or the model's :class:`InputTable`).

    ``source``: a folder of images, a list of image files, a ``.npy`` (one input), a ``.npz`` (one array per input
    name) or a mapping {input name: folder/.npy/.npz} (:func:`.sources.assign_sources`).
    """
    table = spec if isinstance(spec, InputTable) else None
    names = table.names if table is not None else ["input"]
    assigned = assign_sources(source, table)
    readers = {}
    for name in names:
        kind, where, key = assigned[name]
        readers[name] = _reader(kind, where, key, table, name, spec, views, num_samples, seed)
    reader = readers[names[0]] if len(readers) == 1 else MultiReader(readers)
    if len(reader) == 0:
        raise InputError(f"no samples in {source}")
    if warn_few and len(reader) < FEW_SAMPLES:
        warnings.warn(f"only {len(reader)} calibration samples (fewer than {FEW_SAMPLES}): int8 ranges may be "
                      f"poorly estimated; add photos or use views", Int8Warning, stacklevel=2)
    return reader


def _reader(kind: str, where: Any, key: str | None, table: InputTable | None, name: str, spec: Any, views: int,
            num_samples: int | None, seed: int) -> Any:
    """One input's reader: photos through its preprocessing, or an array as it is."""
    if kind == ARRAY:
        shape = table[name].shape if table is not None else spec.input_shape()
        dtype = table[name].dtype if table is not None else FLOAT
        return ArrayReader(where, shape, num_samples=num_samples, seed=seed, key=key, dtype=dtype,
                           input_name=name if table is not None and (len(table) > 1 or dtype != FLOAT) else None)
    pre = table[name].preprocess if table is not None else spec
    if pre is None:
        raise InputError(f"input '{name}' {list(table[name].shape)} is not an image input: give its data as a .npy "
                         f"{array_forms(table[name].shape)} or in a .npz, not {where}")
    if kind == FILES:
        return ImageReader(where, pre, views=views, num_samples=num_samples, seed=seed)
    listing = list_images(where)
    if not listing.paths:
        detail = f" ({len(listing.skipped)} files skipped: not images or unreadable)" if listing.skipped else ""
        raise InputError(f"no usable images in {where}{detail}; give a folder of .jpg/.png photos or a .npy array")
    reader = ImageReader(listing.paths, pre, views=views, num_samples=num_samples, seed=seed, skipped=listing.skipped)
    if listing.skipped:
        warnings.warn(f"{len(listing.skipped)} file(s) in {where} skipped (not images or unreadable)",
                      Int8Warning, stacklevel=3)
    return reader


def default_data_dir() -> Path:
    """The bundled representative photos (representative_data/ beside the package, or inside it when installed)."""
    package = Path(__file__).resolve().parents[1]
    for cand in (package.parent / "representative_data", package / "representative_data"):
        if cand.is_dir():
            return cand
    raise InputError("the bundled representative_data/ folder is missing; pass --data with a folder of photos")
