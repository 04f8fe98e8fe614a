"""Inference latency, int8 vs float32 TFLite, XNNPACK at 1 and 2 threads (warm-up, then median of 50 invokes,
the two files interleaved: tflite_int8.runtime.latency).

Both files come from one conversion (the float32 variant is the very graph that was quantized).
The CPU's int8 dot-product support is recorded: XNNPACK's int8 kernels are fastest with VNNI
(x86) or dotprod/i8mm (ARM phones); with plain AVX2 they run at about float32 speed.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from tflite_int8.runtime.versions import cpu

MODELS = {"efficientnet-lite0": "tflite_int8.zoo:efficientnet_lite0", "mobilenet-v2": "tflite_int8.zoo:mobilenet_v2",
          "yolo-shapes (detector, head split)": "tflite_int8.zoo.detector:yolo_shapes"}


def cpu_int8_features() -> str:
    have = cpu()["int8_flags"]
    return ", ".join(have) or "none of avx2/avx512/vnni/amx/dotprod"


def run(repeats: int = 50, models: dict | None = None) -> dict:
    from tflite_int8 import Recipe, convert
    from tflite_int8.runtime.latency import median_latency_ms
    from tflite_int8.runtime.describe import describe

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        for i, (name, factory) in enumerate((models or MODELS).items()):
            task = "detect" if "detector" in name else "auto"
            conv = convert(factory, Path(tmp) / str(i), num_samples=24, recipe=Recipe(variants=("float32",)), task=task)
            row = {}
            for kind, path in (("int8", conv.int8_path), ("float32", conv.files["float32"])):
                xnn = describe(path, trusted=True)["xnnpack"]  # what the delegate took; the rest: builtin kernels
                row[f"{kind}_xnnpack"] = {"partitions": xnn["partitions"], "ops": sum(xnn["delegated"].values()),
                                          "fallback": xnn["fallback"]}
            for threads in (1, 2):  # both files timed interleaved: the ratio is fair on a busy machine
                int8_ms, f32_ms = median_latency_ms([conv.int8_path, conv.files["float32"]], threads=threads,
                                                    runs=repeats, warmup=5)
                row[f"int8_{threads}t_ms"], row[f"float32_{threads}t_ms"] = int8_ms, f32_ms
                row[f"ratio_{threads}t"] = row[f"int8_{threads}t_ms"] / row[f"float32_{threads}t_ms"]
            results[name] = row
    return results


if __name__ == "__main__":
    print(cpu_int8_features(), run())
