"""PyTorch or ONNX -> full-integer TFLite: export, guards, head split, translate (onnx2tf), quantize (TF converter),
and the conversion record (conversion.json).  Entry: :func:`convert`."""
from .pipeline import ConversionResult, convert
from .record import Conversion, load_conversion, read_conversion

__all__ = ["Conversion", "ConversionResult", "convert", "load_conversion", "read_conversion"]
