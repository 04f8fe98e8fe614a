"""Guards: an already-integer model (ONNX, PyTorch, checkpoint) is refused with what was found and what to do;
quantization-aware ones (QDQ, fake-quant modules) are recognised as such."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.models import TINY_SPEC, tiny
from tflite_int8 import AlreadyQuantizedError, convert
from tflite_int8.convert.guards import check_module, check_onnx
from tflite_int8.cli import main


def test_onnx_quantized_by_onnxruntime_is_refused(tiny_conversion, tmp_path, photos, capsys):
    from onnxruntime.quantization import quantize_dynamic

    q = tmp_path / "tiny_dynamic_quant.onnx"
    quantize_dynamic(str(tiny_conversion.out_dir / "model.onnx"), str(q))
    with pytest.raises(AlreadyQuantizedError, match=r"already quantized: it holds .*(ConvInteger|MatMulInteger)"):
        convert(q, tmp_path / "out", spec=TINY_SPEC, data=photos)
    assert main(["convert", str(q), "-o", str(tmp_path / "out"), "--size", "32"]) == 2
    err = capsys.readouterr().err
    assert "start from the float model" in err and not (tmp_path / "out").exists()


def test_qdq_onnx_is_quantization_aware_not_refused():
    from onnx import TensorProto, helper

    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]), helper.make_node("Relu", ["d"], ["y"])]
    inits = [helper.make_tensor("s", TensorProto.FLOAT, [], [0.02]), helper.make_tensor("z", TensorProto.INT8, [], [0])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 32, 32])], inits)
    assert check_onnx(helper.make_model(graph), "qdq.onnx") == "qat"


def test_pytorch_qat_accepted_quantized_modules_and_ptq_observers_refused(tmp_path, photos):
    qat = tiny().train()
    qat.qconfig = torch.ao.quantization.get_default_qat_qconfig("x86")
    torch.ao.quantization.prepare_qat(qat, inplace=True)
    assert check_module(qat.eval(), "qat") == "qat"
    assert check_module(tiny(), "float") == "float"
    dyn = torch.ao.quantization.quantize_dynamic(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 4)),
                                                 {nn.Linear}, dtype=torch.qint8)
    with pytest.raises(AlreadyQuantizedError, match="quantized module"):
        convert(dyn, tmp_path / "b", spec=TINY_SPEC, data=photos)
    ptq = tiny().eval()
    ptq.qconfig = torch.ao.quantization.get_default_qconfig("x86")
    torch.ao.quantization.prepare(ptq, inplace=True)
    with pytest.raises(AlreadyQuantizedError, match="observer.*without fake-quant"):
        convert(ptq, tmp_path / "c", spec=TINY_SPEC, data=photos)
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_checkpoint_with_quantized_tensors_is_refused(tmp_path, photos, capsys):
    state = tiny().state_dict()
    state["head.weight"] = torch.quantize_per_tensor(state["head.weight"], 0.01, 0, torch.qint8)
    torch.save(state, tmp_path / "q.pt")
    assert main(["convert", "tests.models:tiny", "-o", str(tmp_path / "out"), "--weights", str(tmp_path / "q.pt"),
                 "--data", str(photos)]) == 2
    assert "holds 1 quantized tensor(s) (e.g. 'head.weight': torch.qint8)" in capsys.readouterr().err
