"""A small CNN trained here on Fashion-MNIST (Debian package dataset-fashion-mnist), for int8 accuracy.

`python -m benchmarks.fashion_mnist` trains it (about a minute on 2 cores, seed 0) and writes
benchmarks/weights/fashion_cnn.pt, the committed weights the accuracy benchmark converts.
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tflite_int8.config.preprocess import PreprocessSpec

DATA = Path("/usr/share/datasets/fashion-mnist")
WEIGHTS = Path(__file__).resolve().parent / "weights" / "fashion_cnn.pt"
SPEC = PreprocessSpec(size=(28, 28), resize="stretch", channels="L", mean=(0.2860,), std=(0.3530,))


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 28, 28) and int64 labels of 'train' or 't10k'."""
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is missing: apt-get install dataset-fashion-mnist")
    with gzip.open(DATA / f"{split}-images-idx3-ubyte.gz") as f:
        _, n, h, w = struct.unpack(">IIII", f.read(16))
        images = np.frombuffer(f.read(), np.uint8).reshape(n, h, w)
    with gzip.open(DATA / f"{split}-labels-idx1-ubyte.gz") as f:
        f.read(8)
        labels = np.frombuffer(f.read(), np.uint8).astype(np.int64)
    return images, labels


def preprocess(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 1, 28, 28) float32 with SPEC's mean/std (what calibration and verify use)."""
    x = images.astype(np.float32) / 255.0
    return ((x - SPEC.mean[0]) / SPEC.std[0])[:, None]


class FashionCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.classifier = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def fashion_cnn() -> nn.Module:
    model = FashionCNN()
    model.load_state_dict(torch.load(WEIGHTS, weights_only=True))
    return model.eval()


fashion_cnn.preprocess_spec = SPEC  # type: ignore[attr-defined]


def train(epochs: int = 3, seed: int = 0) -> float:
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    x, y = load("train")
    xt, yt = load("t10k")
    x, xt = torch.from_numpy(preprocess(x)), torch.from_numpy(preprocess(xt))
    y = torch.from_numpy(y)
    model = FashionCNN()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 4e-3, total_steps=epochs * (len(x) // 128 + 1))
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(128):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            acc = float((torch.cat([model(b) for b in xt.split(1000)]).argmax(1).numpy() == yt).mean())
        print(f"epoch {epoch + 1}: test accuracy {acc:.4f}")
    WEIGHTS.parent.mkdir(exist_ok=True)
    torch.save(model.state_dict(), WEIGHTS)
    return acc


if __name__ == "__main__":
    train()
