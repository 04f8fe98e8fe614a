"""Bounded fuzzing of the adapter and the input loaders: any input gives a result or a typed error, never a crash.

Run with ``--hypothesis-show-statistics`` to see the number of cases each test ran.
"""
from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tflite_int8 import Int8Error, Runner
from tflite_int8.runtime.adapter import INT_RANGES, TensorInfo, dequantize, quantize
from tflite_int8.data.readers import ArrayReader
from tflite_int8.runtime.reference import load_onnx
from tflite_int8.data.images import list_images, load_image
from tflite_int8.runtime.describe import describe
from tflite_int8.runtime.interpreter import check_header
from tflite_int8.config.preprocess import PreprocessSpec, load_spec

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

floats = st.floats(allow_nan=True, allow_infinity=True, width=32)


@FUZZ
@given(dtype=st.sampled_from(["int8", "uint8", "int16"]), scale=st.floats(2.0 ** -26, 1e4, width=32),
       zp=st.integers(-40000, 40000), values=st.lists(floats, min_size=1, max_size=32))
def test_quantize_any_values(dtype, scale, zp, values):
    lo, hi = INT_RANGES[dtype]
    zp = min(max(zp, lo), hi)
    info = TensorInfo("t", 0, (len(values),), dtype, (scale,), (zp,))
    x = np.asarray(values, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN/Inf casts: the Runner refuses those first
        q = quantize(x, info)
    assert q.dtype == np.dtype(dtype) and q.shape == x.shape
    finite = np.isfinite(x)
    assert np.all((q[finite] >= lo) & (q[finite] <= hi))
    back = dequantize(q, info)
    assert back.dtype == np.float32 and np.all(np.isfinite(back))


@pytest.fixture(scope="module")
def tiny_runner(tiny_conversion, tiny_spec):
    return Runner(tiny_conversion.int8_path, tiny_spec)


@FUZZ
@given(shape=st.lists(st.integers(0, 40), min_size=0, max_size=5),
       dtype=st.sampled_from(["float32", "float64", "float16", "int8", "uint8", "int32", "bool"]),
       fill=floats)
def test_runner_any_array(tiny_runner, shape, dtype, fill):
    x = np.full(shape, fill if dtype.startswith("float") else 1).astype(dtype)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = tiny_runner(x)
    except Int8Error:
        return
    assert out["output"].dtype == np.float32 and np.all(np.isfinite(out["output"]))


def _png(w: int, h: int, mode: str) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (w, h)).save(buf, format="PNG")
    return buf.getvalue()


@FUZZ
@given(data=st.one_of(st.binary(max_size=300),
                      st.builds(lambda w, h, m, cut: _png(w, h, m)[:cut], st.integers(1, 40), st.integers(1, 40),
                                st.sampled_from(["L", "RGB", "RGBA", "P", "I;16", "1"]), st.integers(0, 400))),
       suffix=st.sampled_from([".png", ".jpg", ".bmp", ".webp", ".txt"]))
def test_image_loader_any_bytes(tmp_path_factory, data, suffix):
    folder = tmp_path_factory.mktemp("img")
    path = folder / f"f{suffix}"
    path.write_bytes(data)
    listing = list_images(folder)
    for p in listing.paths:
        try:
            im = load_image(p, mode="RGB", target=(16, 16))
        except Int8Error:
            continue
        assert im.mode == "RGB" and min(im.size) >= 1
        PreprocessSpec(size=(16, 16)).resize_image(im)


@FUZZ
@given(shape=st.lists(st.integers(0, 6), min_size=0, max_size=5), dtype=st.sampled_from(["f4", "f8", "i4", "u1"]),
       fill=floats, raw=st.binary(max_size=200), as_raw=st.booleans())
def test_npy_loader_any_file(tmp_path_factory, shape, dtype, fill, raw, as_raw):
    path = tmp_path_factory.mktemp("npy") / "x.npy"
    if as_raw:
        path.write_bytes(raw)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.save(path, np.full(shape, fill).astype(dtype))
    try:
        reader = ArrayReader(path, (1, 3, 4, 4))
    except Int8Error:
        return
    for s in reader:
        assert s.x.shape == (1, 3, 4, 4) and np.all(np.isfinite(s.x))


@FUZZ
@given(raw=st.binary(max_size=400), kind=st.sampled_from(["onnx", "tflite", "toml", "json"]))
def test_model_and_spec_loaders_any_bytes(tmp_path_factory, raw, kind):
    path = tmp_path_factory.mktemp("f") / f"m.{kind}"
    path.write_bytes(raw)
    loader = {"onnx": load_onnx, "tflite": check_header, "toml": load_spec, "json": load_spec}[kind]
    try:
        loader(path)
    except Int8Error:
        pass


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255)), min_size=1, max_size=20))
def test_mutated_tflite_never_crashes_the_caller(tiny_conversion, tmp_path_factory, flips):
    data = bytearray(tiny_conversion.int8_path.read_bytes())
    for pos, val in flips:
        data[8 + pos % (len(data) - 8)] = val  # keep the TFL3 header: the loader must go deeper
    path = tmp_path_factory.mktemp("mut") / "m.tflite"
    path.write_bytes(bytes(data))
    try:
        info = describe(path)  # first load in a child process: a crash there is an InputError here
    except Int8Error:
        return
    json.dumps(info)
