"""The demo: the embedded EfficientNet-Lite0 to full-int8, and how well it agrees with the float model on
photos it was not calibrated on.

The 24 bundled photos (sorted by name) are split in two, the same split as the benchmarks: the even ones
calibrate (:data:`CALIB_VIEWS` views each), the odd ones verify (:data:`VERIFY_VIEWS` views each), so the
figures are held-out figures and verify has no overlap to warn about.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..config.recipe import Recipe
from ..convert.pipeline import ConversionResult, convert
from ..convert.record import load_conversion
from ..data.images import list_images
from ..data.readers import ImageReader, default_data_dir
from ..progress import Progress
from ..runtime.adapter import Runner
from ..verify.core import verify
from .models import DEMO_MODEL, efficientnet_lite0

CALIB_VIEWS = 10  # 12 photos x 10 views = 120 calibration samples
VERIFY_VIEWS = 5  # 12 other photos x 5 views = 60 verification samples, none of them calibrated on


def demo_photos(data: str | Path | None = None) -> tuple[list[Path], list[Path]]:
    """(calibration photos, held-out verification photos): the even and the odd photos, sorted by name."""
    photos = [Path(p) for p in list_images(data or default_data_dir()).paths]
    return photos[0::2], photos[1::2]


def demo(out_dir: str | Path = "demo_output", *, force: bool = False,
         progress: Progress | None = None) -> dict[str, Any]:
    """Convert the demo model (with a float32 variant) calibrated on half the bundled photos, then verify it
    on the other half (OUT/verify/)."""
    calib, held_out = demo_photos()
    result = convert(DEMO_MODEL, out_dir, data=calib, views=CALIB_VIEWS, recipe=Recipe(variants=("float32",)),
                     force=force, progress=progress)
    checked = verify(result.out_dir, data=held_out, views=VERIFY_VIEWS, report_dir=result.out_dir / "verify",
                     progress=progress)
    return {"conversion": result, "verification": checked,
            "calibration_photos": [p.name for p in calib], "verification_photos": [p.name for p in held_out]}


def agreement(result: ConversionResult, data: str | Path | None = None) -> dict[str, Any]:
    """Top-1 agreement of the conversion's int8 model with the float PyTorch model, per photo."""
    _, spec = load_conversion(result.out_dir)
    return top1_agreement(result.int8_path, spec, data)


def top1_agreement(tflite_path: str | Path, spec: Any, data: str | Path | None = None) -> dict[str, Any]:
    """Top-1 agreement of any demo-model .tflite (through the adapter) with the float PyTorch model."""
    import torch

    listing = list_images(data or default_data_dir())
    reader = ImageReader(listing.paths, spec)
    model = efficientnet_lite0()
    runner = Runner(tflite_path, spec, trusted=True)
    name = runner.output_names[0]
    rows = []
    for sample in reader:
        with torch.no_grad():
            ref = model(torch.from_numpy(sample.x)).numpy()[0]
        got = runner(sample.pixels)[name][0]  # uint8 pixels: the adapter's integer-only path
        rows.append({"image": sample.name, "float_top1": int(np.argmax(ref)), "int8_top1": int(np.argmax(got)),
                     "cosine": float(np.dot(ref, got) / (np.linalg.norm(ref) * np.linalg.norm(got)))})
    agree = float(np.mean([r["float_top1"] == r["int8_top1"] for r in rows]))
    return {"images": len(rows), "top1_agreement": agree, "reference": "PyTorch float", "rows": rows,
            "mean_cosine": float(np.mean([r["cosine"] for r in rows]))}
