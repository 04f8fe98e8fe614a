"""A quantization-aware training setup for PyTorch whose every learned parameter TFLite's int8 kernels hold.

TFLite's int8 scheme (the converter's and the kernels' rules) and what this module sets for ``torch.ao``:

* **weights**: int8, symmetric (zero point 0), integers in ``[-127, 127]``, one scale per output channel
  (conv, depthwise conv, fully connected).  :func:`weight_fake_quant`: ``FakeQuantize`` over a
  ``MovingAveragePerChannelMinMaxObserver``, ``qint8``, ``per_channel_symmetric``, ``-127..127``.
  Not PyTorch's default ``FusedMovingAvgObsFakeQuantize``: its fused kernel gives a channel whose weights
  share one sign (common in depthwise filters) a zero point of -127/127 and twice the scale, and puts
  symmetric channels on a -128..127 grid — neither fits TFLite's weights, so the converter re-quantizes them.
* **activations**: one scale and zero point per tensor, 256 levels (``quint8`` ``0..255``: the same grid as
  TFLite's int8 with zero point ``zp - 128``; never PyTorch's 7-bit ``reduce_range``).
* **an activation fused into the op before it** (conv / linear / add followed by ReLU6, ReLU): TFLite
  computes the op and clamps in one kernel and stores one int8 tensor, the activation's output.  FX mode
  (:func:`qat_backend_config`) observes ``op -> ReLU6`` as one pattern, so the only fake-quant is after the
  ReLU6 (PyTorch's default shares one range between the op's output and the ReLU6's, and half its levels
  go to negative values the ReLU6 removes).  Eager mode: give the conv a ``qat_qconfig(output=False)``.
* **ops whose output scale TFLite fixes** (LOGISTIC, SOFTMAX: ``1/256``, zero point -128; TANH: ``1/128``,
  0): PyTorch's fixed-qparams fake-quants for sigmoid/softmax/tanh (``quint8`` ``1/256``, 0 and ``2/256``,
  128) are the same grids, and :func:`qat_qconfig_mapping` keeps them.
* **ops whose output shares its input's scale** (max/average pooling, mean, reshape, transpose, padding,
  concatenation, nearest resize): PyTorch FX shares one fake-quant between input and output, as TFLite does.

What remains is numerical, not a parameter: TFLite rounds the int32 bias to ``input_scale * weight_scale``
and requantizes with fixed-point multipliers, so a value on a rounding tie can land one step away from the
float simulation (``verify``'s ``qat_layers`` shows where).

Public as ``tflite_int8.prepare_qat_fx``, ``qat_qconfig_mapping``, ``qat_backend_config``, ``qat_qconfig``.
Use (FX mode)::

    import tflite_int8 as ti
    model = ti.prepare_qat_fx(float_model.train(), (example,))   # then fine-tune, then ti.convert(model, ...)
    # or: torch.ao.quantization.quantize_fx.prepare_qat_fx(model, ti.qat_qconfig_mapping(), (example,),
    #                                                      backend_config=ti.qat_backend_config())

or eager mode: ``model.qconfig = ti.qat_qconfig()`` then ``torch.ao.quantization.prepare_qat(model)``.
"""
from __future__ import annotations

from typing import Any

RECOMMENDED = ("To keep every learned parameter, train with tflite_int8's TFLite-matched QAT setup: FX mode "
               "tflite_int8.prepare_qat_fx(model, example_inputs) (or tflite_int8.qat_qconfig_mapping() with "
               "backend_config=tflite_int8.qat_backend_config()), eager mode qconfig tflite_int8.qat_qconfig()")
WEIGHT_RANGE = (-127, 127)  # TFLite int8 weights: symmetric, zero point 0
ACTIVATION_RANGE = (0, 255)  # quint8: TFLite int8 with zero point - 128


def weight_fake_quant() -> Any:
    """The weight fake-quant factory: per output channel (axis 0), symmetric, zero point 0, -127..127."""
    import torch
    from torch.ao.quantization import FakeQuantize, MovingAveragePerChannelMinMaxObserver

    return FakeQuantize.with_args(observer=MovingAveragePerChannelMinMaxObserver, quant_min=WEIGHT_RANGE[0],
                                  quant_max=WEIGHT_RANGE[1], dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                  ch_axis=0)


