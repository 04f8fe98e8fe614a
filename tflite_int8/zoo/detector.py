"""A compact YOLOv5 (v6 architecture): the reference detector of the tests and the detection benchmark: Conv-BN-SiLU, C3, SPPF, PAN neck, Detect.

Width 0.125 / depth 0.33 of YOLOv5s's layout (half of YOLOv5n's width), 256x256 input, 4 classes of
shapes (see shapes_data.py); trained by benchmarks/detector/train.py, weights in zoo/weights/yolo_shapes.pt.

The Detect head decodes in the graph the way YOLOv5 >= 6.2 exports it (sigmoid, split, grid/anchor
math, concat): output ``[1, N, 5 + nc]`` = (x, y, w, h in input pixels, objectness, class scores).
``layout="v8"`` emits YOLOv8's layout instead: ``[1, 4 + nc, N]`` = (x, y, w, h, objectness x class).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..config.preprocess import PreprocessSpec

CLASSES = ("circle", "square", "triangle", "cross")
SIZE = 256
STRIDES = (8, 16, 32)
ANCHORS = ((12, 12, 20, 16, 16, 22), (30, 30, 44, 36, 36, 48), (64, 64, 92, 80, 80, 104))
WEIGHTS = Path(__file__).resolve().parent / "weights" / "yolo_shapes.pt"


class Conv(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c1: int, c2: int, shortcut: bool = True):
        super().__init__()
        self.cv1 = Conv(c1, c2, 1)
        self.cv2 = Conv(c2, c2, 3)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True):
        super().__init__()
        c_ = c2 // 2
        self.cv1 = Conv(c1, c_)
        self.cv2 = Conv(c1, c_)
        self.cv3 = Conv(2 * c_, c2)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPPF(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_)
        self.cv2 = Conv(c_ * 4, c2)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Detect(nn.Module):
    def __init__(self, nc: int, channels: tuple[int, ...], layout: str = "v5"):
        super().__init__()
        self.nc, self.no, self.na = nc, nc + 5, len(ANCHORS[0]) // 2
        self.layout = layout
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in channels)
        self.register_buffer("anchors", torch.tensor(ANCHORS, dtype=torch.float32).view(3, self.na, 2))
        self.raw = False  # training: the raw per-scale maps

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        raw, out = [], []
        for i, (x, stride) in enumerate(zip(xs, STRIDES)):
            p = self.m[i](x)
            b, _, ny, nx = p.shape
            p = p.view(b, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            raw.append(p)
            if self.raw:
                continue
            yv, xv = torch.meshgrid(torch.arange(ny, dtype=p.dtype), torch.arange(nx, dtype=p.dtype), indexing="ij")
            grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2) - 0.5
            anchor_grid = self.anchors[i].view(1, self.na, 1, 1, 2).expand(1, self.na, ny, nx, 2)
            xy, wh, conf = p.sigmoid().split((2, 2, self.nc + 1), 4)
            xy = (xy * 2 + grid) * stride
            wh = (wh * 2) ** 2 * anchor_grid
            out.append(torch.cat((xy, wh, conf), 4).view(b, self.na * nx * ny, self.no))
        if self.raw:
            return raw
        y = torch.cat(out, 1)
        if self.layout == "v8":
            scores = y[..., 5:] * y[..., 4:5]
            return torch.cat((y[..., :4], scores), 2).permute(0, 2, 1)
        return y


class YoloV5(nn.Module):
    """YOLOv5 v6: backbone (Conv, C3, SPPF), PAN neck, anchor-based Detect."""

    def __init__(self, nc: int = len(CLASSES), width: float = 0.125, depth: float = 0.33, layout: str = "v5"):
        super().__init__()

        def c(ch: int) -> int:
            return max(8, int(ch * width + 7) // 8 * 8)

        def n(k: int) -> int:
            return max(1, round(k * depth))

        self.b0 = Conv(3, c(64), 6, 2, 2)
        self.b1 = Conv(c(64), c(128), 3, 2)
        self.b2 = C3(c(128), c(128), n(3))
        self.b3 = Conv(c(128), c(256), 3, 2)
        self.b4 = C3(c(256), c(256), n(6))
        self.b5 = Conv(c(256), c(512), 3, 2)
        self.b6 = C3(c(512), c(512), n(9))
        self.b7 = Conv(c(512), c(1024), 3, 2)
        self.b8 = C3(c(1024), c(1024), n(3))
        self.b9 = SPPF(c(1024), c(1024))
        self.h10 = Conv(c(1024), c(512))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.h13 = C3(c(1024), c(512), n(3), False)
        self.h14 = Conv(c(512), c(256))
        self.h17 = C3(c(512), c(256), n(3), False)
        self.h18 = Conv(c(256), c(256), 3, 2)
        self.h20 = C3(c(512), c(512), n(3), False)
        self.h21 = Conv(c(512), c(512), 3, 2)
        self.h23 = C3(c(1024), c(1024), n(3), False)
        self.detect = Detect(nc, (c(256), c(512), c(1024)), layout)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        p3 = self.b4(self.b3(self.b2(self.b1(self.b0(x)))))
        p4 = self.b6(self.b5(p3))
        p5 = self.b9(self.b8(self.b7(p4)))
        h10 = self.h10(p5)
        h14 = self.h14(self.h13(torch.cat((self.up(h10), p4), 1)))
        h17 = self.h17(torch.cat((self.up(h14), p3), 1))
        h20 = self.h20(torch.cat((self.h18(h17), h14), 1))
        h23 = self.h23(torch.cat((self.h21(h20), h10), 1))
        return self.detect([h17, h20, h23])


def _trained(layout: str) -> YoloV5:
    model = YoloV5(layout=layout)
    model.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
    return model.eval()


def yolo_shapes() -> YoloV5:
    """The trained detector, YOLOv5 output layout [1, N, 5 + nc]."""
    return _trained("v5")


def yolo_shapes_v8() -> YoloV5:
    """The same trained detector with YOLOv8's output layout [1, 4 + nc, N]."""
    return _trained("v8")


SPEC = PreprocessSpec(size=(SIZE, SIZE), resize="letterbox", mean=(0.0,), std=(1.0,))  # pixels / 255
yolo_shapes.preprocess_spec = SPEC  # type: ignore[attr-defined]
yolo_shapes_v8.preprocess_spec = SPEC  # type: ignore[attr-defined]
