"""The I/O adapter: bit-identical to TFLite's in-graph QUANTIZE/DEQUANTIZE, clear errors, pixel fast path."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tflite_int8 import InputError, Int8Warning, PreprocessSpec, Runner
from tflite_int8.runtime.adapter import TensorInfo, dequantize, pixel_table, quantize, read_io

GOLDEN = Path(__file__).parents[1] / "golden" / "adapter_vectors.json"


def _edge_inputs(info: TensorInfo, n: int, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random inputs salted with the hard values: half steps, range ends, beyond the range, -0.0."""
    s, z = info.scales[0], info.zero_points[0]
    lo, hi = info.float_range()
    k = rng.integers(-140, 140, size=(n, *shape)).astype(np.float32)
    halves = ((k + 0.5 - z) * np.float32(s)).astype(np.float32)  # exactly between two steps (in float32)
    x = rng.uniform(lo * 1.3, hi * 1.3, size=(n, *shape)).astype(np.float32)
    pick = rng.random((n, *shape))
    x = np.where(pick < 0.35, halves, x)
    x = np.where((pick >= 0.35) & (pick < 0.40), np.float32(-0.0), x)
    x = np.where((pick >= 0.40) & (pick < 0.45), np.float32(lo), x)
    x = np.where((pick >= 0.45) & (pick < 0.50), np.float32(hi), x)
    x = np.where((pick >= 0.50) & (pick < 0.55), np.float32(hi * 4), x)
    return x.astype(np.float32)


def _equivalence(conversion, n: int = 1000, *, op_resolver: str = "auto") -> int:
    """Adapter + integer-I/O model vs the same model with the converter's own in-graph QUANTIZE/DEQUANTIZE."""
    spec = PreprocessSpec(size=(32, 32), resize="stretch", layout="NHWC")
    int_io = Runner(conversion.files["full-integer"], spec, clip_warn=1.0, op_resolver=op_resolver)
    float_io = Runner(conversion.files["int8-float-io"], spec, op_resolver=op_resolver)
    assert int_io.inputs[0].quantized and not float_io.inputs[0].quantized
    x = _edge_inputs(int_io.inputs[0], n, np.random.default_rng(7), (32, 32, 3))
    lo, hi = int_io.inputs[0].float_range()
    # ... and the same inputs clipped into the calibrated range: the Runner's clamp-free fast path
    for batch in (x, np.clip(x, lo, hi).astype(np.float32)):
        a = int_io(batch)[int_io.output_names[0]]
        b = float_io(batch)[float_io.output_names[0]]
        assert a.shape == b.shape == (n, 10)
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), \
            f"{int((a != b).any(axis=1).sum())} of {n} outputs differ"
    return n


def test_equivalence_int8_io(tiny_conversion):
    assert _equivalence(tiny_conversion) == 1000


def test_equivalence_uint8_io(tiny_conversion_uint8):
    assert _equivalence(tiny_conversion_uint8) == 1000


def test_equivalence_with_reference_kernels(tiny_conversion):
    # The reference kernels round half away from zero; the runner follows them when asked to use them.
    assert _equivalence(tiny_conversion, 300, op_resolver="reference") == 300


def test_the_wrong_rounding_rule_is_caught(tiny_conversion):
    """The equivalence check can fail: half-away rounding against the default (XNNPACK) kernels differs."""
    spec = PreprocessSpec(size=(32, 32), resize="stretch", layout="NHWC")
    wrong = Runner(tiny_conversion.int8_path, spec, clip_warn=1.0, rounding="reference")
    float_io = Runner(tiny_conversion.files["int8-float-io"], spec)
    x = _edge_inputs(wrong.inputs[0], 200, np.random.default_rng(7), (32, 32, 3))
    a, b = wrong(x)[wrong.output_names[0]], float_io(x)[float_io.output_names[0]]
    assert (a != b).any(axis=1).sum() > 0


def test_the_two_rounding_rules_really_differ():
    info = TensorInfo("x", 0, (1, 4), "int8", (0.5,), (0,))
    x = np.array([0.25, 0.75, -0.25, 1.25], np.float32)  # 0.5, 1.5, -0.5, 2.5 steps
    assert quantize(x, info).tolist() == [0, 2, 0, 2]  # half to even (XNNPACK, optimized kernels)
    assert quantize(x, info, rounding="reference").tolist() == [1, 2, -1, 3]  # half away from zero


def test_io_details_of_a_mixed_model(tiny_conversion):
    ins, outs = read_io(tiny_conversion.files["int8-float-io"])
    assert ins[0].dtype == "float32" and not ins[0].quantized
    ins, outs = read_io(tiny_conversion.files["full-integer"])
    assert ins[0].dtype == "int8" and ins[0].quantized and not ins[0].per_axis
    assert outs[0].dtype == "int8" and outs[0].scales[0] > 0


