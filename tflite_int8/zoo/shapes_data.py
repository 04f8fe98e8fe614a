"""A labelled detection dataset made here: shapes pasted onto crops of real photos, exact boxes.

Four classes (circle, square, triangle, cross), 1-6 objects of 14-100 px per 256x256 image, random
colours and aspect ratios, on random crops of the bundled photos (representative_data/) and of
scikit-image's and scikit-learn's sample photos. Deterministic from (split, seed, index). Train and val
use disjoint background photos. ``write_coco`` stores a split as PNG files plus a COCO annotation file
(boxes [x, y, w, h] in pixels), the format ``tflite-int8 verify --labels`` reads for detection.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..data.readers import default_data_dir
from .detector import CLASSES, SIZE



@lru_cache(maxsize=1)
def _backgrounds() -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """(train, val) background photos as uint8 RGB arrays; every 4th photo is val-only."""
    photos = []
    for p in sorted(default_data_dir().iterdir()):
        if p.suffix.lower() in (".jpg", ".jpeg", ".png"):
            photos.append(np.asarray(Image.open(p).convert("RGB")))
    import skimage.data
    from sklearn.datasets import load_sample_image

    for name in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
                 "motorcycle_left", "retina", "colorwheel", "logo"):
        try:
            img = getattr(skimage.data, name)()
        except Exception:  # noqa: BLE001 - an optional extra background
            continue
        if img.ndim == 3:
            photos.append(np.ascontiguousarray(img[..., :3]))
    photos += [load_sample_image("china.jpg"), load_sample_image("flower.jpg")]
    photos = [p for p in photos if min(p.shape[:2]) >= 128]
    return tuple(p for i, p in enumerate(photos) if i % 4), tuple(p for i, p in enumerate(photos) if not i % 4)


def _background(rng: np.random.Generator, pool: tuple[np.ndarray, ...]) -> Image.Image:
    photo = pool[rng.integers(len(pool))]
    h, w = photo.shape[:2]
    side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    img = Image.fromarray(photo[y:y + side, x:x + side]).resize((SIZE, SIZE), Image.BILINEAR)
    return img.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else img


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _polygon(cls: int, x: float, y: float, w: float, h: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    if cls == 1:  # square / rectangle
        return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    if cls == 2:  # triangle, apex anywhere on the top edge
        apex = x + w * float(rng.uniform(0.2, 0.8))
        return [(apex, y), (x + w, y + h), (x, y + h)]
    t = 0.32  # cross: arm thickness as a fraction
    cx0, cx1 = x + w * (0.5 - t / 2), x + w * (0.5 + t / 2)
    cy0, cy1 = y + h * (0.5 - t / 2), y + h * (0.5 + t / 2)
    return [(cx0, y), (cx1, y), (cx1, cy0), (x + w, cy0), (x + w, cy1), (cx1, cy1), (cx1, y + h), (cx0, y + h),
            (cx0, cy1), (x, cy1), (x, cy0), (cx0, cy0)]


def sample(split: str, index: int, seed: int = 0) -> tuple[np.ndarray, list[list[float]], list[int]]:
    """One image (uint8 HxWx3), its boxes [x, y, w, h] in pixels and classes."""
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, index])
    train, val = _backgrounds()
    img = _background(rng, train if split == "train" else val)
    draw = ImageDraw.Draw(img)
    boxes: list[list[float]] = []
    classes: list[int] = []
    for _ in range(int(rng.integers(1, 7))):
        for _attempt in range(10):
            size = float(np.exp(rng.uniform(np.log(14), np.log(100))))
            aspect = float(np.exp(rng.uniform(-0.35, 0.35)))
            w, h = round(size * aspect), round(size / aspect)
            x, y = int(rng.integers(0, SIZE - w)), int(rng.integers(0, SIZE - h))
            box = [float(x), float(y), float(w), float(h)]
            if all(_iou(box, b) < 0.2 for b in boxes):
                break
        else:
            continue
        cls = int(rng.integers(len(CLASSES)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        outline = tuple(255 - c for c in colour) if rng.random() < 0.5 else None
        if cls == 0:
            draw.ellipse([x, y, x + w - 1, y + h - 1], fill=colour, outline=outline)
        else:
            pts = _polygon(cls, x, y, w - 1, h - 1, rng)
            draw.polygon(pts, fill=colour, outline=outline)
        boxes.append(box)
        classes.append(cls)
    return np.asarray(img, dtype=np.uint8), boxes, classes


def write_coco(out_dir: str | Path, split: str = "val", count: int = 300, seed: int = 0) -> Path:
    """PNG files + ``annotations.json`` (COCO: images, annotations with bbox [x, y, w, h], categories)."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(count):
        pixels, boxes, classes = sample(split, i, seed)
        name = f"{split}_{i:04d}.png"
        Image.fromarray(pixels).save(out / "images" / name)
        images.append({"id": i + 1, "file_name": name, "width": SIZE, "height": SIZE})
        for b, c in zip(boxes, classes):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": c, "bbox": b, "area": b[2] * b[3],
                         "iscrowd": 0})
    cats = [{"id": i, "name": n} for i, n in enumerate(CLASSES)]
    path = out / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path
