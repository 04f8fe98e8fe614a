"""The preprocessing spec: declared once per model, used everywhere.

Calibration, verification and the I/O adapter all turn an image into model input
through :class:`PreprocessSpec`, so they cannot disagree.  The spec is stored in
``conversion.json`` and read back from there.

Float input is computed, in float32, as ``(pixel / pixel_max - mean) / std`` per
channel, after resizing the uint8 image to ``size`` with ``resize``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import InputError

RESIZE_MODES = ("center-crop", "letterbox", "stretch")
LAYOUTS = ("NCHW", "NHWC")
CHANNEL_ORDERS = ("RGB", "BGR", "L")
LETTERBOX_FILL = 114


@dataclass(frozen=True)
class PreprocessSpec:
    """How pixels become model input.

    size: (height, width) of the model input; None: the model's own input size (resolved by ``convert``
        from the model's static shape, so a spec with a size is what ``conversion.json`` stores).
    resize: "center-crop" (shorter side to size/crop_fraction, then crop),
        "letterbox" (fit inside, pad with gray 114) or "stretch".
    mean, std: per channel, in units of ``pixel / pixel_max``.
    channels: "RGB", "BGR" or "L" (grayscale, one channel).
    layout: "NCHW" (PyTorch habit) or "NHWC": the layout of the float arrays the
        user passes around; the TFLite model itself is always NHWC.
    pixel_max: pixels are divided by this first (255 for 0..1 inputs, 1 for 0..255).
    """

    size: tuple[int, int] | None = (224, 224)
    resize: str = "center-crop"
    crop_fraction: float = 0.875
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    channels: str = "RGB"
    layout: str = "NCHW"
    pixel_max: float = 255.0

    def __post_init__(self) -> None:
        if self.size is not None:
            size = tuple(int(s) for s in self.size) if _is_seq(self.size) else None
            if size is None or len(size) != 2 or min(size) < 1:
                raise InputError(f"preprocessing 'size' must be two positive integers (height, width), got "
                                 f"{self.size!r}")
            object.__setattr__(self, "size", size)
        if self.resize not in RESIZE_MODES:
            raise InputError(f"preprocessing 'resize' must be one of {', '.join(RESIZE_MODES)}, got {self.resize!r}")
        if self.layout not in LAYOUTS:
            raise InputError(f"preprocessing 'layout' must be NCHW or NHWC, got {self.layout!r}")
        if self.channels not in CHANNEL_ORDERS:
            raise InputError(f"preprocessing 'channels' must be one of {', '.join(CHANNEL_ORDERS)}, got {self.channels!r}")
        if not (0.0 < float(self.crop_fraction) <= 1.0):
            raise InputError(f"preprocessing 'crop_fraction' must be in (0, 1], got {self.crop_fraction!r}")
        n = self.num_channels
        for key in ("mean", "std"):
            value = getattr(self, key)
            vals = tuple(float(v) for v in value) if _is_seq(value) else (float(value),)
            if len(vals) == 1:
                vals = vals * n
            if len(vals) != n:
                raise InputError(
                    f"preprocessing '{key}' needs 1 or {n} values for {self.channels} input, got {len(vals)}: {value!r}"
                )
            if not all(math.isfinite(v) for v in vals):
                raise InputError(f"preprocessing '{key}' must be finite numbers, got {value!r}")
            object.__setattr__(self, key, vals)
        if any(s == 0.0 for s in self.std):
            raise InputError(f"preprocessing 'std' must not contain zero, got {self.std!r}")
        if not (math.isfinite(float(self.pixel_max)) and float(self.pixel_max) > 0):
            raise InputError(f"preprocessing 'pixel_max' must be a positive number, got {self.pixel_max!r}")
        object.__setattr__(self, "pixel_max", float(self.pixel_max))
        object.__setattr__(self, "crop_fraction", float(self.crop_fraction))

    @property
    def num_channels(self) -> int:
        return 1 if self.channels == "L" else 3

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        h, w = self.sized
        if self.layout == "NCHW":
            return (batch, self.num_channels, h, w)
        return (batch, h, w, self.num_channels)

    @property
    def sized(self) -> tuple[int, int]:
        """``size``, which must be known by now (InputError otherwise)."""
        if self.size is None:
            raise InputError("the preprocessing has no input size yet: give --size (or the model's static shape)")
        return self.size

    # -- serialisation ---------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "preprocessing spec") -> "PreprocessSpec":
        if not isinstance(data, dict):
            raise InputError(f"{source}: expected a table/object of settings, got {type(data).__name__}")
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise InputError(
                f"{source}: unknown key(s) {', '.join(unknown)}; allowed keys are {', '.join(sorted(allowed))}"
            )
        types = {"size": (list, tuple, type(None)), "mean": (list, tuple, int, float), "std": (list, tuple, int, float),
                 "resize": str, "layout": str, "channels": str,
                 "crop_fraction": (int, float), "pixel_max": (int, float)}
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, types[key]):
                raise InputError(f"{source}: '{key}' has the wrong type ({type(value).__name__}): {value!r}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def with_overrides(self, **overrides: Any) -> "PreprocessSpec":
        """A copy with the given (non-None) fields replaced."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **changes) if changes else self

    # -- pixels ----------------------------------------------------------
    def resize_image(self, image: Image.Image) -> np.ndarray:
        """Resize an RGB/L PIL image as declared; returns uint8 HxWxC."""
        mode = "L" if self.channels == "L" else "RGB"
        if image.mode != mode:
            image = image.convert(mode)
        h, w = self.sized
        iw, ih = image.size
        if self.resize == "stretch":
            out = image.resize((w, h), Image.BILINEAR, reducing_gap=3.0)
        elif self.resize == "center-crop":
            scale = max(h / self.crop_fraction / ih, w / self.crop_fraction / iw)
            nw, nh = max(w, round(iw * scale)), max(h, round(ih * scale))
            big = image.resize((nw, nh), Image.BILINEAR, reducing_gap=3.0)
            left, top = (nw - w) // 2, (nh - h) // 2
            out = big.crop((left, top, left + w, top + h))
        else:  # letterbox
            scale = min(h / ih, w / iw)
            nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
            small = image.resize((nw, nh), Image.BILINEAR, reducing_gap=3.0)
            fill = LETTERBOX_FILL if mode == "L" else (LETTERBOX_FILL,) * 3
            out = Image.new(mode, (w, h), fill)
            out.paste(small, ((w - nw) // 2, (h - nh) // 2))
        arr = np.asarray(out, dtype=np.uint8)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if self.channels == "BGR":
            arr = arr[:, :, ::-1]
        return np.ascontiguousarray(arr)

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 pixels (H,W,C) or (N,H,W,C) -> float32 model input in ``layout``, with a batch axis."""
        p = np.asarray(pixels)
        if p.ndim == 3:
            p = p[None]
        if p.ndim != 4 or p.shape[-1] != self.num_channels:
            raise InputError(
                f"pixels must be (N,H,W,{self.num_channels}) or (H,W,{self.num_channels}), got shape {p.shape}"
            )
        x = (p.astype(np.float32) / np.float32(self.pixel_max) - self.mean_array()) / self.std_array()
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32)

    def mean_array(self) -> np.ndarray:
        return np.asarray(self.mean, dtype=np.float32)

    def std_array(self) -> np.ndarray:
        return np.asarray(self.std, dtype=np.float32)

    def to_nhwc(self, x: np.ndarray) -> np.ndarray:
        """Float arrays in this spec's layout -> NHWC (what TFLite image models take)."""
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if self.layout == "NCHW" else x


def _is_seq(value: Any) -> bool:
    return isinstance(value, (list, tuple))


# Built-in specs for the demo and zoo models (the CLI's --preset choices).
PRESETS: dict[str, PreprocessSpec] = {
    # Weights converted from TF's EfficientNet-Lite, trained on (p - 127) / 128: with that exact
    # normalisation uint8 pixels land on the int8 input grid (scale 1/128), so the pixel path is a
    # plain integer offset and the input carries no rounding error.
    "efficientnet-lite0": PreprocessSpec(size=(224, 224), mean=(127 / 255,) * 3, std=(128 / 255,) * 3),
    "imagenet": PreprocessSpec(size=(224, 224)),
    "mobilenet-v2": PreprocessSpec(size=(224, 224)),
    "yolo": PreprocessSpec(size=(320, 320), resize="letterbox", mean=(0.0,), std=(1.0,)),
}


def preset(name: str) -> PreprocessSpec:
    """A built-in spec by name (:data:`PRESETS`)."""
    if name not in PRESETS:
        raise InputError(f"unknown preprocessing preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def load_spec(path: str | Path) -> PreprocessSpec:
    """Read a spec from a .toml or .json file (a top-level table, or a [preprocess] table)."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read preprocessing spec {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text.decode("utf-8"))
        elif path.suffix.lower() == ".json":
            data = json.loads(text.decode("utf-8"))
        else:
            raise InputError(f"preprocessing spec {path} must be a .toml or .json file")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"preprocessing spec {path} is not valid {path.suffix[1:].upper()}: {exc}") from None
    if isinstance(data, dict) and set(data) == {"preprocess"}:
        data = data["preprocess"]
    return PreprocessSpec.from_dict(data, source=str(path))
