"""Calibration data: any image a user has on disk, .npy arrays, views, sampling, hashing."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from tflite_int8 import InputError, Int8Warning, PreprocessSpec, open_reader
from tflite_int8.data.images import list_images, load_image

SPEC = PreprocessSpec(size=(16, 16), resize="center-crop")


@pytest.fixture
def messy_folder(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.jpg")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full((40, 60), 128, np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(tmp_path / "deep16.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "tiny.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    sub = tmp_path / "sub"
    sub.mkdir()
    Image.fromarray(rgb).save(sub / "nested.png")
    return tmp_path


def test_listing_skips_non_images_and_broken_files(messy_folder):
    listing = list_images(messy_folder)
    names = sorted(p.name for p in listing.paths)
    assert names == ["cmyk.jpg", "deep16.png", "gray.png", "nested.png", "palette.png", "rgb.jpg", "rgba.png",
                     "tiny.png"]
    assert sorted(k.split("/")[-1] for k in listing.skipped) == ["broken.jpg", "notes.txt"]
    assert "unreadable image" in next(v for k, v in listing.skipped.items() if k.endswith("broken.jpg"))


def test_every_mode_becomes_8bit_rgb(messy_folder):
    for p in list_images(messy_folder).paths:
        im = load_image(p)
        assert im.mode == "RGB", p.name
    deep = np.asarray(load_image(messy_folder / "deep16.png", mode="L"))
    src = np.asarray(Image.open(messy_folder / "gray.png"))
    assert np.abs(deep.astype(int) - src.astype(int)).max() <= 1  # 16-bit scaled, not clipped


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(np.zeros((10, 20, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "rotated.jpg").size == (10, 20)


def test_reader_yields_preprocessed_samples_and_warns_about_skips(messy_folder):
    with pytest.warns(Int8Warning, match="2 file.*skipped"):
        reader = open_reader(messy_folder, SPEC, warn_few=False)
    samples = list(reader)
    assert len(samples) == 8
    for s in samples:
        assert s.x.shape == (1, 3, 16, 16) and s.x.dtype == np.float32 and np.isfinite(s.x).all()
        assert s.pixels.shape == (16, 16, 3)


def test_views_are_deterministic_and_different(photos):
    a = list(open_reader(photos, SPEC, views=3, num_samples=12, seed=5, warn_few=False))
    b = list(open_reader(photos, SPEC, views=3, num_samples=12, seed=5, warn_few=False))
    assert [s.name for s in a] == [s.name for s in b]
    assert all(np.array_equal(x.x, y.x) for x, y in zip(a, b))
    views = list(open_reader(photos, SPEC, views=3, warn_few=False))
    chelsea = [s for s in views if s.name.startswith("skimage_chelsea.png")]
    assert len(chelsea) == 3 and not np.array_equal(chelsea[0].x, chelsea[1].x)


def test_hash_depends_on_content_and_seed(photos):
    h1 = open_reader(photos, SPEC, num_samples=10, seed=1, warn_few=False).content_hash
    assert h1 == open_reader(photos, SPEC, num_samples=10, seed=1, warn_few=False).content_hash
    assert h1 != open_reader(photos, SPEC, num_samples=10, seed=2, warn_few=False).content_hash


def test_few_samples_warn_and_none_is_an_error(tmp_path, photos):
    with pytest.warns(Int8Warning, match="only 24 calibration samples"):
        open_reader(photos, SPEC)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(InputError, match="no usable images.*1 files skipped"):
        open_reader(tmp_path, SPEC)
    with pytest.raises(InputError, match="does not exist"):
        open_reader(tmp_path / "missing", SPEC)


def test_npy_reader(tmp_path):
    good = np.random.default_rng(0).standard_normal((5, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "good.npy", good)
    reader = open_reader(tmp_path / "good.npy", SPEC, warn_few=False)
    xs = [s.x for s in reader]
    assert len(xs) == 5 and np.array_equal(xs[2][0], good[2])
    np.save(tmp_path / "shape.npy", good[:, :, :8])
    with pytest.raises(InputError, match=r"the array is \(5, 3, 8, 16\); the model input is \[1, 3, 16, 16\], so its "
                                         r"array must be \(N, 1, 3, 16, 16\) or \(N, 3, 16, 16\)$"):
        open_reader(tmp_path / "shape.npy", SPEC)
    np.save(tmp_path / "ints.npy", good.astype(np.int32))
    with pytest.raises(InputError, match="dtype is int32"):
        open_reader(tmp_path / "ints.npy", SPEC)
    bad = good.copy()
    bad[3, 0, 0, 0] = np.inf
    np.save(tmp_path / "inf.npy", bad)
    with pytest.raises(InputError, match=r"samples \[3\] contain NaN or Inf"):
        open_reader(tmp_path / "inf.npy", SPEC)
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(InputError, match="cannot read .*junk.npy"):
        open_reader(tmp_path / "junk.npy", SPEC)


def test_arrays_hold_one_sample_axis_before_the_input_shape(tmp_path):
    """(N, *S) for an input of shape S; (N, *S[1:]) too when S[0] is 1; a first dimension of 2 is no batch."""
    from tflite_int8.config.inputs import InputSpec, InputTable

    state = np.random.default_rng(0).standard_normal((4, 2, 1, 8)).astype(np.float32)
    np.save(tmp_path / "state.npy", state)
    table = InputTable((InputSpec("state", (2, 1, 8)),))
    xs = [s.x for s in open_reader(tmp_path / "state.npy", table, warn_few=False)]
    assert len(xs) == 4 and xs[1].shape == (2, 1, 8) and np.array_equal(xs[1], state[1])
    np.save(tmp_path / "dropped.npy", state[:, 0])  # (N, 1, 8): the old (N, *S[1:]) form, S[0] is 2
    with pytest.raises(InputError, match=r"the array is \(4, 1, 8\); the model input is \[2, 1, 8\], so its array "
                                         r"must be \(N, 2, 1, 8\)$"):
        open_reader(tmp_path / "dropped.npy", table, warn_few=False)
    audio = InputTable((InputSpec("x", (1, 576)),))
    for shape in [(3, 576), (3, 1, 576)]:  # both forms, the same samples
        np.save(tmp_path / "x.npy", np.ones(shape, np.float32))
        assert [s.x.shape for s in open_reader(tmp_path / "x.npy", audio, warn_few=False)] == [(1, 576)] * 3
    np.save(tmp_path / "sr.npy", np.full(5, 16000.0, np.float32))  # a scalar input: (N,)
    assert [s.x.shape for s in open_reader(tmp_path / "sr.npy", InputTable((InputSpec("sr", ()),)),
                                           warn_few=False)] == [()] * 5


def test_huge_jpeg_is_decoded_small(tmp_path):
    Image.fromarray(np.full((4000, 4000, 3), 90, np.uint8)).save(tmp_path / "huge.jpg", quality=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        im = load_image(tmp_path / "huge.jpg", target=(16, 16))
    assert max(im.size) <= 4000 // 8 * 2  # draft mode shrank it while decoding
