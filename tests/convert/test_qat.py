"""Quantization-aware models: converted with their own scales (not re-calibrated), checked against their own
simulation (the QDQ model as float fake-quant, ONNX Runtime with its graph optimizations off); re-calibration of
a QAT model and stacked fake-quant refused."""
from __future__ import annotations

import copy
import re

import numpy as np
import onnx
import pytest
import torch

from tests.models import TINY_SPEC, qat_tiny, qdq_onnx
from tflite_int8 import AlreadyQuantizedError, Recipe, convert, verify
from tflite_int8.convert.qat_config import RECOMMENDED
from tflite_int8.convert.qdq import read_qdq, strip
from tflite_int8.runtime.reference import run_onnx


def _tflite_scales(path) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    return {d["name"]: d["quantization_parameters"]["scales"] for d in interp.get_tensor_details()}


def test_qat_module_keeps_its_learned_scales(qat_conversion, qat_model):
    rep = qat_conversion.report
    assert rep["quantization_source"] == "qat"
    inp, out = rep["tensors"]["inputs"][0], rep["tensors"]["outputs"][0]
    stub, head = qat_model.quant.activation_post_process, qat_model.fc.activation_post_process
    assert inp["scale"][0] == pytest.approx(float(stub.scale), rel=1e-6)
    assert inp["zero_point"][0] == int(stub.zero_point) - 128  # uint8 grid -> the same grid as int8
    assert out["scale"][0] == pytest.approx(float(head.scale), rel=1e-6)
    assert out["zero_point"][0] == int(head.zero_point) - 128
    acts = rep["qat"]["activations"]
    assert len(acts) >= 6 and all(a["exact"] or any(a["tflite"] in adj for adj in rep["adjustments"]) for a in acts)
    # weights: the int8 file's per-channel scales are the fake-quant modules' own, except the channels the
    # weight's adjustment names
    scales = _tflite_scales(qat_conversion.int8_path)
    modules = {"c1": qat_model.c1, "c2": qat_model.c2, "c3": qat_model.c3, "fc": qat_model.fc}
    assert len(rep["qat"]["weights"]) == 4
    for row in rep["qat"]["weights"]:
        trained = modules[row["onnx"].split("/")[1]].weight_fake_quant.scale.detach().numpy()
        differ = int(np.count_nonzero(scales[row["tflite"]] != trained))
        listed = re.search(r"(\d+) of \d+ channel", row["status"])
        assert differ == (int(listed.group(1)) if listed else 0), row
        if row["status"] != "exact":
            assert any(row["onnx"] in adj for adj in rep["adjustments"])
    # PyTorch's default qconfig: its weight grids depart from TFLite's, and the remedy is said once
    assert any(row["status"] != "exact" for row in rep["qat"]["weights"])
    assert sum(RECOMMENDED in adj for adj in rep["adjustments"]) == 1


def test_int8_matches_its_qdq_simulation(qat_conversion, quadrant_data, tmp_path):
    check = qat_conversion.report["stages"]["int8_check"]["qat_simulation"]["outputs"]["output"]
    assert check["within_1_step"] >= 0.99
    res = verify(qat_conversion.out_dir, data=quadrant_data["verify"], report_dir=tmp_path / "report")
    assert "Int8 file vs its QAT simulation, tensor by tensor" in (tmp_path / "report" / "report.html").read_text()
    rows = res.report["qat_layers"]  # tensor by tensor, the int8 file against the simulation
    assert len(rows) >= 6 and rows[0]["exact"] == 1.0  # the input: the same grid, the same rounding
    assert not [r for r in rows[:-1] if r["departs"]], rows  # every inner tensor follows the simulation
    assert rows[-1]["within_1_step"] >= 0.95  # the output (built-in kernels here; 64 values)
    steps = {s["step"]: s for s in res.report["stages"]}
    assert res.report["reference"] == "float"  # the model without fake-quant: the accuracy reference
    sim = steps["tflite-int8"]
    assert sim["compared_with"] == "qat-simulation"
    m = sim["outputs"]["output"]
    assert m["within_1_step"] >= 0.99 and m["exact"] > 0.5, m
    assert res.passed, res.failures
    strict = verify(qat_conversion.out_dir, data=quadrant_data["verify"], layers=False,
                    thresholds={"qat_within_1_step": 1.01})  # an impossible bar: the check can fail
    assert not strict.passed and "the first that departs from the QAT simulation" in strict.failures[0]


def test_float_reference_is_the_model_without_fake_quant(qat_conversion, qat_model, quadrant_data):
    off = copy.deepcopy(qat_model).apply(torch.ao.quantization.disable_fake_quant)
    x = np.load(quadrant_data["verify"])[:8]
    with torch.no_grad():
        want = off(torch.from_numpy(x)).numpy()
    got = np.concatenate([run_onnx(qat_conversion.out_dir / "model_float.onnx", [x[i:i + 1]])[0][0]
                          for i in range(len(x))])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    ops = {n.op_type for n in onnx.load(qat_conversion.out_dir / "model_float.onnx").graph.node}
    assert not ops & {"QuantizeLinear", "DequantizeLinear"}


