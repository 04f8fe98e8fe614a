"""Models below opset 13 are upgraded (onnx's version converter) and checked with ONNX Runtime before anything
else touches them; an opset-12 LSTM then converts full-integer end to end, the upgrade said in adjustments."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from tests.models import SEQ_SPEC, lstm_classifier
from tflite_int8 import ConversionError, convert
from tflite_int8.convert.export import prepare_onnx
from tflite_int8.convert.opset import default_opset, upgrade
from tflite_int8.runtime.describe import describe
from tflite_int8.runtime.reference import run_onnx


def _lstm_onnx(path, opset):
    torch.onnx.export(lstm_classifier(), (torch.zeros(1, 1, 8, 24),), str(path), opset_version=opset,
                      input_names=["x"], output_names=["y"], dynamo=False)
    return path


def test_an_opset_12_lstm_converts_full_integer_and_the_upgrade_is_listed(tmp_path, photos):
    # its input goes into a Reshape, so the graph does not say its layout: declared (input_layouts)
    conv = convert(_lstm_onnx(tmp_path / "lstm12.onnx", 12), tmp_path / "out", spec=SEQ_SPEC, data=photos,
                   num_samples=16, input_layouts={"x": "NCHW"})
    assert conv.passed and conv.failures == []
    assert describe(conv.int8_path)["verdict"] == "full-integer"
    assert conv.report["onnx"]["opset"] == 17 and "unroll-rnn" in conv.report["rewrites"]["applied"]
    line = next(a for a in conv.report["adjustments"] if a.startswith("opset 12 upgraded to 17"))
    assert float(line.rsplit("): ", 1)[1].split()[0]) < 1e-6  # the measured max float change


@pytest.mark.parametrize("opset", [11, 12])
def test_an_old_opset_file_is_upgraded_and_keeps_its_outputs(tmp_path, opset):
    src = _lstm_onnx(tmp_path / f"lstm{opset}.onnx", opset)
    xs = [np.random.default_rng(i).standard_normal((1, 1, 8, 24)).astype(np.float32) for i in range(3)]
    res = prepare_onnx(src, tmp_path / "prepared.onnx", check_inputs=xs)
    model = onnx.load(str(res.onnx_path))
    assert default_opset(model) == 17
    assert not [n for n in model.graph.node if n.op_type == "Split" and any(a.name == "split" for a in n.attribute)]
    assert any(a.startswith(f"opset {opset} upgraded to 17 with onnx's version converter") for a in res.adjustments)
    before, after = run_onnx(src, xs), run_onnx(res.onnx_path, xs)
    assert max(float(np.max(np.abs(b[0] - a[0]))) for b, a in zip(before, after)) < 1e-6


def test_opset_13_and_newer_are_left_alone(tmp_path):
    res = prepare_onnx(_lstm_onnx(tmp_path / "lstm14.onnx", 14), tmp_path / "prepared.onnx")
    assert default_opset(onnx.load(str(res.onnx_path))) == 14
    assert not any("upgraded" in a for a in res.adjustments)


def test_a_version_converter_failure_is_one_line_naming_the_opset_and_the_node(tmp_path):
    body = helper.make_graph([helper.make_node("Identity", ["s"], ["o"])], "body",
                             [helper.make_tensor_value_info("s", TensorProto.FLOAT, [2])],
                             [helper.make_tensor_value_info("o", TensorProto.FLOAT, [2])])
    scan = helper.make_node("Scan", ["lens", "x"], ["y"], name="frames_scan", num_scan_inputs=1, body=body)
    graph = helper.make_graph([scan], "g", [helper.make_tensor_value_info("lens", TensorProto.INT32, [1]),
                                            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    with pytest.raises(ConversionError) as err:
        upgrade(model, 17, [], tmp_path / "old.onnx")
    msg = str(err.value)
    assert "\n" not in msg and "old.onnx" in msg and "opset 8 to 17" in msg and "'frames_scan' (Scan)" in msg
    assert "re-export the model at opset 13 or newer" in msg
