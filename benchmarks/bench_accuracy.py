"""int8 accuracy: ours vs onnx2tf's own `-oiqt` full-integer model, on the very same inputs; Fashion-MNIST labelled.

ImageNet models (EfficientNet-Lite0, MobileNetV2; weights from packages): the 24 bundled photos
are split in two. Both tools calibrate on the even ones (10 views each = 120 samples); both int8
models are verified through the same verifier and adapter on 25 views of each odd photo (300
samples the calibration never saw), against the PyTorch float model.
Fashion-MNIST: a CNN trained here (benchmarks/fashion_mnist.py), calibrated on 1,000 training
images, verified with labels on the 10,000 test images.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import peer_oiqt

IMAGENET = {"efficientnet-lite0": "tflite_int8.zoo:efficientnet_lite0", "mobilenet-v2": "tflite_int8.zoo:mobilenet_v2"}
CALIB_VIEWS, VERIFY_VIEWS = 10, 25


def _summary(result: Any) -> dict[str, Any]:
    rep = result.report
    out = next(iter(rep["outputs"].values()))
    c = rep.get("classification", {})
    row = {"samples": rep["data"]["samples"], "cosine": out["cosine"], "sqnr_db": out["sqnr_db"],
           "top1_agreement": c.get("top1_agreement"), "top5_agreement": c.get("top5_agreement"),
           "passed": rep["passed"], "seconds": rep["seconds"]}
    for key in ("accuracy_float", "accuracy_int8", "accuracy_drop_points"):
        if key in c:
            row[key] = c[key]
    return row


def run_imagenet(workers: int = 2) -> dict[str, Any]:
    from tflite_int8 import Recipe, convert, load_conversion, verify
    from tflite_int8.data.readers import default_data_dir, open_reader
    from tflite_int8.data.images import list_images

    photos = list_images(default_data_dir()).paths
    calib, held_out = photos[0::2], photos[1::2]
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as tmp:
        for name, factory in IMAGENET.items():
            work = Path(tmp) / name
            work.mkdir()
            ours = convert(factory, work / "ours", data=calib, views=CALIB_VIEWS, recipe=Recipe())
            _, spec = load_conversion(ours.out_dir)
            reader = open_reader(calib, spec, views=CALIB_VIEWS, warn_few=False)
            raw = np.concatenate([s.pixels[None].astype(np.float32) / 255.0 for s in reader])
            _, _, peer_int8 = peer_oiqt(ours.out_dir / "model.onnx", raw, spec, work / "peer")
            common = dict(data=held_out, views=VERIFY_VIEWS, seed=1, layers=False, workers=workers)
            mine = verify(ours.out_dir, **common)
            peer = verify(tflite=peer_int8, reference=factory, spec=spec, **common)
            results[name] = {"ours": _summary(mine), "peer": _summary(peer),
                             "hygiene": mine.report["hygiene"].get("shared_source_files")}
    return results


def run_fashion_mnist(workers: int = 2) -> dict[str, Any]:
    from benchmarks import fashion_mnist as fm
    from tflite_int8 import Recipe, convert, verify

    train_x, _ = fm.load("train")
    test_x, test_y = fm.load("t10k")
    with tempfile.TemporaryDirectory(prefix="bench-fmnist-") as tmp:
        calib = Path(tmp) / "calib.npy"
        order = np.random.default_rng(0).permutation(len(train_x))[:1000]
        np.save(calib, fm.preprocess(train_x[np.sort(order)]))
        test = Path(tmp) / "test.npy"
        np.save(test, fm.preprocess(test_x))
        conv = convert("benchmarks.fashion_mnist:fashion_cnn", Path(tmp) / "out", data=calib, recipe=Recipe())
        result = verify(conv.out_dir, data=test, labels=test_y, layers=False, workers=workers)
    return {"ours": _summary(result)}
