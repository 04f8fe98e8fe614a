"""Trains the reference detector on generated shapes (tflite_int8/zoo/shapes_data.py); writes
tflite_int8/zoo/weights/yolo_shapes.pt.

    .venv/bin/python -m benchmarks.detector.train [--epochs 20] [--images 1024]

YOLOv5's recipe, shortened for 2 CPU cores: anchor matching with ratio < 4 and two neighbour cells,
CIoU box loss, objectness BCE against the IoU, class BCE, per-scale objectness balance, EMA weights.
Every epoch draws fresh images (seeded by epoch and index), so the set never repeats.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from torch import nn

from tflite_int8.zoo import shapes_data as data
from tflite_int8.zoo.detector import CLASSES, SIZE, STRIDES, WEIGHTS, YoloV5


class Shapes(torch.utils.data.Dataset):
    def __init__(self, epoch: int, count: int):
        self.epoch, self.count = epoch, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int):
        pixels, boxes, classes = data.sample("train", self.epoch * self.count + i, seed=1)
        x = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255.0
        t = torch.tensor([[c, b[0] + b[2] / 2, b[1] + b[3] / 2, b[2], b[3]] for b, c in zip(boxes, classes)],
                         dtype=torch.float32).view(-1, 5)
        return x, t


def collate(batch):
    xs, ts = zip(*batch)
    targets = [torch.cat((torch.full((len(t), 1), float(i)), t), 1) for i, t in enumerate(ts)]
    return torch.stack(xs), torch.cat(targets)


def ciou(b1: torch.Tensor, b2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU of xywh boxes (same shape)."""
    (x1, y1, w1, h1), (x2, y2, w2, h2) = b1.unbind(-1), b2.unbind(-1)
    b1x1, b1x2, b1y1, b1y2 = x1 - w1 / 2, x1 + w1 / 2, y1 - h1 / 2, y1 + h1 / 2
    b2x1, b2x2, b2y1, b2y2 = x2 - w2 / 2, x2 + w2 / 2, y2 - h2 / 2, y2 + h2 / 2
    inter = (torch.min(b1x2, b2x2) - torch.max(b1x1, b2x1)).clamp(0) * \
        (torch.min(b1y2, b2y2) - torch.max(b1y1, b2y1)).clamp(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = torch.max(b1x2, b2x2) - torch.min(b1x1, b2x1)
    ch = torch.max(b1y2, b2y2) - torch.min(b1y1, b2y1)
    c2 = cw ** 2 + ch ** 2 + eps
    rho2 = (x2 - x1) ** 2 + (y2 - y1) ** 2
    v = (4 / math.pi ** 2) * (torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


class YoloLoss:
    balance = (4.0, 1.0, 0.4)

    def __init__(self, model: YoloV5):
        det = model.detect
        self.na, self.nc = det.na, det.nc
        self.anchors = [det.anchors[i] / s for i, s in enumerate(STRIDES)]  # grid units
        self.bce = nn.BCEWithLogitsLoss()
        self.box_gain, self.obj_gain, self.cls_gain = 0.05, (SIZE / 640) ** 2, 0.5 * self.nc / 80

    def __call__(self, preds: list[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        lbox = lobj = lcls = torch.zeros(())
        for i, p in enumerate(preds):
            tobj = torch.zeros(p.shape[:4])
            b, a, gj, gi, tbox, tcls = self._build(p, targets, i)
            if len(b):
                ps = p[b, a, gj, gi]
                pxy = ps[:, :2].sigmoid() * 2 - 0.5
                pwh = (ps[:, 2:4].sigmoid() * 2) ** 2 * self.anchors[i][a]
                iou = ciou(torch.cat((pxy, pwh), 1), tbox)
                lbox = lbox + (1.0 - iou).mean()
                tobj[b, a, gj, gi] = iou.detach().clamp(0)
                t = torch.zeros_like(ps[:, 5:])
                t[range(len(b)), tcls] = 1.0
                lcls = lcls + self.bce(ps[:, 5:], t)
            lobj = lobj + self.bce(p[..., 4], tobj) * self.balance[i]
        bs = preds[0].shape[0]
        return (lbox * self.box_gain + lobj * self.obj_gain + lcls * self.cls_gain) * bs

    def _build(self, p: torch.Tensor, targets: torch.Tensor, i: int):
        _, _, ny, nx, _ = p.shape
        stride = STRIDES[i]
        anchors = self.anchors[i]
        t = targets.clone()
        t[:, 2:6] /= stride  # grid units
        nt = len(t)
        if nt == 0:
            z = torch.zeros(0, dtype=torch.long)
            return z, z, z, z, torch.zeros(0, 4), z
        ai = torch.arange(self.na).view(self.na, 1).repeat(1, nt)
        t = torch.cat((t.repeat(self.na, 1, 1), ai[..., None].float()), 2)  # (na, nt, 7)
        r = t[..., 4:6] / anchors[:, None]
        t = t[torch.max(r, 1 / r).max(2)[0] < 4.0]
        g = 0.5
        off = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], dtype=torch.float32) * g
        gxy = t[:, 2:4]
        gxi = torch.tensor([nx, ny], dtype=torch.float32) - gxy
        j, k = ((gxy % 1 < g) & (gxy > 1)).T
        l, m = ((gxi % 1 < g) & (gxi > 1)).T
        jm = torch.stack((torch.ones_like(j), j, k, l, m))
        t = t.repeat((5, 1, 1))[jm]
        offsets = (torch.zeros_like(gxy)[None] + off[:, None])[jm]
        b, c = t[:, 0].long(), t[:, 1].long()
        gxy, gwh = t[:, 2:4], t[:, 4:6]
        gij = (gxy - offsets).long()
        gi, gj = gij[:, 0].clamp(0, nx - 1), gij[:, 1].clamp(0, ny - 1)
        a = t[:, 6].long()
        tbox = torch.cat((gxy - torch.stack((gi, gj), 1), gwh), 1)
        return b, a, gj, gi, tbox, c


def init_biases(model: YoloV5) -> None:
    det = model.detect
    for conv, s in zip(det.m, STRIDES):
        b = conv.bias.view(det.na, -1)
        with torch.no_grad():
            b[:, 4] += math.log(8 / (SIZE / s) ** 2)
            b[:, 5:] += math.log(0.6 / (det.nc - 0.99))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--images", type=int, default=1024, help="fresh images per epoch")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--out", default=str(WEIGHTS))
    a = p.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = YoloV5(nc=len(CLASSES))
    init_biases(model)
    ema = YoloV5(nc=len(CLASSES))
    ema.load_state_dict(model.state_dict())
    ema.eval()
    loss_fn = YoloLoss(model)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=5e-4)
    steps = a.epochs * math.ceil(a.images / a.batch)
    warm = max(1, min(300, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (s - warm) / (steps - warm))))
    step = 0
    t0 = time.time()
    for epoch in range(a.epochs):
        model.train()
        model.detect.raw = True
        loader = torch.utils.data.DataLoader(Shapes(epoch, a.images), batch_size=a.batch, shuffle=False,
                                             collate_fn=collate, num_workers=1)
        losses = []
        for x, targets in loader:
            loss = loss_fn(model(x), targets)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            sched.step()
            step += 1
            d = 0.999 * (1 - math.exp(-step / 300))
            with torch.no_grad():
                msd = model.state_dict()
                for k, v in ema.state_dict().items():
                    if v.dtype.is_floating_point:
                        v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
                    else:
                        v.copy_(msd[k])
            losses.append(float(loss))
        print(f"epoch {epoch + 1}/{a.epochs}: loss {np.mean(losses):.4f}, lr {sched.get_last_lr()[0]:.5f}, "
              f"{time.time() - t0:.0f} s", flush=True)
        torch.save(ema.state_dict(), a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
