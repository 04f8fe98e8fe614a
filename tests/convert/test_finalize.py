"""Every written .tflite carries the user's names, the model's order and the tflite_int8 metadata."""
from __future__ import annotations

import numpy as np
import pytest

from tflite_int8 import ConversionError, Runner, verify
from tflite_int8.config.inputs import InputSpec, InputTable
from tflite_int8.convert.finalize import finalize, output_entry
from tflite_int8.runtime.describe import describe
from tflite_int8.runtime.metadata import read_metadata


def test_output_names_survive_into_the_signature_and_the_runner(face_conversion, photos):
    conv = face_conversion
    info = describe(conv.int8_path)
    assert info["verdict"] == "full-integer" and info["xnnpack"]["partitions"] >= 1
    assert info["signatures"]["serving_default"]["outputs"] == ["box", "landmarks", "prob"]
    assert [o["name"] for o in info["outputs"]] == ["box", "landmarks", "prob"]
    assert [o["name"] for o in conv.report["tensors"]["outputs"]] == ["box", "landmarks", "prob"]
    runner = Runner(conv.int8_path)
    assert runner.output_names == ["box", "landmarks", "prob"] and runner.input_names == ["crop"]
    out = Runner(conv.int8_path, layout="source")(np.zeros((2, 3, 24, 24), np.float32))
    assert {k: v.shape for k, v in out.items()} == {"box": (2, 4), "landmarks": (2, 10), "prob": (2, 2)}
    res = verify(conv.out_dir, data=photos, num_samples=12, layers=False)
    assert res.passed, res.failures
    assert set(res.report["outputs"]) == {"box", "landmarks", "prob"}


def test_metadata_says_how_to_feed(face_conversion):
    meta = read_metadata(face_conversion.int8_path)
    (crop,) = meta["inputs"]
    assert crop["name"] == "crop" and crop["kind"] == "image" and crop["layout_change"] == "NCHW -> NHWC"
    assert crop["preprocess"]["size"] == [24, 24] and crop["preprocess"]["resize"] == "stretch"
    assert [o["name"] for o in meta["outputs"]] == ["box", "landmarks", "prob"]
    assert read_metadata(face_conversion.out_dir / "model.onnx") is None  # not a flatbuffer: nothing, no crash


def test_inputs_in_the_models_order_not_the_converters(two_input_conversion):
    """The converter sorts inputs by name (feats, image); the file lists them as forward() does."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(two_input_conversion.int8_path))
    assert [d["name"] for d in interp.get_input_details()] == ["image", "feats"]
    assert read_metadata(two_input_conversion.int8_path)["inputs"][1]["shape"] == [1, 16]


def test_a_file_that_does_not_match_the_model_is_refused(two_input_conversion, tmp_path):
    copy = tmp_path / "m.tflite"
    copy.write_bytes(two_input_conversion.int8_path.read_bytes())
    wrong = InputTable((InputSpec("image", (1, 3, 16, 16)), InputSpec("feats", (1, 16))))
    with pytest.raises(ConversionError, match=r"input 'image' is \[1, 32, 32, 3\] in the TFLite file, expected "
                                              r"\[1, 16, 16, 3\]"):
        finalize(copy, wrong, [("output", [1, 5])])
    with pytest.raises(ConversionError, match="cannot match its inputs/outputs"):
        finalize(copy, InputTable((InputSpec("other", (1, 16)),)), [("output", [1, 5])])


@pytest.mark.parametrize("source, tflite, back", [([1, 4, 8, 6], [1, 8, 6, 4], [0, 3, 1, 2]),
                                                  ([1, 6, 48], [1, 48, 6], [0, 2, 1]),
                                                  ([1, 10], [1, 10], [0, 1]), (None, [1, 10], None),
                                                  ([2, 1, 128], [1, 2, 128], [1, 0, 2]),  # a VAD's state
                                                  ([2, 3, 4], [1, 2, 12], None)])
def test_output_layout_back_to_the_source(source, tflite, back):
    assert output_entry("o", source, tflite)["to_source"] == back