def test_float_model_passes_through(tiny_conversion):
    r = Runner(tiny_conversion.files["float32"], PreprocessSpec(size=(32, 32), resize="stretch"))
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    out = r(x)[r.output_names[0]]
    assert out.dtype == np.float32 and out.shape == (2, 10)
    assert dequantize(np.array([1.5], np.float32), r.outputs[0]).tolist() == [1.5]


def test_nchw_and_nhwc_give_the_same_result(tiny_conversion):
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    nchw = Runner(tiny_conversion.int8_path, PreprocessSpec(size=(32, 32), layout="NCHW"), clip_warn=1.0)
    nhwc = Runner(tiny_conversion.int8_path, PreprocessSpec(size=(32, 32), layout="NHWC"), clip_warn=1.0)
    a = nchw(x)[nchw.output_names[0]]
    b = nhwc(x.transpose(0, 2, 3, 1))[nhwc.output_names[0]]
    assert np.array_equal(a, b)


def test_pixel_fast_path_is_identical_to_float_path(tiny_conversion, photos):
    spec = PreprocessSpec(size=(32, 32), resize="stretch")
    runner = Runner(tiny_conversion.int8_path, spec)
    assert runner.pixel_fast_path in ("table", "offset")
    pix = np.random.default_rng(3).integers(0, 256, size=(20, 32, 32, 3), dtype=np.uint8)
    pix[0] = 0
    pix[1] = 255
    by_pixels = runner(pix)[runner.output_names[0]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Int8Warning)
        by_float = runner(spec.normalize(pix))[runner.output_names[0]]
    assert np.array_equal(by_pixels, by_float)
    q_int = runner.pixels_to_input(pix)
    q_float = quantize(spec.to_nhwc(spec.normalize(pix)), runner.inputs[0])
    assert np.array_equal(q_int, q_float)


def test_pixel_offset_path_when_scale_is_one_over_255():
    # scale 1/255, zero point -128 and a 0..1 input: q = p - 128 with integer ops only.
    spec = PreprocessSpec(size=(4, 4), mean=(0.0,), std=(1.0,), resize="stretch")
    info = TensorInfo("x", 0, (1, 4, 4, 3), "int8", (float(np.float32(1 / 255)),), (-128,))
    table = pixel_table(spec, info)
    assert np.array_equal(table, np.tile(np.arange(256) - 128, (3, 1)))


@settings(max_examples=300, deadline=None)
@given(scale=st.floats(2.0 ** -12, 8.0, allow_nan=False, width=32),
       zp=st.integers(-128, 127),
       x=st.lists(st.floats(-1e4, 1e4, allow_nan=False, width=32), min_size=1, max_size=64))
def test_round_trip_error_is_at_most_half_a_step(scale, zp, x):
    info = TensorInfo("t", 0, (len(x),), "int8", (scale,), (zp,))
    xa = np.asarray(x, np.float32)
    q = quantize(xa, info)
    back = dequantize(q, info)
    lo, hi = info.float_range()
    inside = (xa >= lo) & (xa <= hi)
    step = np.float32(scale)
    assert np.all(np.abs(back[inside] - xa[inside]) <= step / 2 * (1 + 1e-5) + 1e-6 * np.abs(xa[inside]))
    assert np.all(q[xa > hi + step] == 127) and np.all(q[xa < lo - step] == -128)


@settings(max_examples=300, deadline=None)
@given(scale=st.floats(2.0 ** -12, 8.0, allow_nan=False, width=32), dtype=st.sampled_from(["int8", "uint8"]),
       zp=st.integers(-128, 255), u=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=64))
def test_in_range_fast_path_is_identical(scale, dtype, zp, u):
    lo_i, hi_i = (-128, 127) if dtype == "int8" else (0, 255)
    zp = min(max(zp, lo_i), hi_i)
    info = TensorInfo("t", 0, (len(u),), dtype, (scale,), (zp,))
    lo, hi = info.float_range()
    xa = np.clip(np.float32(lo) + np.asarray(u, np.float32) * np.float32(hi - lo), lo, hi).astype(np.float32)
    xa[0] = lo if len(u) % 2 else hi  # the range ends themselves
    np.testing.assert_array_equal(quantize(xa, info, in_range=True), quantize(xa, info))


@settings(max_examples=200, deadline=None)
@given(mean=st.floats(0.0, 1.0), std=st.floats(0.05, 2.0), scale=st.floats(2.0 ** -10, 0.125, width=32),
       zp=st.integers(-128, 127))
def test_pixel_table_matches_float_path(mean, std, scale, zp):
    spec = PreprocessSpec(size=(16, 16), mean=(mean,), std=(std,), resize="stretch", layout="NHWC")
    info = TensorInfo("x", 0, (1, 16, 16, 3), "int8", (float(np.float32(scale)),), (zp,))
    table = pixel_table(spec, info)
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    assert np.array_equal(table[0][pixels[..., 0]], quantize(spec.normalize(pixels), info)[0, ..., 0])


