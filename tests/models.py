"""Tiny PyTorch models for the unit tests (seconds to convert)."""
from __future__ import annotations

import torch
from torch import nn

from tflite_int8.preprocess import PreprocessSpec

TINY_SPEC = PreprocessSpec(size=(32, 32), resize="stretch")


class TinyNet(nn.Module):
    """Conv/BN/SiLU/ReLU6/Concat/Upsample/Linear: every op family the pipeline must carry."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.SiLU())
        self.branch = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU6())
        self.down = nn.Sequential(nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU())
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.head = nn.Linear(24, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.stem(x)
        b = self.branch(a)
        c = torch.cat([a, b], dim=1)
        d = self.up(self.down(c))
        feat = torch.cat([d, b], dim=1).mean(dim=(2, 3))
        return self.head(feat)


def tiny() -> nn.Module:
    torch.manual_seed(0)
    model = TinyNet().eval()
    with torch.no_grad():  # non-trivial BN statistics, so folding is exercised
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


tiny.preprocess_spec = TINY_SPEC  # type: ignore[attr-defined]


class TwoOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.relu(self.conv(x))
        return y, self.fc(y.mean(dim=(2, 3)))


def two_outputs() -> nn.Module:
    torch.manual_seed(1)
    return TwoOutputs().eval()


def not_a_module() -> int:
    return 3


class SpatialNet(nn.Module):
    """Logits that follow the image content (no global pooling): a wrong input range shows in the outputs."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.pool = nn.AvgPool2d(4)
        self.head = nn.Linear(8 * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(torch.relu(self.conv(x))).flatten(1))


def spatial() -> nn.Module:
    torch.manual_seed(2)
    return SpatialNet().eval()


spatial.preprocess_spec = TINY_SPEC  # type: ignore[attr-defined]
