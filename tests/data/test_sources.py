"""Which data feeds which input: .npz by name, .npy for one input, photos for the image input; multi-input readers."""
from __future__ import annotations

import numpy as np
import pytest

from tflite_int8 import InputError, PreprocessSpec, open_reader
from tflite_int8.config.inputs import InputSpec, InputTable
from tflite_int8.data.sources import ARRAY, FOLDER, assign_sources

TABLE = InputTable((InputSpec("image", (1, 3, 16, 16), PreprocessSpec(size=(16, 16), resize="stretch")),
                    InputSpec("feats", (1, 8))))


@pytest.fixture
def arrays(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.standard_normal((6, 3, 16, 16)).astype(np.float32)
    feats = rng.standard_normal((6, 8)).astype(np.float32)
    np.savez(tmp_path / "both.npz", image=images, feats=feats)
    np.save(tmp_path / "feats.npy", feats)
    return tmp_path, images, feats


def test_npz_feeds_every_input_by_name(arrays):
    tmp, images, feats = arrays
    reader = open_reader(tmp / "both.npz", TABLE, warn_few=False)
    samples = list(reader)
    assert len(samples) == 6 and "image: 6 samples from both.npz[image]" in reader.description
    got = samples[4].arrays(["image", "feats"])
    assert np.array_equal(got[0][0], images[4]) and np.array_equal(got[1][0], feats[4])
    assert np.array_equal(samples[4].x, got[0])  # .x stays the first input for single-input code paths
    sub = reader.subset([1, 3])
    assert [s.name for s in sub] == [samples[1].name, samples[3].name]
    assert open_reader(tmp / "both.npz", TABLE, warn_few=False).content_hash == reader.content_hash


def test_photos_for_the_image_npy_for_the_rest(arrays, photos):
    tmp, _, feats = arrays
    assigned = assign_sources({"": [str(photos), str(tmp / "feats.npy")]}, TABLE)
    assert assigned["image"][0] == FOLDER and assigned["feats"] == (ARRAY, tmp / "feats.npy", None)
    with pytest.raises(InputError, match="different numbers of samples .*'image': 24.*'feats': 6"):
        open_reader({"image": photos, "feats": tmp / "feats.npy"}, TABLE, warn_few=False)
    reader = open_reader({"image": photos, "feats": tmp / "feats.npy"}, TABLE, num_samples=6, warn_few=False)
    first = next(iter(reader))
    assert first.pixels is not None and first.pixels.shape == (16, 16, 3)  # the thumbnail comes from the image input
    assert first.inputs["feats"].shape == (1, 8)


@pytest.mark.parametrize("data, message", [
    ("feats.npy", "a .npy holds the data of one input, but the model has 2 inputs"),
    ({"feats": "feats.npy"}, r"no data for input\(s\) image"),
    ({"image": "both.npz", "fests": "feats.npy"}, "data given for 'fests', which the model has no input of"),
    ({"image": "both.npz", "feats": "nope.npz"}, "does not exist"),
])
def test_what_is_missing_or_wrong_is_named(arrays, data, message):
    tmp = arrays[0]
    data = ({k: str(tmp / v) for k, v in data.items()} if isinstance(data, dict) else str(tmp / data))
    with pytest.raises(InputError, match=message):
        open_reader(data, TABLE, warn_few=False)


def test_npz_member_of_the_wrong_shape(tmp_path):
    np.savez(tmp_path / "x.npz", image=np.zeros((2, 3, 16, 16), np.float32), feats=np.zeros((2, 8, 1), np.float32))
    with pytest.raises(InputError, match=r"x.npz\['feats'\]: the array is \(2, 8, 1\); the model input 'feats' is "
                                         r"\[1, 8\], so its array must be \(N, 1, 8\) or \(N, 8\)"):
        open_reader(tmp_path / "x.npz", TABLE, warn_few=False)


def test_single_input_npz_may_hold_one_array_of_any_name(tmp_path):
    np.savez(tmp_path / "one.npz", whatever=np.ones((3, 8), np.float32))
    table = InputTable((InputSpec("feats", (1, 8)),))
    assert len(open_reader(tmp_path / "one.npz", table, warn_few=False)) == 3
