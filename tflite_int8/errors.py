"""One error hierarchy for the whole product.

Every error carries a message that names the file, tensor, op or stage at fault
and says what to do.  ``exit_code`` is what the CLI returns for it:
2 for user/input errors and unconvertible models, 1 for failed parity checks.
"""
from __future__ import annotations


class Int8Error(Exception):
    """Base class of every error raised by tflite_int8."""

    exit_code = 2


class InputError(Int8Error):
    """Something the user gave us is wrong: a file, a folder, an argument."""


class ConversionError(Int8Error):
    """A conversion stage failed (export, translate, quantize)."""

    def __init__(self, message: str, *, stage: str | None = None):
        super().__init__(message if stage is None else f"[{stage}] {message}")
        self.stage = stage


class UnsupportedOpError(ConversionError):
    """An op cannot be expressed as a full-integer TFLite builtin."""

    def __init__(self, message: str, *, ops: list[str], stage: str = "quantize"):
        super().__init__(message, stage=stage)
        self.ops = list(ops)


class CrashError(ConversionError):
    """Native code (the TF converter or calibrator, onnx2tf, an interpreter) crashed.

    It ran in a child process (:mod:`tflite_int8.runtime.child`), so only the child ended; ``ops`` names the
    op(s) behind the crash when they could be found, ``signal`` the signal (SIGSEGV, SIGABRT) when there was one.
    """

    def __init__(self, message: str, *, stage: str, ops: list[str] | tuple[str, ...] = (), signal: str | None = None):
        super().__init__(message, stage=stage)
        self.ops = list(ops)
        self.signal = signal


class AlreadyQuantizedError(InputError):
    """The model given as float reference is already quantized."""

    ADVICE = ("start from the float model (the float checkpoint or its float ONNX export): quantizing an already "
              "quantized model twice adds a second rounding on top of the first")


class ParityError(Int8Error):
    """A numeric check between two stages failed its threshold."""

    exit_code = 1

    def __init__(self, message: str, *, stage: str | None = None, metrics: dict | None = None):
        super().__init__(message if stage is None else f"[{stage}] {message}")
        self.stage = stage
        self.metrics = dict(metrics or {})


class Int8Warning(UserWarning):
    """Warnings the CLI shows to the user (few samples, clipped inputs, ...)."""
