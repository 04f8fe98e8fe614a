"""Adapter overhead: quantize + dequantize time as a fraction of invoke() for the 224x224x3 demo model."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import median_time


def run(repeats: int = 50) -> dict:
    from tflite_int8 import Recipe, Runner, convert
    from tflite_int8.adapter import dequantize, quantize
    from tflite_int8.zoo import DEMO_MODEL

    with tempfile.TemporaryDirectory(prefix="bench-adapter-") as tmp:
        conv = convert(DEMO_MODEL, Path(tmp) / "m", num_samples=24, recipe=Recipe())
        results = {}
        for threads in (1, 2):
            runner = Runner(conv.int8_path, num_threads=threads, trusted=True)
            info_in, info_out = runner.inputs[0], runner.outputs[0]
            x = np.random.default_rng(0).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
            q = quantize(x, info_in)
            invoke = median_time(lambda: runner.invoke([q]), repeats)
            raw_out = runner.invoke([q])[0]
            adapt = median_time(lambda: (quantize(x, info_in), dequantize(raw_out, info_out)), repeats)
            call = median_time(lambda: runner(x), repeats)  # the whole float-in/float-out call, checks included
            pixels = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
            from tflite_int8.preprocess import preset

            pr = Runner(conv.int8_path, preset("efficientnet-lite0"), num_threads=threads, trusted=True)
            pix = median_time(lambda: pr.pixels_to_input(pixels), repeats)
            results[threads] = {"invoke_ms": invoke * 1e3, "adapter_ms": adapt * 1e3, "runner_call_ms": call * 1e3,
                                "runner_fraction": (call - invoke) / invoke,
                                "adapter_fraction": adapt / invoke, "pixel_path_ms": pix * 1e3,
                                "pixel_fraction": pix / invoke, "pixel_path": pr.pixel_fast_path}
    return results


if __name__ == "__main__":
    print(run())
