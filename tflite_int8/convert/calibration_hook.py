"""One seam in TF's int8 converter: between calibration (min/max per tensor) and quantization (mlir_quantize).

MSE ranges (:mod:`.ranges`) and a QAT model's own ranges and grids (:mod:`.qat_params`) both edit the calibrated
model there; :func:`edit_calibrated` installs the edit once, the way ``TFLiteConverter._quantize`` itself calls
``mlir_quantize`` (tensorflow/lite/python/lite.py).
"""
from __future__ import annotations

from typing import Any, Callable


def edit_calibrated(converter: Any, edit: Callable[[bytes], tuple[bytes, Any]],
                    after: Callable[[bytes, Any], bytes] | None = None) -> None:
    """Make ``converter`` run ``edit(calibrated) -> (calibrated', state)`` on the calibrated model before
    quantizing it, then ``after(quantized, state)`` (if given) on the quantized model.  When TF's quantization
    debugger asks for the calibrated model only, it gets the edited one."""
    from tensorflow.lite.python.convert import mlir_quantize

    calibrate = converter._quantize

    def _quantize(result: Any, input_type: Any, output_type: Any, activations_type: Any, bias_type: Any,
                  allow_float: Any, enable_variable_quantization: Any, debug_options: Any) -> bytes:
        wants_calibrated = converter._experimental_calibrate_only  # TF's quantization debugger quantizes itself
        converter._experimental_calibrate_only = True
        try:
            calibrated = calibrate(result, input_type, output_type, activations_type, bias_type, allow_float,
                                   enable_variable_quantization, debug_options)
        finally:
            converter._experimental_calibrate_only = wants_calibrated
        edited, state = edit(calibrated)
        if wants_calibrated:
            return edited
        quantized = mlir_quantize(
            edited, converter._experimental_disable_per_channel, input_data_type=input_type,
            output_data_type=output_type, enable_variable_quantization=enable_variable_quantization,
            disable_per_channel_for_dense_layers=(
                converter._experimental_disable_per_channel_quantization_for_dense_layers),
            debug_options_str=debug_options.SerializeToString())
        return after(quantized, state) if after is not None else quantized

    converter._quantize = _quantize
