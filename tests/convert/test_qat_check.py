"""A QAT conversion judged against its own simulation: the first tensors locally, the task against the simulation's
own figures; a parameter that really differs fails, naming the tensor where the int8 file departs."""
from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.models import TINY_SPEC, qdq_onnx
from tflite_int8 import convert, verify
from tflite_int8.config.thresholds import CHECK_DEFAULTS, check_qat
from tflite_int8.convert.qat import FLOAT_ONNX
from tflite_int8.convert.qat_check import simulation_check
from tflite_int8.convert.record import read_conversion


@pytest.fixture(scope="module")
def qdq_conversion(tmp_path_factory, quadrant_data):
    """tests.models.qdq_onnx converted with its own scales."""
    folder = tmp_path_factory.mktemp("qdq_check")
    return convert(qdq_onnx(folder / "qdq.onnx"), folder / "out", spec=TINY_SPEC, data=quadrant_data["calib"])


def _check(out_dir, qdq_path, quadrant_data):
    conv = read_conversion(out_dir)
    x = np.load(quadrant_data["verify"])[:8]
    return simulation_check(conv.int8_path, qdq_path, out_dir / FLOAT_ONNX, conv.inputs,
                            [{"x": x[i:i + 1]} for i in range(len(x))], conv.output_names,
                            conv.report["qat"]["activations"])


def _tampered(qdq_path, dest, tensor="r_dq", factor=0.3):
    """The QDQ model with the scale of one fake-quant pair (``tensor``, its DequantizeLinear's output: the ReLU's
    output) multiplied by ``factor`` (a new initializer: the saved model shares equal constants between tensors).
    A coarser grid stays within one step of the int8 file's finer one; 0.3: a finer grid whose range clips."""
    model = onnx.load(str(qdq_path))
    dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == tensor)
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.output[0] == dq.input[0])
    old = next(i for i in model.graph.initializer if i.name == dq.input[1])
    model.graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(old) * np.float32(factor), "tampered"))
    dq.input[1] = q.input[1] = "tampered"
    onnx.save(model, str(dest))
    return dest


def test_the_conversion_meets_its_simulation_tensor_by_tensor(qdq_conversion, quadrant_data):
    check = _check(qdq_conversion.out_dir, qdq_conversion.out_dir / "model.onnx", quadrant_data)
    rows = check["tensors"]
    assert rows[0]["onnx"] == "x_dq" and rows[1]["onnx"] == "r_dq", rows  # graph order, from the input
    assert all(r["local_within_1_step"] == 1.0 for r in rows), rows  # measured: every tensor, every value
    y = check["outputs"]["y"]
    assert y["exact"] == 1.0  # float fake-quant vs TFLite: bit exact on this model (no requantization tie hit)
    assert y["int8_vs_float"]["cosine"] == pytest.approx(y["simulation_vs_float"]["cosine"], abs=1e-6)
    assert y["int8_vs_float"]["top1_agreement"] == y["simulation_vs_float"]["top1_agreement"]
    assert check_qat(check, CHECK_DEFAULTS) == []
    assert qdq_conversion.report["stages"]["int8_check"]["failures"] == []


def test_a_scale_that_differs_fails_naming_the_tensor(qdq_conversion, quadrant_data, tmp_path):
    out = qdq_conversion.out_dir
    check = _check(out, _tampered(out / "model.onnx", tmp_path / "tampered.onnx"), quadrant_data)
    rows = {r["onnx"]: r for r in check["tensors"]}
    # measured: x_dq 100 %, r_dq 79 % of values within one step locally
    assert rows["x_dq"]["local_within_1_step"] == 1.0 and rows["r_dq"]["local_within_1_step"] < 0.9, rows
    fails = check_qat(check, CHECK_DEFAULTS)
    assert fails and fails[0].startswith("tensor 'r_dq'") and "the first that departs" in fails[0], fails
    assert check_qat(check, {**CHECK_DEFAULTS, "qat_tensors": 1, "qat_cosine_margin": None,
                             "qat_top1_margin_points": None}) == []  # only x_dq judged: the input is the same
    # verify on a copy of the folder whose model.onnx (the simulation) has the other scale: fails the same way
    copy = tmp_path / "conv"
    shutil.copytree(out, copy)
    _tampered(out / "model.onnx", copy / "model.onnx")
    res = verify(copy, data=quadrant_data["verify"], layers=False)
    assert not res.passed and any(f.startswith("tensor 'r_dq'") for f in res.failures), res.failures
    assert res.report["qat_check"]["outputs"]["y"]["within_1_step"] < 1.0


def test_the_verdict_inputs_do_not_move_with_the_kernels(qdq_conversion, quadrant_data):
    """One kind of CPU here (AVX2): the kernels are forced both ways instead. The reference: ONNX Runtime with every
    optimization, its QDQ -> integer-kernel fusion forced off, equals the simulation (optimizations off); the int8
    file: TFLite's portable reference kernels (no SIMD dispatch) equal XNNPACK's, bit for bit. What the verdict is
    computed from cannot change with the instruction set."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from tflite_int8.runtime.reference import simulation_session

    x = np.load(quadrant_data["verify"])[:8]
    qdq = str(qdq_conversion.out_dir / "model.onnx")
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.disable_quant_qdq", "1")  # integer kernels forced off, all else on
    forced_off = ort.InferenceSession(qdq, opts, providers=["CPUExecutionProvider"])
    reference = simulation_session(qdq)
    for i in range(len(x)):
        a, b = (s.run(["y"], {"x": x[i:i + 1]})[0] for s in (reference, forced_off))
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    outs = {}
    for kind in (OpResolverType.AUTO, OpResolverType.BUILTIN_REF):
        interp = Interpreter(str(qdq_conversion.int8_path), experimental_op_resolver_type=kind)
        interp.allocate_tensors()
        i_in, i_out = interp.get_input_details()[0], interp.get_output_details()[0]
        s, z = i_in["quantization"]
        got = []
        for k in range(len(x)):
            q = np.clip(np.round(x[k:k + 1].transpose(0, 2, 3, 1) / s) + z, -128, 127).astype(np.int8)
            interp.set_tensor(i_in["index"], q)
            interp.invoke()
            got.append(interp.get_tensor(i_out["index"]).copy())
        outs[kind] = np.stack(got)
    assert np.array_equal(outs[OpResolverType.AUTO], outs[OpResolverType.BUILTIN_REF])
    assert check_qat(_check(qdq_conversion.out_dir, qdq_conversion.out_dir / "model.onnx", quadrant_data),
                     CHECK_DEFAULTS) == []
