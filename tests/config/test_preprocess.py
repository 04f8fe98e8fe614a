"""The preprocessing spec: validation, formula, resize modes, files."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tflite_int8 import InputError, PreprocessSpec, load_spec, preset


def test_defaults_and_shape():
    spec = PreprocessSpec()
    assert spec.input_shape() == (1, 3, 224, 224)
    assert PreprocessSpec(layout="NHWC", channels="L", mean=(0.5,), std=(0.5,)).input_shape(2) == (2, 224, 224, 1)


def test_normalize_formula_and_layout():
    spec = PreprocessSpec(size=(2, 2), mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    pix = np.array([[[0, 255, 51]] * 2] * 2, np.uint8)
    x = spec.normalize(pix)
    assert x.shape == (1, 3, 2, 2) and x.dtype == np.float32
    assert x[0, :, 0, 0] == pytest.approx([-1.0, 3.0, 0.2], abs=1e-6)


@pytest.mark.parametrize("mode", ["center-crop", "letterbox", "stretch"])
def test_resize_modes_give_the_declared_size(mode):
    spec = PreprocessSpec(size=(20, 30), resize=mode)
    im = Image.fromarray(np.full((50, 100, 3), 200, np.uint8))
    out = spec.resize_image(im)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    if mode == "letterbox":  # 100x50 fit into 30x20 -> 30x15, gray bars above and below
        assert (out[0] == 114).all() and (out[10] == 200).all()
    else:
        assert (out == 200).all()


def test_bgr_and_grayscale():
    im = Image.fromarray(np.array([[[10, 20, 30]]], np.uint8))
    assert PreprocessSpec(size=(1, 1), channels="BGR", resize="stretch").resize_image(im)[0, 0].tolist() == [30, 20, 10]
    assert PreprocessSpec(size=(1, 1), channels="L", mean=(0.0,), std=(1.0,), resize="stretch").resize_image(im).shape \
        == (1, 1, 1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(mean=(0.1, 0.2)), "'mean' needs 1 or 3 values"),
    (dict(std=(0.1, 0.0, 0.2)), "'std' must not contain zero"),
    (dict(size=(0, 4)), "'size' must be two positive"),
    (dict(resize="crop"), "'resize' must be one of"),
    (dict(layout="CHW"), "'layout' must be NCHW or NHWC"),
    (dict(mean=(float("nan"),)), "'mean' must be finite"),
])
def test_bad_values_are_refused_clearly(kwargs, match):
    with pytest.raises(InputError, match=match):
        PreprocessSpec(**kwargs)


def test_dict_round_trip_and_unknown_keys():
    spec = preset("efficientnet-lite0")
    assert PreprocessSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(InputError, match="unknown key.*'?colour'?.*allowed keys"):
        PreprocessSpec.from_dict({"size": [224, 224], "colour": "RGB"})
    with pytest.raises(InputError, match="'size' has the wrong type"):
        PreprocessSpec.from_dict({"size": "224"})


def test_spec_files(tmp_path):
    toml = tmp_path / "spec.toml"
    toml.write_text('[preprocess]\nsize = [96, 128]\nresize = "letterbox"\nmean = [0.5]\nstd = [0.5]\n')
    spec = load_spec(toml)
    assert spec.size == (96, 128) and spec.mean == (0.5, 0.5, 0.5)
    js = tmp_path / "spec.json"
    js.write_text(json.dumps(spec.to_dict()))
    assert load_spec(js) == spec
    bad = tmp_path / "bad.toml"
    bad.write_text("size = [1, 2\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_spec(bad)
    with pytest.raises(InputError, match="unknown key"):
        js.write_text('{"sise": [1, 1]}')
        load_spec(js)


def test_unknown_preset():
    with pytest.raises(InputError, match="unknown preprocessing preset 'resnet'"):
        preset("resnet")