def test_qdq_onnx_with_integer_weights_is_bit_exact(tmp_path, quadrant_data):
    path = qdq_onnx(tmp_path / "qdq.onnx")
    model = onnx.load(path)
    qdq = read_qdq(model, "qdq.onnx")
    assert set(qdq.weights) == {"w1", "w2"} and len(qdq.activations) == 4
    grid = {i.name: onnx.numpy_helper.to_array(i) for i in strip(model, qdq, "grid").graph.initializer}
    np.testing.assert_array_equal(grid["w1"], qdq.weights["w1"].grid)
    res = convert(path, tmp_path / "out", spec=TINY_SPEC, data=quadrant_data["calib"])
    q = res.report["qat"]
    assert res.report["recipe"]["ranges"] is None  # none calibrated: the model's own
    assert q["activations_exact"] == q["activations_in_tflite"] >= 4  # the 4 ranges, and a padding that keeps one
    assert [w["status"] for w in q["weights"]] == ["exact", "exact"]
    check = res.report["stages"]["int8_check"]
    # against the float fake-quant simulation TFLite is bit exact here on any CPU (measured: exact 1.0; TFLite's
    # fixed-point requantization meets no rounding tie on these samples).  It read 0.656 on an AVX2 host while the
    # reference was ONNX Runtime's fused QLinearConv/QGemm (u8s8 saturation), 1.0 on VNNI only by coincidence
    assert check["qat_simulation"]["outputs"]["y"]["exact"] == 1.0
    # judged against its own simulation, not the float model (which its learned ranges may clip)
    assert check["judged_against"] == "qat_simulation" and res.passed and check["failures"] == []
    again = convert(path, tmp_path / "strict", spec=TINY_SPEC, data=quadrant_data["calib"],
                    check_thresholds={"qat_within_1_step": 1.01})  # a bar no file can meet: the gate is wired
    assert not again.passed and "the first that departs from the QAT simulation" in again.failures[0]


def test_recalibrating_a_qat_model_is_refused(tmp_path, quadrant_data):
    path = qdq_onnx(tmp_path / "qdq.onnx")
    for recipe, why in ((Recipe(ranges="mse"), "--ranges mse re-calibrates"),
                        (Recipe(ranges="minmax"), "--ranges minmax re-calibrates"),  # asked for, not the default
                        (Recipe(per_channel=False), "--per-tensor re-quantizes"),
                        (Recipe(variants=("int16x8",)), "int16x8 calibrates")):
        with pytest.raises(AlreadyQuantizedError, match=why):
            convert(path, tmp_path / "out", spec=TINY_SPEC, data=quadrant_data["calib"], recipe=recipe)
    assert not (tmp_path / "out").exists()


def test_stacked_fake_quant_is_refused(tmp_path):
    path = qdq_onnx(tmp_path / "stacked.onnx", stacked=True)
    with pytest.raises(AlreadyQuantizedError, match="fake-quantized again right away"):
        read_qdq(onnx.load(path), "stacked.onnx")


TFLITE_LAYOUT = {"CONV_2D": (0, 2, 3, 1), "DEPTHWISE_CONV_2D": (1, 2, 3, 0), "FULLY_CONNECTED": (0, 1)}  # from torch's


