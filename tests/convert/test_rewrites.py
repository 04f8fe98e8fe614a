"""Graph rewrites keep the math (ONNX Runtime before vs after) and say what they did; what cannot be unrolled is
refused naming the node and why."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from tflite_int8 import UnsupportedOpError
from tflite_int8.convert.export import export
from tflite_int8.convert.rewrites import REWRITES, adjustment_text, rewrite
from tflite_int8.runtime.reference import run_onnx


def _model(nodes, shape, out_shape=None, inits=()):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _rewritten(tmp_path, model, shape, n=3):
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    xs = [np.random.default_rng(i).standard_normal(shape).astype(np.float32) * 3 for i in range(n)]
    before = run_onnx(path, xs)
    records, renamed = rewrite(path, xs)
    after = run_onnx(path, xs)
    err = max(float(np.max(np.abs(b[0] - a[0]))) for b, a in zip(before, after))
    return onnx.load(path), records, renamed, err


@pytest.mark.parametrize("op, attrs, size", [
    ("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1), 7),
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1), 10),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1), 8),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0), 9),
])
def test_pools_with_ceil_mode_or_padding_become_plain_pools_with_the_same_output(tmp_path, op, attrs, size):
    shape = [1, 2, size, size]
    model, records, _, err = _rewritten(tmp_path, _model([helper.make_node(op, ["x"], ["y"], **attrs)], shape),
                                        shape)
    assert err < 1e-6  # max-pool exactly (edge copies never win a max), average-pool up to float rounding
    pools = [n for n in model.graph.node if n.op_type == op]
    assert len(pools) == 1
    kept = {a.name: helper.get_attribute_value(a) for a in pools[0].attribute}
    assert not kept.get("ceil_mode") and not any(kept.get("pads", []))
    ops = {n.op_type for n in model.graph.node}
    assert ("Concat" in ops and "Pad" not in ops) if op == "MaxPool" else "Pad" in ops  # never a -inf pad value
    assert records[0]["rewrite"] == "ceil-pool" and records[0]["applied"]
    assert "ceil-pool" in adjustment_text(records[0]) and "max abs" in adjustment_text(records[0])


class ErfGelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        h = self.fc2(x.flatten(1))
        hf = h * 0.5 * (1.0 + torch.erf(h / 1.4142135623730951))  # the Hugging Face order
        return nn.functional.gelu(self.fc1(x.flatten(1))) + hf  # and PyTorch's own


def test_erf_gelu_becomes_one_gelu_node(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "gelu.onnx"
    export(ErfGelu().eval(), path, (1, 2, 2, 2))
    model, records, _, err = _rewritten(tmp_path, onnx.load(path), [1, 2, 2, 2])
    ops = [n.op_type for n in model.graph.node]
    assert "Erf" not in ops and ops.count("Gelu") == 2 and err < 1e-5
    assert records[0]["rewrite"] == "erf-gelu" and "2 erf GELU" in records[0]["what"]


def test_names_tensorflow_rejects_are_renamed_and_mapped_back(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="Relu@0"), helper.make_node("Neg", ["r"], ["y"], name="Neg 1")]
    model, records, renamed, err = _rewritten(tmp_path, _model(nodes, [1, 4]), [1, 4])
    assert [n.name for n in model.graph.node] == ["Relu_0", "Neg_1"] and err == 0
    assert renamed == {"Relu_0": "Relu@0", "Neg_1": "Neg 1"}
    assert "'Relu@0' -> 'Relu_0'" in records[0]["what"]


class Recurrent(nn.Module):
    def __init__(self, kind, **kw):
        super().__init__()
        self.rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[kind](6, 5, batch_first=True, **kw)
        self.fc = nn.Linear(5 * (2 if kw.get("bidirectional") else 1), 3)

    def forward(self, x):
        y, _ = self.rnn(x.reshape(1, 4, 6))
        return self.fc(y)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("kw", [{}, {"bidirectional": True}, {"num_layers": 2}])
def test_lstm_and_gru_are_unrolled_with_the_same_output(tmp_path, kind, kw):
    torch.manual_seed(1)
    path = tmp_path / "rnn.onnx"
    export(Recurrent(kind, **kw).eval(), path, (1, 1, 4, 6))
    model, records, _, err = _rewritten(tmp_path, onnx.load(path), [1, 1, 4, 6])
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"LSTM", "GRU"} and {"Gemm", "Sigmoid", "Tanh"} <= ops and err < 1e-5
    assert "unrolled over 4 time steps" in next(r["what"] for r in records if r["rewrite"] == "unroll-rnn")


def test_a_recurrent_layer_that_cannot_be_unrolled_is_refused_naming_it_and_why(tmp_path):
    w = numpy_helper.from_array(np.ones((1, 8, 3), np.float32), "W")
    r = numpy_helper.from_array(np.ones((1, 8, 2), np.float32), "R")
    p = numpy_helper.from_array(np.ones((1, 6), np.float32), "P")
    node = helper.make_node("LSTM", ["x", "W", "R", "", "", "", "", "P"], ["Y"], name="enc_lstm", hidden_size=2)
    flat = helper.make_node("Reshape", ["Y", "shape"], ["y"])
    shape = numpy_helper.from_array(np.array([1, 8], np.int64), "shape")
    model = _model([node, flat], [4, 1, 3], [1, 8], inits=[w, r, p, shape])
    onnx.save(model, tmp_path / "peephole.onnx")
    with pytest.raises(UnsupportedOpError, match=r"LSTM node 'enc_lstm' cannot be made full-integer: .*peephole"):
        rewrite(tmp_path / "peephole.onnx", [np.zeros((4, 1, 3), np.float32)])


def test_the_table_names_every_rewrite_once():
    assert list(REWRITES) == ["names", "ceil-pool", "erf-gelu", "unroll-rnn", "slice-axes", "sqrt"]
    assert all(r.help for r in REWRITES.values())


def test_rewrites_write_nodes_valid_at_the_models_own_opset(tmp_path):
    """Without the upgrade (rewrite() called on an opset-12 file): Split sizes as an attribute, as opset 12 has them;
    ONNX Runtime and the full checker accept the result."""
    torch.manual_seed(1)
    path = tmp_path / "lstm12.onnx"
    torch.onnx.export(Recurrent("lstm").eval(), (torch.zeros(1, 1, 4, 6),), str(path), opset_version=12,
                      input_names=["x"], output_names=["y"], dynamo=False)
    model, records, _, err = _rewritten(tmp_path, onnx.load(path), [1, 1, 4, 6])
    splits = [n for n in model.graph.node if n.op_type == "Split"]
    assert splits and all(len(n.input) == 1 and [a.name for a in n.attribute] == ["axis", "split"] for n in splits)
    onnx.checker.check_model(model, full_check=True)
    assert err < 1e-5 and records[-1]["applied"] and "at the model's opset 12" in adjustment_text(records[-1])


def test_a_node_the_models_opset_does_not_define_is_refused():
    from tflite_int8.convert.graph import Graph

    g = Graph(_model([helper.make_node("Relu", ["x"], ["y"])], [1, 4]))
    g.opset = 12
    with pytest.raises(ValueError, match=r"Split with 2 input\(s\) is not valid at the model's opset 12"):
        g.add("Split", ["x", g.const(np.array([2, 2], np.int64))], axis=1, outputs=2)


def test_a_slice_on_the_channel_and_a_later_axis_becomes_one_slice_per_axis(tmp_path):
    """The STFT-as-Conv front end: onnxslim leaves one Slice per half with axes [1, 2] (the time axis whole)."""
    from tests.models import stft_front_end

    path = tmp_path / "stft.onnx"
    export(stft_front_end(), path, (1, 256))
    slices = [n for n in onnx.load(path).graph.node if n.op_type == "Slice"]
    assert len(slices) == 2 and all(n.input[3] for n in slices)  # the case: axes given, several of them
    model, records, _, err = _rewritten(tmp_path, onnx.load(path), [1, 256])
    assert err < 1e-5 and [r["rewrite"] for r in records if r["applied"]] == ["slice-axes", "sqrt"]
    axes = [numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == n.input[3])).tolist()
            for n in model.graph.node if n.op_type == "Slice"]
    assert axes == [[1], [1]]  # the whole time axis is no longer sliced at all


def test_sqrt_becomes_exp_of_half_log_within_sqrt_eps(tmp_path):
    """TFLite has no int8 SQRT: Sqrt(x) -> Exp(0.5 * Log(x + eps)), off by at most sqrt(eps) at x = 0."""
    from tflite_int8.convert.rewrites import SQRT_EPS

    nodes = [helper.make_node("Mul", ["x", "x"], ["p"]), helper.make_node("Sqrt", ["p"], ["y"])]
    model, records, _, err = _rewritten(tmp_path, _model(nodes, [1, 64], [1, 64]), [1, 64])
    assert [r["rewrite"] for r in records if r["applied"]] == ["sqrt"] and err <= 1e-6 * 3 * 4  # float32 rounding
    x = np.zeros((1, 64), np.float32)
    x[0, 1:3] = 1e-3, -4.0
    got = run_onnx(model, [x])[0][0][0, :3]  # y = sqrt(x * x + eps): |x|, and sqrt(eps) at 0
    assert np.allclose(got, [np.sqrt(SQRT_EPS), 1e-3, 4.0], rtol=1e-4, atol=1e-9)
    assert sorted(n.op_type for n in model.graph.node) == ["Add", "Exp", "Log", "Mul", "Mul"]
    assert "Sqrt(x) -> Exp(0.5 * Log(x + 1e-12))" in adjustment_text(records[0])


def test_a_sqrt_only_divided_by_is_left_to_the_converters_rsqrt(tmp_path):
    """x / sqrt(v) (a hand-written LayerNorm, PP-OCRv4's recognizer): TFLite makes it RSQRT + MUL, int8; Exp there
    would leave a float DIV."""
    nodes = [helper.make_node("Mul", ["x", "x"], ["v"]), helper.make_node("Sqrt", ["v"], ["s"]),
             helper.make_node("Div", ["x", "s"], ["y"])]
    model, records, _, err = _rewritten(tmp_path, _model(nodes, [1, 64], [1, 64]), [1, 64])
    assert not records and err == 0.0 and "Sqrt" in [n.op_type for n in model.graph.node]


def test_an_stft_front_end_converts_full_integer(tmp_path):
    """STFT written as Conv (Silero VAD's front end): slice-axes + sqrt make it translate (onnx2tf alone: 'Depth of
    input (..) is not a multiple of input depth of filter (..)'; the translate stage checks float32 TFLite against
    ONNX Runtime) and go full-integer (no float SQRT left)."""
    from tests.models import stft_front_end
    from tflite_int8 import convert
    from tflite_int8.runtime.describe import describe

    rng = np.random.default_rng(0)
    t = np.arange(256) / 16000
    waves = [np.sin(2 * np.pi * rng.uniform(100, 4000) * t + rng.uniform(0, 6)) * rng.uniform(0.1, 1)
             + 0.05 * rng.standard_normal(256) for _ in range(48)]
    np.save(tmp_path / "audio.npy", np.stack(waves).astype(np.float32))
    conv = convert(stft_front_end(), tmp_path / "out", data=tmp_path / "audio.npy")
    info = describe(conv.int8_path)
    assert info["verdict"] == "full-integer" and {"LOG", "EXP"} <= set(info["op_histogram"])
    assert conv.passed, conv.failures
    check = conv.report["stages"]["int8_check"]["outputs"]["output"]
    assert check["top1_agreement"] == 1.0 and check["cosine_dataset"] > 0.95
