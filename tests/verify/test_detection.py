"""Detection parity: decode, NMS, mAP (pycocotools), box agreement, and convert/verify --task detect."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.models import TINY_SPEC
from tflite_int8 import convert, verify
from tflite_int8.runtime.adapter import Runner
from tflite_int8.cli import main
from tflite_int8.verify.detection import DetectionTask, agreement, coco_map, decode, nms, read_coco
from tflite_int8.errors import InputError
from tflite_int8.config.preprocess import PreprocessSpec

V5 = {"layout": "v5", "boxes": "o", "scores": "o", "objectness": True, "num_classes": 2, "box_units": "pixels"}


def test_decode_all_layouts_agree():
    y = np.array([[[10, 20, 4, 6, 0.5, 0.2, 0.8]]], np.float32)  # one box, v5 layout
    boxes, scores = decode({"o": y}, V5)
    np.testing.assert_allclose(boxes, [[8, 17, 12, 23]])
    np.testing.assert_allclose(scores, [[0.1, 0.4]])
    v8 = {"layout": "v8", "boxes": "o", "scores": "o", "objectness": False, "num_classes": 2, "box_units": "pixels"}
    b8, s8 = decode({"o": np.concatenate([y[..., :4], scores[None]], 2).transpose(0, 2, 1)}, v8)
    np.testing.assert_allclose(b8, boxes) and np.testing.assert_allclose(s8, scores)
    split = {**V5, "boxes": "b", "scores": "s", "box_units": "fraction of input size", "input_size": [40, 20]}
    bs, ss = decode({"b": y[..., :4] / np.array([20, 40, 20, 40], np.float32), "s": y[..., 4:]}, split)
    np.testing.assert_allclose(bs, boxes, rtol=1e-6) and np.testing.assert_allclose(ss, scores)


def test_nms_keeps_the_best_of_overlapping_boxes_per_class():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([[0.9, 0], [0.8, 0], [0, 0.7], [0.0005, 0]], np.float32)
    kept = nms(boxes, scores, conf=0.001, iou=0.5, max_det=10)
    assert kept[:, 4].tolist() == pytest.approx([0.9, 0.7]) and kept[:, 5].tolist() == [0, 1]


def test_agreement_matches_one_to_one_same_class():
    a = np.array([[0, 0, 10, 10, 0.9, 0], [20, 20, 30, 30, 0.8, 1]], np.float32)
    b = np.array([[1, 0, 10, 10, 0.7, 0], [20, 20, 30, 30, 0.8, 0]], np.float32)
    assert agreement(a, b) == (1, 2, 2)


def test_coco_map_perfect_and_empty():
    truth = [np.array([[0, 0, 10, 10, 0], [20, 20, 40, 40, 1]], np.float32)]
    perfect = [np.array([[0, 0, 10, 10, 0.9, 0], [20, 20, 40, 40, 0.8, 1]], np.float32)]
    assert coco_map(truth, perfect, 2) == {"map50_95": pytest.approx(1.0), "map50": pytest.approx(1.0)}
    shifted = [np.array([[3, 3, 13, 13, 0.9, 0], [20, 20, 40, 40, 0.8, 1]], np.float32)]
    m = coco_map(truth, shifted, 2)
    assert 0.3 < m["map50_95"] < 0.9 and m["map50"] == pytest.approx(0.5, abs=0.01)
    assert coco_map(truth, [np.zeros((0, 6), np.float32)], 2) == {"map50_95": 0.0, "map50": 0.0}


def test_coco_labels_map_into_model_coordinates(tmp_path):
    doc = {"images": [{"id": 1, "file_name": "a/b.jpg", "width": 200, "height": 100}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [50, 25, 100, 50]}]}
    (tmp_path / "l.json").write_text(json.dumps(doc))
    box = read_coco(tmp_path / "l.json", PreprocessSpec(size=(100, 100), resize="letterbox"))["b.jpg"]
    np.testing.assert_allclose(box, [[25, 37.5, 75, 62.5, 3]])  # scale 0.5, 25 px of padding on top and bottom
    (tmp_path / "bad.json").write_text('{"images": []}')
    with pytest.raises(InputError, match="not a COCO annotation file"):
        read_coco(tmp_path / "bad.json", TINY_SPEC)


def test_the_split_conversion_has_boxes_and_scores_each_with_its_scale(tiny_det_fix):
    head = tiny_det_fix.report["head"]
    assert head["decode"]["boxes"] == "boxes" and head["decode"]["num_classes"] == 2
    assert any("head split" in a for a in tiny_det_fix.report["adjustments"])
    assert tiny_det_fix.report["onnx"]["outputs"] == ["boxes", "scores"]
    boxes, scores = Runner(tiny_det_fix.int8_path, output_names=["boxes", "scores"]).outputs
    assert boxes.shape == (1, 48, 4) and scores.shape == (1, 48, 3)
    assert boxes.scales[0] < 0.02 and scores.scales[0] < 0.005  # 0..1 each over 256 levels


def test_the_naive_conversion_warns_and_crushes_the_scores(tiny_det_naive, tiny_det_fix, det_data):
    assert tiny_det_naive.report["head"]["lint"] and tiny_det_naive.report["head"]["fix"] is None
    assert any("span" in w and "levels" in w for w in tiny_det_naive.warnings)
    (out,) = Runner(tiny_det_naive.int8_path).outputs
    assert out.scales[0] > 0.1  # one scale for pixels and scores alike
    naive = verify(tiny_det_naive.out_dir, data=det_data / "images", labels=det_data / "annotations.json",
                   layers=False)
    fixed = verify(tiny_det_fix.out_dir, data=det_data / "images", labels=det_data / "annotations.json",
                   layers=False)
    d_naive, d_fix = naive.report["detection"], fixed.report["detection"]
    for key in ("map50_float", "map50_int8", "map50_95_float", "map50_95_int8", "box_agreement"):
        assert key in d_fix and key in d_naive
    assert d_fix["box_agreement"] > d_naive["box_agreement"]
    assert fixed.report["outputs"]["scores"]["cosine"] > 0.999


def test_verify_cli_reports_detection(tiny_det_fix, det_data, tmp_path, capsys):
    code = main(["verify", str(tiny_det_fix.out_dir), "--data", str(det_data / "images"), "--labels",
                 str(det_data / "annotations.json"), "--no-layers", "--report-dir", str(tmp_path / "r"),
                 "--min-box-agreement", "0"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "detection: box agreement" in out and "mAP50-95 float" in out
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["task"] == "detection" and report["detection"]["labelled_samples"] == 12
    html = (tmp_path / "r" / "report.html").read_text()
    assert "<h2>Detection</h2>" in html and html.count("data:image/png") >= 6


def test_detection_needs_whole_images_and_a_detect_conversion(tiny_det_fix, tiny_conversion, det_data):
    with pytest.raises(InputError, match="--views must be 1"):
        verify(tiny_det_fix.out_dir, data=det_data / "images", views=2)
    with pytest.raises(InputError, match="needs a conversion made with `convert --task detect`"):
        verify(tiny_conversion.out_dir, task="detect")


def test_task_failures_name_the_figures():
    task = DetectionTask(V5)
    fails = task.failures({"box_agreement": 0.5, "boxes_matched": 5, "boxes_float": 10, "boxes_int8": 10,
                           "map50_95_drop_points": 3.0, "map50_95_float": 0.5, "map50_95_int8": 0.47},
                          {"box_agreement": 0.9, "map50_95_drop_points": 1.5})
    assert len(fails) == 2 and "box agreement 0.500 < 0.9" in fails[0] and "drops 3.00 points" in fails[1]


def test_decode_on_the_host(tmp_path, det_data, tiny_det_fix):
    """--decode host: the int8 model ends at the head conv; decode.onnx (float) does the grid/anchor math."""
    from tests.models import tiny_detector
    from tflite_int8 import convert

    conv = convert(tiny_detector(), tmp_path / "host", spec=TINY_SPEC, data=det_data / "images", task="detect",
                   decode="host")
    desc = conv.report["head"]["decode"]
    assert desc["mode"] == "host" and (tmp_path / "host" / "decode.onnx").is_file()
    assert conv.report["onnx"]["outputs"] == desc["raw_outputs"]
    outs = Runner(conv.int8_path).outputs  # the head convolution (3 anchors x 7), split by quantity
    assert len(outs) == len(desc["raw_outputs"]) > 1
    assert sum(sorted(o.shape)[-1] for o in outs) == 21 and all(sorted(o.shape)[:3] == [1, 4, 4] for o in outs)
    res = verify(tmp_path / "host", data=det_data / "images", labels=det_data / "annotations.json", layers=False)
    fix = verify(tiny_det_fix.out_dir, data=det_data / "images", labels=det_data / "annotations.json", layers=False)
    d, f = res.report["detection"], fix.report["detection"]
    assert d["map50_95_float"] == pytest.approx(f["map50_95_float"], abs=1e-6)  # same float model, same decode
    assert d["box_agreement"] > 0.5


def test_a_yolo_head_verified_without_a_task_fails_naming_task_detect(tmp_path, det_data):
    """Converted without --task detect, a [1, 4+nc, N] head shares one int8 scale between pixel boxes and scores:
    tensor metrics would pass it, so verify --task auto fails it naming --task detect; --task raw is the user's
    explicit choice of tensor metrics."""
    from tests.models import tiny_detector_v8

    conv = convert(tiny_detector_v8(), tmp_path / "plain", spec=TINY_SPEC, data=det_data / "images")
    assert conv.report["head"]["lint"]  # the scores get a few of 256 levels
    res = verify(conv.out_dir, data=det_data / "images", layers=False)
    assert res.report["task"] == "raw" and not res.passed
    assert any("YOLO detector's layout" in f and "--task detect" in f for f in res.failures), res.failures
    raw = verify(conv.out_dir, data=det_data / "images", layers=False, task="raw")
    assert "undecided" not in raw.report and not any("YOLO" in f for f in raw.failures)
