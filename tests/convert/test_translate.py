"""Translate: onnx2tf offline in a child process; numerically wrong or impossible translations stop the pipeline."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.models import TINY_SPEC, tiny
from tflite_int8 import ConversionError, ParityError, PreprocessSpec, UnsupportedOpError, convert
from tflite_int8.convert.export import export
from tflite_int8.convert.translate import ONNX2TF_SAMPLE_FILE, onnx_nodes_for, translate


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    return export(tiny(), tmp_path_factory.mktemp("onnx") / "tiny.onnx", TINY_SPEC.input_shape()).onnx_path


def test_translation_is_checked_against_onnxruntime(tiny_onnx, tmp_path, rng):
    x = [rng.standard_normal((1, 3, 32, 32)).astype(np.float32) for _ in range(4)]
    res = translate(tiny_onnx, tmp_path, TINY_SPEC, samples=x, check_inputs=x, output_names=["output"])
    assert (res.saved_model / "saved_model.pb").exists()
    assert res.float32_tflite.name.endswith("_float32.tflite")
    m = res.check["outputs"]["output"]
    assert m["cosine"] > 0.9999 and m["rel_max_err"] < 1e-3 and m["samples"] == 4
    # onnx2tf found its sample images locally (no download): the file we wrote, with our samples.
    sample = np.load(tmp_path / "onnx2tf_cwd" / ONNX2TF_SAMPLE_FILE)
    assert sample.shape == (4, 32, 32, 3)
    # Every ONNX Conv is found behind some TF tensor name (what the layer diagnosis shows).
    nodes = set(res.node_map.values())
    assert {"/stem/stem.0/Conv", "/branch/branch.0/Conv", "/down/down.0/Conv"} <= nodes
    tensor = "model_3/" + next(k for k, v in res.node_map.items() if v == "/down/down.0/Conv") + ";Const_1"
    assert onnx_nodes_for(tensor, res.node_map) == ["/down/down.0/Conv"]


def test_numerically_wrong_translation_stops_with_stage_and_size(tiny_onnx, tmp_path, rng):
    x = [rng.standard_normal((1, 3, 32, 32)).astype(np.float32)]
    with pytest.raises(ParityError, match=r"\[translate\].*cosine .*max abs error") as info:
        translate(tiny_onnx, tmp_path, TINY_SPEC, check_inputs=x, thresholds={"cosine": 1.0000001})
    assert info.value.metrics["cosine"] > 0.999 and info.value.exit_code == 1


def _lp_pool(path):
    """LpPool has no onnx2tf handler (GlobalLpPool has one)."""
    node = helper.make_node("LpPool", ["x"], ["y"], kernel_shape=[2, 2], p=2)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 7, 7])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


def test_op_onnx2tf_cannot_translate_is_named(tmp_path):
    spec = PreprocessSpec(size=(8, 8), resize="stretch")
    with pytest.raises(ConversionError, match=r"\[translate\].*LpPool") as info:
        translate(_lp_pool(tmp_path / "lp.onnx"), tmp_path / "work", spec)
    Path(str(info.value).rsplit("Full log: ", 1)[1]).unlink()  # the kept copy (next test)


def test_a_failed_translation_keeps_its_log_where_the_message_says(tmp_path, photos):
    """convert()'s work folder is gone when it raises: the log the message names is a kept copy, outside the
    output folder, holding onnx2tf's own output."""
    out = tmp_path / "out"
    with pytest.raises(UnsupportedOpError, match=r"LpPool.* Full log: \S+-onnx2tf\.log$") as info:
        convert(_lp_pool(tmp_path / "lp.onnx"), out, spec=PreprocessSpec(size=(8, 8), resize="stretch"), data=photos)
    log = Path(str(info.value).rsplit("Full log: ", 1)[1])
    try:
        assert log.is_file() and log.parent.name == "tflite-int8-logs"
        assert "LpPool" in log.read_text(errors="replace") and "onnx2tf" in log.read_text(errors="replace")
        assert not out.exists() and "\n" not in str(info.value)
    finally:
        log.unlink(missing_ok=True)


def _conv_then_slice(path, starts, ends):
    """x [1, 1, 16] -> Conv1d (6 channels, stride 4) [1, 6, 4] -> one Slice on axes [1, 2]."""
    from onnx import numpy_helper

    inits = [numpy_helper.from_array(np.random.default_rng(0).standard_normal((6, 1, 4)).astype(np.float32), "w")]
    inits += [numpy_helper.from_array(np.array(v, np.int64), n) for v, n in ((starts, "s"), (ends, "e"), ([1, 2], "a"))]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], strides=[4], kernel_shape=[4]),
             helper.make_node("Slice", ["c", "s", "e", "a"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(model), path)
    return path


def test_a_slice_on_channel_and_time_axes_is_wrong_in_onnx2tf_alone_and_right_after_the_rewrite(tmp_path):
    """Why ``slice-axes`` exists: onnx2tf cuts such a Slice on the wrong axes (stopped by the check, shape or
    values). If this starts passing without the rewrite, onnx2tf fixed it and the rewrite can go."""
    from tflite_int8.config.inputs import InputSpec, InputTable
    from tflite_int8.convert.rewrites import rewrite

    table = InputTable((InputSpec("x", (1, 1, 16)),))
    x = [np.random.default_rng(1).standard_normal((1, 1, 16)).astype(np.float32)]
    path = _conv_then_slice(tmp_path / "slice.onnx", [3, 0], [6, 4])
    with pytest.raises(ConversionError, match=r"\[translate\] output 'Identity': output shapes differ"):
        translate(path, tmp_path / "raw", table, samples=x, check_inputs=x)
    rewrite(path, x)
    m = translate(path, tmp_path / "fixed", table, samples=x, check_inputs=x).check["outputs"]["Identity"]
    assert m["cosine"] > 0.9999 and m["rel_max_err"] < 1e-5
