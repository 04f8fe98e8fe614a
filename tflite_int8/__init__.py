"""tflite-int8: PyTorch/ONNX -> full-integer TFLite, with proof that it still works."""
from __future__ import annotations

__version__ = "0.1.0"

from .adapter import Runner, TensorInfo, read_io
from .calibrate import ArrayReader, DataReader, ImageReader, Sample, open_reader
from .errors import (AlreadyQuantizedError, ConversionError, InputError, Int8Error, Int8Warning, ParityError,
                     UnsupportedOpError)
from .pipeline import ConversionResult, convert, load_conversion
from .preprocess import PreprocessSpec, load_spec, preset
from .quantize import Recipe
from .verify import VerifyResult, verify

__all__ = [
    "AlreadyQuantizedError", "ArrayReader", "ConversionError", "ConversionResult", "DataReader", "ImageReader",
    "InputError", "Int8Error", "Int8Warning", "ParityError", "PreprocessSpec", "Recipe", "Runner", "Sample",
    "TensorInfo", "UnsupportedOpError", "__version__", "convert", "load_conversion", "load_spec", "open_reader",
    "preset", "read_io", "verify", "VerifyResult",
]
