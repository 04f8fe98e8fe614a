"""int8_lint: no file with an absurd scale or one XNNPACK cannot prepare is kept; the failure names tensor and op."""
from __future__ import annotations

import flatbuffers
import pytest
from ai_edge_litert import schema_py_generated as schema

from tflite_int8 import ConversionError
from tflite_int8.convert.int8_lint import check_file, lint


def _fact(name, scale, dtype="int8"):
    return {"name": name, "dtype": dtype, "scale": scale, "zero_point": 0}


def test_an_absurd_scale_is_named_with_its_op_and_onnx_node():
    ops = [{"index": 1, "op": "PRELU", "inputs": [_fact("conv_out", 0.008)], "outputs": [_fact("prelu_out", 1.33e36)]},
           {"index": 2, "op": "MAX_POOL_2D", "inputs": [_fact("prelu_out", 1.33e36)], "outputs": [_fact("pool", 1.33e36)]}]
    found = lint(ops, {"prelu_out": "/prelu1/PRelu"})
    assert found[0].startswith("tensor 'prelu_out' (output of PRELU #1, ONNX node /prelu1/PRelu) has int8 scale 1.33e+36")
    assert "rounds to zero" in found[0] and len(found) == 2  # each tensor once


def test_a_pad_dominated_by_its_constant_is_named():
    ops = [{"index": 3, "op": "PADV2", "inputs": [_fact("x", 0.01), _fact("value", 1.0)], "outputs": [_fact("xp", 2.0)]}]
    assert lint(ops, {})[0].startswith("PADV2 #3: its output range is dominated by the pad constant")
    assert lint([{**ops[0], "outputs": [_fact("xp", 0.01)]}], {}) == []


def test_a_good_file_loads_with_xnnpack_and_passes(tiny_conversion):
    summary = check_file(tiny_conversion.int8_path)
    assert summary["loads_with"] == ["builtin kernels", "XNNPACK"] and 0 < summary["largest_scale"] < 1
    assert tiny_conversion.report["stages"]["int8_lint"]["files"]["full-integer"]["quantized_tensors"] > 10


def test_a_file_with_an_absurd_scale_is_refused_naming_the_tensor_and_op(tiny_conversion, tmp_path):
    # the face-detector case: one activation's scale made 1.33e36, as a -3.4e38 pad value would
    model = schema.ModelT.InitFromPackedBuf(tiny_conversion.int8_path.read_bytes(), 0)
    graph = model.subgraphs[0]
    op = next(o for o in graph.operators
              if model.operatorCodes[o.opcodeIndex].builtinCode == schema.BuiltinOperator.CONV_2D)
    tensor = graph.tensors[op.outputs[0]]
    tensor.quantization.scale = [1.33e36]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(builder.Output())
    with pytest.raises(ConversionError, match=r"\[int8_lint\] bad.tflite was not kept: tensor '.+' \(output of "
                                              r"CONV_2D #\d+\) has int8 scale 1.33e\+36") as info:
        check_file(bad)
    assert info.value.exit_code == 2