def _qat_integers(module) -> tuple[np.ndarray, np.ndarray]:
    """The integers and scales of a QAT module's fake-quantized weight (a ConvBn's with its batch norm folded)."""
    w = module.weight.detach()
    if hasattr(module, "bn"):
        bn = module.bn
        w = w * (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().reshape(-1, *[1] * (w.dim() - 1))
    fq = module.weight_fake_quant
    s = fq.scale.detach()
    q = torch.fake_quantize_per_channel_affine(w, s, fq.zero_point, 0, fq.quant_min, fq.quant_max)
    return torch.round(q / s.reshape(-1, *[1] * (w.dim() - 1))).numpy().astype(np.int64), s.numpy()


def test_tflite_matched_qat_keeps_every_weight_and_scale(tflite_qat_conversion, tflite_qat_model):
    from ai_edge_litert.interpreter import Interpreter

    dw = tflite_qat_model.get_submodule("dw.0").weight.detach().flatten(1)
    assert ((dw > 0).all(1) | (dw < 0).all(1)).sum() >= 4  # the premise: filters whose weights share one sign
    rep = tflite_qat_conversion.report
    assert [a for a in rep["adjustments"]  # nothing departs (a layout read from the graph changes nothing)
            if "fake-quant module(s) exported" not in a and "read from the graph" not in a] == []
    q = rep["qat"]
    assert q["activations_exact"] == q["activations_in_tflite"] >= 6 and not q["unmatched"] and not q["calibrated"]
    interp = Interpreter(model_path=str(tflite_qat_conversion.int8_path))
    interp.allocate_tensors()
    details = {d["name"]: d for d in interp.get_tensor_details()}
    assert sorted(w["op"] for w in q["weights"]) == ["CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"]
    for row in q["weights"]:
        assert row["status"] == "exact", row
        ints, scales = _qat_integers(tflite_qat_model.get_submodule(row["onnx"].split("/")[1]))
        d = details[row["tflite"]]
        got = interp.get_tensor(d["index"]).astype(np.int64)
        np.testing.assert_array_equal(got, ints.transpose(TFLITE_LAYOUT[row["op"]]))  # the QAT integers, as trained
        np.testing.assert_array_equal(d["quantization_parameters"]["scales"], scales)
        assert not d["quantization_parameters"]["zero_points"].any() and got.min() >= -127


def test_tflite_matched_qat_follows_its_simulation(tflite_qat_conversion, quadrant_data):
    res = verify(tflite_qat_conversion.out_dir, data=quadrant_data["verify"])
    m = next(s for s in res.report["stages"] if s["step"] == "tflite-int8")["outputs"]["output"]
    # 96 samples x 4 logits against the QDQ model as float fake-quant; measured: 100 % within one step, 80.2 % equal
    # (0.786 within one step on an AVX2 host against ONNX Runtime's fused integer kernels, the old reference)
    assert m["within_1_step"] >= 0.99, m
    rows = res.report["qat_layers"]
    assert len(rows) >= 6 and not [r for r in rows if r["departs"]], rows
    assert res.passed, res.failures


def test_tflite_qconfig_puts_one_sign_filters_on_the_symmetric_grid():
    """PyTorch's default fused weight fake-quant gives a one-sign filter a zero point of -127/127; ours keeps 0."""
    from torch.ao.quantization import get_default_qat_qconfig

    from tflite_int8 import qat_qconfig

    w = torch.rand(4, 1, 3, 3) * torch.tensor([1.0, -1.0, 1.0, -1.0]).reshape(4, 1, 1, 1)
    default = get_default_qat_qconfig("onednn").weight()
    default(w)
    assert default.zero_point.abs().min() == 127  # TFLite's int8 weights cannot hold these grids
    ours = qat_qconfig().weight()
    y = ours(w)
    assert (ours.quant_min, ours.quant_max) == (-127, 127) and not ours.zero_point.any()
    np.testing.assert_allclose(ours.scale.numpy(), w.abs().amax((1, 2, 3)).numpy() / 127, rtol=1e-6)
    steps = (y / ours.scale.reshape(-1, 1, 1, 1)).round()
    assert steps.abs().max() == 127


def test_eager_qat_with_the_public_qconfig_keeps_every_weight(quadrant_data, tmp_path):
    """Eager mode: ``model.qconfig = tflite_int8.qat_qconfig()`` — the same net whose onednn weights TFLite re-grids
    (test_qat_module_keeps_its_learned_scales) now keeps every weight integer and scale."""
    from tflite_int8 import qat_qconfig

    res = convert(qat_tiny(qconfig=qat_qconfig()), tmp_path / "out", spec=TINY_SPEC, data=quadrant_data["calib"])
    q = res.report["qat"]
    assert q["weights_exact"] == q["weights_in_tflite"] == 4, q["weights"]
    assert not [a for a in res.report["adjustments"] if "weight" in a or RECOMMENDED in a]
    m = verify(res.out_dir, data=quadrant_data["verify"])
    assert next(s for s in m.report["stages"] if s["step"] == "tflite-int8")["outputs"]["output"]["within_1_step"] >= 0.99


def test_a_relu_folded_into_the_fake_quant_stays_in_the_float_reference(tmp_path):
    """ONNX Runtime's quantize_static drops a Relu (or ReLU6 Clip) whose output fake-quant starts at 0: the float
    reference keeps a Relu there (MobileNetV2 so quantized: 35 of 65 ranges; without them its model_float.onnx had
    cosine 0.13 with the float model), the translated grid graph does not need one (the int8 range clips)."""
    from tflite_int8.convert.qdq import folded_relus

    model = onnx.load(qdq_onnx(tmp_path / "qdq.onnx"))
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    conv.output[0] = relu.output[0]
    model.graph.node.remove(relu)
    qdq = read_qdq(model, "qdq.onnx")
    assert folded_relus(model, qdq) == ["r_dq"]  # uint8, zero point 0, right after the Conv
    assert folded_relus(onnx.load(qdq_onnx(tmp_path / "kept.onnx")), qdq) == []  # the Relu is there: nothing folded
    ops = {form: [n.op_type for n in strip(model, qdq, form).graph.node] for form in ("float", "grid")}
    assert ops["float"].count("Relu") == 1 and "Relu" not in ops["grid"], ops
    x = np.random.default_rng(0).normal(0, 1, (1, 3, 32, 32)).astype(np.float32)
    folded, kept = strip(model, qdq, "float"), strip(onnx.load(tmp_path / "kept.onnx"), qdq, "float")
    for m in (folded, kept):
        m.ir_version = 8  # onnx's newest IR; ONNX Runtime 1.23 reads up to 11
    np.testing.assert_allclose(run_onnx(folded, [x])[0][0], run_onnx(kept, [x])[0][0], rtol=1e-6)