def test_per_axis_quantization_broadcasts():
    info = TensorInfo("w", 0, (2, 3), "int8", (0.5, 0.25), (0, 1), quantized_dimension=0)
    x = np.array([[1.0, -1.0, 0.26], [1.0, -1.0, 0.26]], np.float32)
    assert quantize(x, info).tolist() == [[2, -2, 1], [5, -3, 2]]
    assert dequantize(quantize(x, info), info).tolist() == [[1.0, -1.0, 0.5], [1.0, -1.0, 0.25]]


class TestErrors:
    def test_wrong_dtype(self, tiny_conversion):
        r = Runner(tiny_conversion.int8_path)
        with pytest.raises(InputError, match="got int8 values; pass float"):
            r(np.zeros((1, 32, 32, 3), np.int8))

    def test_wrong_shape_names_expected_and_given(self, tiny_conversion):
        r = Runner(tiny_conversion.int8_path)
        with pytest.raises(InputError, match=r"expects shape \(N, 32, 32, 3\).*got \(1, 3, 32, 32\)"):
            r(np.zeros((1, 3, 32, 32), np.float32))

    def test_nan_is_an_error_or_clamped_with_a_warning(self, tiny_conversion):
        x = np.zeros((1, 32, 32, 3), np.float32)
        x[0, 0, 0, 0] = np.nan
        with pytest.raises(InputError, match="1 NaN/Inf"):
            Runner(tiny_conversion.int8_path)(x)
        with pytest.warns(Int8Warning, match="clamped"):
            out = Runner(tiny_conversion.int8_path, nonfinite="clamp")(x)
        assert all(np.isfinite(v).all() for v in out.values())

    def test_far_outside_the_calibrated_range_warns_with_fraction(self, tiny_conversion):
        r = Runner(tiny_conversion.int8_path)
        lo, hi = r.inputs[0].float_range()
        x = np.full((1, 32, 32, 3), hi * 10, np.float32)
        with pytest.warns(Int8Warning, match=r"100.0% of values lie outside the calibrated range"):
            r(x)

    def test_wrong_number_of_inputs(self, tiny_conversion):
        r = Runner(tiny_conversion.int8_path)
        with pytest.raises(InputError, match="takes 1 input"):
            r(np.zeros((1, 32, 32, 3), np.float32), np.zeros((1, 32, 32, 3), np.float32))

    def test_quantizing_for_a_float_tensor_is_refused(self):
        with pytest.raises(InputError, match="without quantization parameters"):
            quantize(np.zeros(3, np.float32), TensorInfo("f", 0, (3,), "float32", (), ()))


def test_golden_vectors_match_the_adapter():
    """tests/golden/adapter_vectors.json is what the Java side tests against; it must stay true."""
    cases = json.loads(GOLDEN.read_text())["cases"]
    assert len(cases) >= 8
    for case in cases:
        info = TensorInfo("g", 0, (len(case["input"]),), case["dtype"], (case["scale"],), (case["zero_point"],))
        x = np.asarray(case["input"], np.float32)
        assert quantize(x, info).tolist() == case["expected_xnnpack"], case["name"]
        assert quantize(x, info, rounding="reference").tolist() == case["expected_reference"], case["name"]
        assert dequantize(np.asarray(case["expected_xnnpack"]), info).tolist() == \
            pytest.approx(case["dequantized_xnnpack"], abs=0), case["name"]


@pytest.mark.slow
@pytest.mark.parametrize("io_dtype", ["int8", "uint8"])
def test_equivalence_on_efficientnet_lite0(tmp_path, photos, io_dtype):
    """The demo model, converted with integer I/O and with the converter's in-graph float I/O: bit-identical."""
    from tflite_int8 import Recipe, convert
    from tflite_int8.zoo.models import DEMO_MODEL

    conv = convert(DEMO_MODEL, tmp_path / io_dtype, data=photos, num_samples=24,
                   recipe=Recipe(io_dtype=io_dtype, variants=("int8-float-io",)))
    spec = PreprocessSpec(size=(224, 224), layout="NHWC")
    int_io = Runner(conv.int8_path, spec, clip_warn=1.0)
    float_io = Runner(conv.files["int8-float-io"], spec)
    assert int_io.inputs[0].dtype == io_dtype
    x = _edge_inputs(int_io.inputs[0], 40, np.random.default_rng(11), (224, 224, 3))
    a, b = int_io(x)[int_io.output_names[0]], float_io(x)[float_io.output_names[0]]
    assert a.shape == (40, 1000)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    pix = np.random.default_rng(2).integers(0, 256, (4, 224, 224, 3), dtype=np.uint8)
    demo_spec = PreprocessSpec(size=(224, 224), mean=(127 / 255,), std=(128 / 255,))
    runner = Runner(conv.int8_path, demo_spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Int8Warning)
        assert np.array_equal(runner(pix)[runner.output_names[0]],
                              runner(demo_spec.normalize(pix))[runner.output_names[0]])
