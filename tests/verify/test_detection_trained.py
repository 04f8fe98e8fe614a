"""The trained reference detector through convert and verify --task detect (its own module: the suite's longest
test runs beside the others)."""
from __future__ import annotations

import pytest

from tflite_int8 import verify


@pytest.mark.slow
def test_trained_detector_keeps_its_map_with_the_split_head(tmp_path):
    """The reference detector (tflite_int8/zoo/detector.py, weights committed), split head with the decode in the
    model and on the host, and its anchor-free (v8) twin; same data. (The naive conversion's crushed scores:
    tests/verify/test_detection.py::test_the_naive_conversion_warns_and_crushes_the_scores.)"""
    from tflite_int8.zoo.shapes_data import write_coco
    from tflite_int8 import convert

    labels = write_coco(tmp_path / "val", "val", 100)
    write_coco(tmp_path / "calib", "train", 100, seed=7)
    figures = {}
    for key, model, fix, dec in (("fix", "tflite_int8.zoo.detector:yolo_shapes", True, "model"),
                                 ("host", "tflite_int8.zoo.detector:yolo_shapes", True, "host"),
                                 ("v8", "tflite_int8.zoo.detector:yolo_shapes_v8", True, "model")):
        convert(model, tmp_path / key, data=tmp_path / "calib" / "images", task="detect", head_fix=fix, decode=dec)
        figures[key] = verify(tmp_path / key, data=tmp_path / "val" / "images", labels=labels,
                              layers=False).report["detection"]
    fix, host, v8 = figures["fix"], figures["host"], figures["v8"]
    assert fix["map50_95_float"] > 0.55  # the trained model detects
    assert fix["map50_95_drop_points"] < 6 and fix["box_agreement"] > 0.9
    assert host["map50_95_drop_points"] < 3.5 and host["box_agreement"] > 0.9
    assert v8["split_head"] and v8["map50_95_drop_points"] < 6