def activation_fake_quant() -> Any:
    """The activation fake-quant factory: per tensor, affine, 256 levels (quint8 0..255), no reduce_range."""
    import torch
    from torch.ao.quantization import FusedMovingAvgObsFakeQuantize, MovingAverageMinMaxObserver

    return FusedMovingAvgObsFakeQuantize.with_args(observer=MovingAverageMinMaxObserver,
                                                   quant_min=ACTIVATION_RANGE[0], quant_max=ACTIVATION_RANGE[1],
                                                   dtype=torch.quint8, qscheme=torch.per_tensor_affine,
                                                   reduce_range=False)


def qat_qconfig(output: bool = True) -> Any:
    """The TFLite-matched QConfig (eager or FX).  ``output=False`` (eager mode): no fake-quant on the module's
    output — for a conv (or fused conv-bn) followed by a ReLU6 that TFLite fuses into it, whose own
    fake-quant is then the only one, like TFLite's single int8 tensor."""
    import torch
    from torch.ao.quantization import QConfig

    return QConfig(activation=activation_fake_quant() if output else torch.nn.Identity, weight=weight_fake_quant())


def qat_qconfig_mapping() -> Any:
    """FX mode: PyTorch's QAT mapping with every op on :func:`qat_qconfig`, except its fixed-qparams fake-quants
    (sigmoid, softmax, tanh: TFLite's own grids) and input-sharing ops (reshape), which it keeps, and transposed
    convolutions, whose weights get one symmetric scale (PyTorch's per-channel axis 0 is their input axis)."""
    import torch
    from torch.ao.quantization import (FakeQuantize, FixedQParamsFakeQuantize, MovingAverageMinMaxObserver, QConfig,
                                       ReuseInputObserver, get_default_qat_qconfig_mapping)

    mapping = get_default_qat_qconfig_mapping("onednn")
    mine = qat_qconfig()
    per_tensor = QConfig(activation=mine.activation, weight=FakeQuantize.with_args(
        observer=MovingAverageMinMaxObserver, quant_min=WEIGHT_RANGE[0], quant_max=WEIGHT_RANGE[1],
        dtype=torch.qint8, qscheme=torch.per_tensor_symmetric))
    transposed = {torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d,
                  torch.nn.functional.conv_transpose1d, torch.nn.functional.conv_transpose2d,
                  torch.nn.functional.conv_transpose3d}
    mapping.set_global(mine)
    for key, qc in list(mapping.object_type_qconfigs.items()):
        if qc is None or isinstance(qc.activation(), (FixedQParamsFakeQuantize, ReuseInputObserver)):
            continue
        mapping.set_object_type(key, per_tensor if key in transposed else mine)
    return mapping


def qat_backend_config() -> Any:
    """FX mode: PyTorch's native backend config (its default) plus ``op -> ReLU6`` patterns (conv, conv-bn, linear, add) observed
    as one op, so the only fake-quant is after the ReLU6 (TFLite's fused activation)."""
    import operator

    import torch
    import torch.ao.nn.intrinsic.qat as nniqat
    import torch.ao.nn.qat as nnqat
    import torch.nn.functional as F
    from torch.ao.quantization.backend_config import BackendPatternConfig, ObservationType, get_native_backend_config

    config = get_native_backend_config()
    dtypes = next(c for c in config.configs if c.pattern is torch.nn.Conv2d).dtype_configs
    add_dtypes = next(c for c in config.configs if c.pattern is operator.add).dtype_configs
    ops = [(m, dtypes) for m in (nnqat.Conv1d, nnqat.Conv2d, nnqat.Conv3d, nniqat.ConvBn1d, nniqat.ConvBn2d,
                                 nniqat.ConvBn3d, nnqat.Linear)]
    ops += [(f, add_dtypes) for f in (operator.add, torch.add)]
    config.set_backend_pattern_configs(
        [BackendPatternConfig((op, act)).set_observation_type(ObservationType.OUTPUT_USE_DIFFERENT_OBSERVER_AS_INPUT)
         .set_dtype_configs(d) for op, d in ops for act in (torch.nn.ReLU6, F.relu6)])
    return config


def prepare_qat_fx(model: Any, example_inputs: tuple[Any, ...]) -> Any:
    """``torch.ao.quantization.quantize_fx.prepare_qat_fx`` with :func:`qat_qconfig_mapping` and
    :func:`qat_backend_config`: ``model`` (train mode) ready to fine-tune, every fake-quant on TFLite's grids."""
    from torch.ao.quantization.quantize_fx import prepare_qat_fx as prepare

    return prepare(model, qat_qconfig_mapping(), example_inputs, backend_config=qat_backend_config())
