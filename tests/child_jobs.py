"""Jobs for the child-process tests (tests/runtime/test_child.py, tests/test_network.py): importable by the child."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from tflite_int8.errors import UnsupportedOpError


@dataclass(frozen=True)
class Count:
    """Ticks a bar ``n`` times, leaves a file in its temporary folder, returns n and that folder."""

    n: int

    def __call__(self, progress):
        bar = progress("counting", self.n)
        for _ in range(self.n):
            bar.update(1)
        bar.close()
        with open(os.path.join(os.environ["TMPDIR"], "left-behind"), "w") as f:
            f.write("x")
        return {"n": self.n, "tmp": os.environ["TMPDIR"], "pid": os.getpid()}


@dataclass(frozen=True)
class AbortWhileCalibrating:
    """A native crash (SIGABRT) in the middle of a progress bar, after writing a temporary file."""

    def __call__(self, progress):
        bar = progress("calibrating", 3)
        bar.update(1)
        with open(os.path.join(os.environ["TMPDIR"], "half-written"), "w") as f:
            f.write("x")
        os.abort()


@dataclass(frozen=True)
class Refuses:
    def __call__(self, progress):
        raise UnsupportedOpError("no int8 kernel for FOO", ops=["FOO"], stage="quantize")


@dataclass(frozen=True)
class Connects:
    def __call__(self, progress):
        try:
            socket.create_connection(("140.82.112.3", 443), timeout=1)
        except ConnectionRefusedError as exc:
            return f"refused: {exc}"
        return "connected"


@dataclass(frozen=True)
class Sleeps:
    def __call__(self, progress):
        import time

        time.sleep(60)


@dataclass(frozen=True)
class WhileLoopSavedModel:
    """Writes a TF SavedModel whose recurrence is a tf.while_loop (a TFLite WHILE, as onnx2tf makes for an LSTM it
    does not unroll): the int8 calibrator crashes on it. Input [1, 8, 8, 1] (NHWC), output [1, 8]."""

    path: str

    def __call__(self, progress):
        import numpy as np
        import tensorflow as tf

        w = tf.constant(np.random.default_rng(0).normal(0, 0.3, (8, 8)).astype(np.float32))

        class Loop(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 1], tf.float32)])
            def __call__(self, x):
                seq = tf.reshape(x, [8, 1, 8])

                def step(t, h):
                    return t + 1, tf.tanh(tf.matmul(seq[t], w) + h)

                _, h = tf.while_loop(lambda t, h: t < 8, step, (tf.constant(0), tf.zeros([1, 8])))
                return {"output": h}

        m = Loop()
        tf.saved_model.save(m, self.path, signatures=m.__call__)
        float32 = tf.lite.TFLiteConverter.from_saved_model(self.path).convert()  # float: no calibrator, no crash
        with open(os.path.join(self.path, "float32.tflite"), "wb") as f:
            f.write(float32)
        return self.path
