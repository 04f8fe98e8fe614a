"""Reading real-world image files: any mode, EXIF orientation, broken files.

``list_images`` finds the usable images of a folder (and says what it skipped);
``load_image`` opens one as RGB (or L) with its EXIF orientation applied.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError
from ..portable.bundle_format import sha256

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
_DOC_NAMES = frozenset({"ATTRIBUTION", "README", "LICENSE", "NOTICE"})  # documentation beside photos
MAX_PIXELS = 100_000_000  # 10000 x 10000; more is refused as a likely decompression bomb


@dataclass
class ImageListing:
    """The usable images of a folder, and what was skipped and why."""

    paths: list[Path]
    skipped: dict[str, str] = field(default_factory=dict)  # file -> reason


def list_images(folder: str | Path) -> ImageListing:
    """All readable images under ``folder`` (recursively, sorted). Non-images and broken files are skipped."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of images")
    paths: list[Path] = []
    skipped: dict[str, str] = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name.startswith(".") or p.stem.upper() in _DOC_NAMES:
            continue
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            skipped[str(p)] = "not an image file"
            continue
        reason = _probe(p)
        if reason:
            skipped[str(p)] = reason
        else:
            paths.append(p)
    return ImageListing(paths, skipped)


def _probe(path: Path) -> str | None:
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                return f"too large ({im.width}x{im.height} pixels)"
            if im.width < 1 or im.height < 1:
                return "empty image"
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"unreadable image ({type(exc).__name__}: {exc})"
    return None


def load_image(path: str | Path, *, mode: str = "RGB", target: tuple[int, int] | None = None) -> Image.Image:
    """Open an image as ``mode`` ("RGB" or "L"), EXIF-rotated, 16-bit and CMYK handled.

    ``target`` (height, width) lets JPEG decoding shrink huge photos early (draft mode).
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
            if im.width * im.height > MAX_PIXELS:
                raise InputError(f"image {path} is too large ({im.width}x{im.height}); resize it below {MAX_PIXELS} pixels")
            if target is not None and im.format == "JPEG":
                im.draft("RGB" if mode == "RGB" else "L", (target[1] * 2, target[0] * 2))
            im = ImageOps.exif_transpose(im)
            im.load()
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None
    return to_mode(im, mode)


def to_mode(im: Image.Image, mode: str) -> Image.Image:
    """Convert any Pillow mode (16-bit, float, CMYK, palette, alpha) to 8-bit RGB or L."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        im = Image.fromarray(np.clip(np.rint(a / top * 255.0), 0, 255).astype(np.uint8), "L")
    if im.mode == mode:
        return im
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    return im.convert(mode)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (one implementation: bundle_format's, which must also run alone on a device)."""
    return sha256(Path(path))
