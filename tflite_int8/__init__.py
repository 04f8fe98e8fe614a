"""tflite-int8: PyTorch/ONNX -> full-integer TFLite, with proof that it still works.

Layout (lower layers never import higher ones; ``tests/test_architecture.py`` enforces it):
``config`` / ``portable`` / ``data`` -> ``runtime`` -> ``convert`` -> ``verify`` -> ``recover``, ``device``,
``zoo`` -> ``cli``; ``errors`` and ``progress`` are shared by all.
"""
from __future__ import annotations

from .config.preprocess import PreprocessSpec, load_spec, preset
from .config.recipe import Recipe
from .convert.pipeline import ConversionResult, convert
from .convert.qat_config import prepare_qat_fx, qat_backend_config, qat_qconfig, qat_qconfig_mapping
from .convert.record import load_conversion
from .data.readers import ArrayReader, DataReader, ImageReader, Sample, open_reader
from .errors import (AlreadyQuantizedError, ConversionError, InputError, Int8Error, Int8Warning, ParityError,
                     UnsupportedOpError)
from .runtime.adapter import Runner, TensorInfo, read_io
from .runtime.versions import __version__
from .verify.core import VerifyResult, verify

__all__ = [
    "AlreadyQuantizedError", "ArrayReader", "ConversionError", "ConversionResult", "DataReader", "ImageReader",
    "InputError", "Int8Error", "Int8Warning", "ParityError", "PreprocessSpec", "Recipe", "Runner", "Sample",
    "TensorInfo", "UnsupportedOpError", "__version__", "convert", "load_conversion", "load_spec", "open_reader",
    "prepare_qat_fx", "preset", "qat_backend_config", "qat_qconfig", "qat_qconfig_mapping", "read_io", "verify",
    "VerifyResult",
]
