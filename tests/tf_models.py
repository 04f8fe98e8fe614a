"""Small TFLite files made straight with the TF converter (no onnx2tf): the verdicts inspect must tell apart."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _concrete():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w1 = tf.constant(rng.normal(0, 0.2, (3, 3, 3, 32)).astype(np.float32))
    w2 = tf.constant(rng.normal(0, 0.1, (32, 64)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 16, 16, 3], tf.float32)])
    def model(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME"))
        return tf.matmul(tf.reduce_mean(y, axis=[1, 2]), w2)

    return model.get_concrete_function()


def _data():
    rng = np.random.default_rng(1)
    for _ in range(8):
        yield [rng.normal(0, 1, (1, 16, 16, 3)).astype(np.float32)]


def make_variants(folder: Path) -> dict[str, Path]:
    """dynamic-range and mixed (MEAN denylisted: left float inside an int8 model) .tflite files."""
    import tensorflow as tf

    out = {}
    c = tf.lite.TFLiteConverter.from_concrete_functions([_concrete()])
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    out["dynamic-range"] = folder / "dynamic_range.tflite"
    out["dynamic-range"].write_bytes(c.convert())

    c = tf.lite.TFLiteConverter.from_concrete_functions([_concrete()])
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = _data
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=["MEAN"])
    debugger = tf.lite.experimental.QuantizationDebugger(converter=c, debug_dataset=_data, debug_options=options)
    out["mixed"] = folder / "mean_left_float.tflite"
    out["mixed"].write_bytes(debugger.get_nondebug_quantized_model())
    return out
