"""Adapter overhead: quantize + dequantize time as a fraction of invoke() for the 224x224x3 demo model."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import median_time


def run(repeats: int = 50) -> dict:
    from tflite_int8 import Recipe, Runner, convert
    from tflite_int8.runtime.adapter import dequantize, quantize
    from tflite_int8.zoo.models import DEMO_MODEL

    with tempfile.TemporaryDirectory(prefix="bench-adapter-") as tmp:
        conv = convert(DEMO_MODEL, Path(tmp) / "m", num_samples=24, recipe=Recipe())
        results = {}
        for threads in (1, 2):
            runner = Runner(conv.int8_path, num_threads=threads, trusted=True)
            info_in, info_out = runner.inputs[0], runner.outputs[0]
            x = _photo_nhwc()  # a real preprocessed photo: inside the calibrated range, as real inputs are
            lo, hi = info_in.float_range()
            inside = bool(lo <= x.min() and x.max() <= hi)
            q = quantize(x, info_in)
            invoke = median_time(lambda: runner.invoke([q]), repeats)
            raw_out = runner.invoke([q])[0]
            adapt = median_time(lambda: (quantize(x, info_in, in_range=inside), dequantize(raw_out, info_out)),
                                repeats)
            check = median_time(lambda: (float(np.min(x)), float(np.max(x))), repeats)
            call = median_time(lambda: runner(x), repeats)  # the whole float-in/float-out call, checks included
            pixels = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
            from tflite_int8.config.preprocess import preset

            pr = Runner(conv.int8_path, preset("efficientnet-lite0"), num_threads=threads, trusted=True)
            pix = median_time(lambda: pr.pixels_to_input(pixels), repeats)
            results[threads] = {"invoke_ms": invoke * 1e3, "adapter_ms": adapt * 1e3, "runner_call_ms": call * 1e3,
                                "check_ms": check * 1e3, "check_fraction": (adapt + check) / invoke,
                                "in_range": inside,
                                "runner_fraction": (call - invoke) / invoke,
                                "adapter_fraction": adapt / invoke, "pixel_path_ms": pix * 1e3,
                                "pixel_fraction": pix / invoke, "pixel_path": pr.pixel_fast_path}
    return results


def _photo_nhwc() -> np.ndarray:
    from tflite_int8.data.readers import ImageReader, default_data_dir
    from tflite_int8.data.images import list_images
    from tflite_int8.config.preprocess import preset

    spec = preset("efficientnet-lite0")
    sample = next(iter(ImageReader(list_images(default_data_dir()).paths[:1], spec)))
    return np.ascontiguousarray(spec.to_nhwc(sample.x))


if __name__ == "__main__":
    print(run())
