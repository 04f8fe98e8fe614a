"""The input table: image and tensor inputs, TFLite layouts, serialisation, the --input-shape syntax."""
from __future__ import annotations

import numpy as np
import pytest

from tflite_int8 import InputError, PreprocessSpec
from tflite_int8.config.inputs import (InputSpec, InputTable, check_values, parse_input_layout, parse_input_shape,
                                       parse_input_value, signature_name)


def test_image_input_goes_channels_last_other_ranks_keep_their_layout():
    image = InputSpec("image", (1, 3, 32, 32), PreprocessSpec(size=(32, 32)))
    assert image.kind == "image" and image.tflite_shape == (1, 32, 32, 3) and image.layout_change == "NCHW -> NHWC"
    x = np.arange(3 * 32 * 32, dtype=np.float32).reshape(1, 3, 32, 32)
    assert np.array_equal(image.to_tflite(x), x.transpose(0, 2, 3, 1))
    for shape in [(1, 32), (1, 50, 40), (1, 1, 16000)]:
        t = InputSpec("t", shape)
        assert t.kind == "tensor" and t.tflite_shape == shape and t.layout_change is None
    assert InputSpec("video", (1, 3, 4, 8, 8)).layout_change == "NCDHW -> NDHWC"
    nhwc = InputSpec("i", (1, 32, 32, 3), PreprocessSpec(size=(32, 32), layout="NHWC"))
    assert nhwc.tflite_shape == (1, 32, 32, 3) and nhwc.layout_change is None


def test_a_channels_last_source_stays_channels_last_and_a_scalar_has_shape_nothing():
    nhwc = InputSpec("x", (1, 48, 48, 3), layout="NHWC")  # a Keras model's input, read from its graph
    assert nhwc.perm == (0, 1, 2, 3) and nhwc.tflite_shape == (1, 48, 48, 3) and nhwc.layout_change is None
    nchw = InputSpec("x", (1, 3, 48, 48), layout="NCHW")
    assert nchw.tflite_shape == (1, 48, 48, 3) and nchw.layout_change == "NCHW -> NHWC"
    assert InputSpec.from_dict(nhwc.to_dict()) == nhwc and nhwc.to_dict()["layout"] == "NHWC"
    assert InputSpec.from_dict({"name": "x", "shape": [1, 3, 8, 8]}).layout_change == "NCHW -> NHWC"  # older records
    with pytest.raises(InputError, match="layout must be NCHW or NHWC for a 4-D input"):
        InputSpec("t", (1, 50, 40), layout="NHWC")
    sr = InputSpec("sr", ())
    assert sr.shape == () and sr.rank == 0 and sr.tflite_shape == () and InputSpec.from_dict(sr.to_dict()) == sr


def test_input_layout_and_value_syntax():
    assert parse_input_layout("images:nhwc") == ("images", "NHWC") and parse_input_layout("a:b:NCHW") == ("a:b", "NCHW")
    assert parse_input_value("sr=16000") == ("sr", 16000) and parse_input_value("t=0.5") == ("t", 0.5)
    for bad in ["images", "images:NWC", ":NHWC"]:
        with pytest.raises(InputError, match="NAME:NHWC or NAME:NCHW"):
            parse_input_layout(bad)
    for bad in ["sr", "sr=", "=3", "sr=fast"]:
        with pytest.raises(InputError, match="NAME=NUMBER"):
            parse_input_value(bad)


def test_table_round_trips_and_feeds_by_name_or_position():
    table = InputTable((InputSpec("image", (1, 3, 8, 8), PreprocessSpec(size=(8, 8))), InputSpec("feats", (1, 4))))
    again = InputTable.from_list(table.to_list())
    assert again == table and again.first_preprocess == PreprocessSpec(size=(8, 8))
    a, b = np.zeros((1, 3, 8, 8), np.float32), np.ones((1, 4), np.float32)
    assert list(table.feed([a, b])) == ["image", "feats"] and table.feed({"feats": b, "image": a})["feats"] is b
    with pytest.raises(InputError, match="no value for input.s. feats"):
        table.feed({"image": a})
    with pytest.raises(InputError, match="has no input 'x'; its inputs are image, feats"):
        table["x"]


def test_bad_tables_are_refused():
    with pytest.raises(InputError, match="unique"):
        InputTable((InputSpec("a", (1, 2)), InputSpec("a", (1, 3))))
    with pytest.raises(InputError, match=r"is \[1, 3, 8, 8\] but its preprocessing gives \[1, 3, 16, 16\]"):
        InputSpec("image", (1, 3, 8, 8), PreprocessSpec(size=(16, 16)))
    with pytest.raises(InputError, match="positive"):
        InputSpec("a", (1, 0))


@pytest.mark.parametrize("text, expected", [("images:1,3,640,640", ("images", (1, 3, 640, 640))),
                                            ("x:1x40", ("x", (1, 40))), ("onnx::in:1,8", ("onnx::in", (1, 8)))])
def test_input_shape_syntax(text, expected):
    assert parse_input_shape(text) == expected


@pytest.mark.parametrize("text", ["images", "images:", "images:1,-3", "images:1,0", ":1,2", "x:1,a"])
def test_input_shape_syntax_errors_say_the_form(text):
    with pytest.raises(InputError, match="NAME:D1,D2"):
        parse_input_shape(text)


def test_signature_names_follow_onnx2tf():
    assert signature_name("input:0") == "input__0" and signature_name("/x") == "wa/x"


def test_preprocess_size_may_wait_for_the_model():
    spec = PreprocessSpec(size=None)
    assert spec.size is None and PreprocessSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(InputError, match="no input size yet"):
        spec.input_shape()


def test_an_integer_input_keeps_its_dtype_and_takes_integers_only():
    spec = InputSpec("input_ids", (1, 16), dtype="int64")
    assert spec.integer and spec.kind == "tensor" and spec.to_dict()["dtype"] == "int64"
    assert InputTable.from_list([spec.to_dict()]).specs == (spec,)
    assert InputSpec.from_dict({"name": "x", "shape": [1, 4]}).dtype == "float32"  # files written before dtypes
    with pytest.raises(InputError, match="dtype 'uint64' is not supported"):
        InputSpec("ids", (1, 16), dtype="uint64")
    with pytest.raises(InputError, match="input 'ids' is int64: it takes arrays as they are, not photos"):
        InputSpec("ids", (1, 3, 8, 8), PreprocessSpec(size=(8, 8)), dtype="int64")
    ids = check_values("input_ids", np.arange(16, dtype=np.int32)[None], "int64", "t.npz")
    assert ids.dtype == np.int64 and ids.tolist() == [list(range(16))]
    with pytest.raises(InputError, match="t.npz: input 'input_ids' takes int64 values"):
        check_values("input_ids", np.zeros((1, 16), np.float32), "int64", "t.npz")
    with pytest.raises(InputError, match="t.npz: input 'feats' is float32 but the values are int64"):
        check_values("feats", np.zeros((1, 16), np.int64), "float32", "t.npz")
