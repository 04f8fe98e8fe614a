"""What decided a recover row: the task metric judged, and when tensor metrics cannot judge at all."""
from __future__ import annotations

import json

import onnx
from onnx import TensorProto, helper

from tflite_int8.convert.record import read_conversion
from tflite_int8.recover.judging import decided_by, undecided

OUTPUTS = {"out": {"cosine": 0.99451, "sqnr_db": 21.04}}


def test_the_task_metrics_with_a_threshold_decide_else_the_tensor_metrics():
    det = {"task": "detection", "outputs": OUTPUTS, "thresholds": {"box_agreement": 0.9, "map50_95_drop_points": 1.5},
           "detection": {"box_agreement": 0.66093, "boxes_float": 384}}
    assert decided_by(det) == "detection: box_agreement 0.6609"  # no labels: no mAP drop to judge
    cls = {"task": "classification", "outputs": OUTPUTS,
           "classification": {"top1_agreement": 0.9, "top5_agreement": 1.0}, "thresholds": {"top1_agreement": None, "top5_agreement": 0.95}}
    assert decided_by(cls) == "classification: top5_agreement 1"  # top-1 switched off: not what decided
    raw = {"task": "raw", "outputs": OUTPUTS, "thresholds": {"cosine": 0.95}}
    assert decided_by(raw) == "tensor metrics only (task raw): cosine 0.9945, SQNR 21.0 dB"


def _folder(tmp_path, name, shape, lint=()):
    folder = tmp_path / name
    folder.mkdir()
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), str(folder / "model.onnx"))
    (folder / "conversion.json").write_text(json.dumps({"onnx": {"file": "model.onnx", "outputs": ["y"]},
                                                        "head": {"lint": list(lint)}}))
    return read_conversion(folder)


def test_a_yolo_layout_judged_raw_under_auto_is_undecided(tmp_path):
    lint = [{"output": "y", "channels": [4, 5], "levels": 0.58}]
    v8 = _folder(tmp_path, "v8", [1, 6, 48], lint)
    why = undecided(v8, "auto", "raw")
    assert why.startswith("output 'y' [1, 6, 48] has a YOLO detector's layout [1, 4+classes, N]; the int8 lint "
                          "gives 2 of its channels (scores?) about 0.58 of 256 levels")
    assert "give --task detect" in why and "--task raw" in why
    v5 = _folder(tmp_path, "v5", [1, 48, 7], [{"output": "y", "channels": [4, 5, 6], "levels": 0.9}])
    assert "[1, 48, 7] has a YOLO detector's layout [1, N, 4+classes] or [1, N, 5+classes];" in undecided(v5, "auto",
                                                                                                          "raw")
    # the shape alone is no evidence (a sequence output [1, 48, 7]): only what the lint found crushed is refused
    assert undecided(_folder(tmp_path, "v5_clean", [1, 48, 7]), "auto", "raw") is None
    # the user named the task, or verify found one, or the output is no detector's: nothing to refuse
    assert undecided(v8, "raw", "raw") is None and undecided(v8, "auto", "classification") is None
    assert undecided(_folder(tmp_path, "seq", [1, 8, 6]), "auto", "raw") is None
