"""Export: PyTorch -> static, simplified ONNX, checked against PyTorch; user ONNX files made static."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from tests.models import TINY_SPEC, tiny, two_outputs
from tflite_int8 import ConversionError, InputError
from tflite_int8.convert.export import export, prepare_onnx
from tflite_int8.runtime.reference import load_factory


def _static_dims(path):
    m = onnx.load(str(path))
    return [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in m.graph.input]


def test_export_is_static_opset17_and_checked(tmp_path, rng):
    x = [rng.standard_normal((1, 3, 32, 32)).astype(np.float32) for _ in range(3)]
    res = export(tiny(), tmp_path / "m.onnx", TINY_SPEC.input_shape(), check_inputs=x)
    assert _static_dims(res.onnx_path) == [[1, 3, 32, 32]]
    model = onnx.load(str(res.onnx_path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    m = res.check["outputs"]["output"]
    assert m["cosine"] > 0.99999 and m["max_abs_err"] < 1e-4 and m["samples"] == 3
    assert res.simplify_seconds > 0  # onnxslim timed on its own (the benchmark's stage table)
    assert not (tmp_path / "m.raw.onnx").exists()


def test_multiple_outputs_keep_their_order(tmp_path, rng):
    res = export(two_outputs(), tmp_path / "two.onnx", (1, 3, 8, 8),
                 check_inputs=[rng.standard_normal((1, 3, 8, 8)).astype(np.float32)])
    assert res.output_names == ["output0", "output1"]
    assert set(res.check["outputs"]) == {"output0", "output1"}


def test_training_mode_is_switched_and_said(tmp_path):
    model = tiny().train()
    res = export(model, tmp_path / "m.onnx", TINY_SPEC.input_shape())
    assert any("eval()" in a for a in res.adjustments)


def test_dynamic_batch_is_fixed_and_reported_dynamic_size_refused(tmp_path):
    x = torch.zeros(1, 3, 32, 32)
    torch.onnx.export(tiny(), (x,), str(tmp_path / "dyn.onnx"), input_names=["input"], opset_version=17,
                      dynamic_axes={"input": {0: "batch"}}, dynamo=False)
    res = prepare_onnx(tmp_path / "dyn.onnx", tmp_path / "fixed.onnx")
    assert _static_dims(res.onnx_path) == [[1, 3, 32, 32]]
    assert res.adjustments == ["input 'input': dynamic batch dimension 'batch' fixed to 1"]
    torch.onnx.export(tiny(), (x,), str(tmp_path / "dyn2.onnx"), input_names=["input"], opset_version=17,
                      dynamic_axes={"input": {2: "height", 3: "width"}}, dynamo=False)
    with pytest.raises(InputError, match="dynamic dimension 2 \\('height'\\).*static"):
        prepare_onnx(tmp_path / "dyn2.onnx", tmp_path / "x.onnx")


@pytest.mark.parametrize("content, match", [
    (b"", "is empty"),
    (b"this is not protobuf at all" * 10, "not a valid ONNX model"),
])
def test_broken_onnx_files(tmp_path, content, match):
    p = tmp_path / "bad.onnx"
    p.write_bytes(content)
    with pytest.raises(InputError, match=match):
        prepare_onnx(p, tmp_path / "out.onnx")


def test_truncated_onnx(tmp_path):
    export(tiny(), tmp_path / "m.onnx", TINY_SPEC.input_shape())
    data = (tmp_path / "m.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.onnx is not a valid ONNX model"):
        prepare_onnx(tmp_path / "cut.onnx", tmp_path / "out.onnx")


def test_load_factory_errors():
    assert isinstance(load_factory("tests.models:tiny"), torch.nn.Module)
    with pytest.raises(InputError, match="must be 'package.module:factory'"):
        load_factory("tests.models.tiny")
    with pytest.raises(InputError, match="cannot import 'no_such_pkg'"):
        load_factory("no_such_pkg:model")
    with pytest.raises(InputError, match="has no attribute 'nope'"):
        load_factory("tests.models:nope")
    with pytest.raises(InputError, match="returned int, not a torch.nn.Module"):
        load_factory("tests.models:not_a_module")


def test_untraceable_model_is_a_conversion_error(tmp_path):
    class Bad(torch.nn.Module):
        def forward(self, x):
            return {"a": x.numpy()}  # not traceable

    with pytest.raises(ConversionError, match=r"\[export\]"):
        export(Bad(), tmp_path / "bad.onnx", (1, 3, 4, 4))


def test_a_model_that_cannot_run_at_the_given_shape_names_the_shape_and_the_fix(tmp_path):
    """Photos (the default data) fed to a sequence model: the error says which shape and how to give the right one."""
    with pytest.raises(ConversionError, match=r"does not run on input\(s\) input \[1, 3, 224, 224\].*--input-shape"):
        export(torch.nn.TransformerEncoderLayer(64, 4, 128, batch_first=True), tmp_path / "t.onnx", (1, 3, 224, 224))
    assert not list(tmp_path.iterdir())  # nothing written


def test_integer_inputs_are_exported_integer_and_checked_with_token_ids(tmp_path):
    from tests.models import tiny_encoder, token_batch
    from tflite_int8.config.inputs import InputSpec, InputTable
    from tflite_int8.runtime.reference import run_onnx

    table = InputTable((InputSpec("input_ids", (1, 16), dtype="int64"), InputSpec("attention_mask", (1, 16),
                                                                                   dtype="int64")))
    batch = token_batch(3, seed=4)
    samples = [{k: v[i:i + 1] for k, v in batch.items()} for i in range(3)]
    res = export(tiny_encoder(), tmp_path / "enc.onnx", table, check_inputs=samples)
    model = onnx.load(str(res.onnx_path))
    assert [(i.name, i.type.tensor_type.elem_type) for i in model.graph.input] == [
        ("input_ids", onnx.TensorProto.INT64), ("attention_mask", onnx.TensorProto.INT64)]
    assert res.check["outputs"]["output"]["cosine_min"] > 0.9999  # ORT vs PyTorch on the same ids
    out = run_onnx(res.onnx_path, [{k: v.astype(np.int32) for k, v in samples[0].items()}])  # cast to the file's
    assert out[0][0].shape == (1, 32)
