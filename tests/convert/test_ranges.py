"""MSE-optimal activation ranges: rare extremes clipped for a finer step; inputs/outputs untouched."""
from __future__ import annotations

import numpy as np
import pytest

from tests.models import TINY_SPEC, tiny
from tflite_int8 import convert
from tflite_int8.errors import InputError
from tflite_int8.config.recipe import Recipe
from tflite_int8.convert.ranges import best_range


def test_best_range_clips_rare_outliers_and_keeps_dense_ranges():
    rng = np.random.default_rng(0)
    values = rng.laplace(size=200_000)  # heavy tails, as activations have
    counts, _ = np.histogram(values, 2048, (values.min(), values.max()))
    lo, hi = best_range(counts, values.min(), values.max())
    assert 0.9 * values.min() < lo < 0 < hi < 0.9 * values.max()
    uniform = rng.uniform(0, 6, 100_000)
    counts, _ = np.histogram(uniform, 2048, (0.0, 6.0))
    lo, hi = best_range(counts, 0.0, 6.0)
    assert lo == 0.0 and hi > 5.7


def test_unknown_ranges_refused():
    with pytest.raises(InputError, match="activation ranges"):
        Recipe(ranges="percentile")


def test_mse_is_the_default_and_minmax_stays_available():
    assert Recipe().range_method == "mse" and Recipe().to_dict()["ranges"] == "mse"
    assert Recipe(ranges="minmax").to_dict()["ranges"] == "minmax"
    assert Recipe.from_dict({}).range_method == "minmax"  # a record written before MSE became the default


def test_mse_ranges_narrow_inner_tensors_only(tmp_path, tiny_conversion, photos):
    """The default (MSE) against plain min/max on the same data."""
    from ai_edge_litert.interpreter import Interpreter

    assert tiny_conversion.report["recipe"]["ranges"] == "mse"
    conv = convert(tiny(), tmp_path / "minmax", spec=TINY_SPEC, data=photos, views=2, recipe=Recipe(ranges="minmax"))
    assert conv.report["recipe"]["ranges"] == "minmax"

    def scales(path):
        it = Interpreter(model_path=str(path))
        ends = {d["index"] for d in it.get_input_details() + it.get_output_details()}
        return ({d["name"]: float(d["quantization"][0]) for d in it.get_tensor_details()
                 if d["dtype"] == np.int8 and d["quantization"][0] and d["index"] not in ends},
                [d["quantization"] for d in it.get_input_details() + it.get_output_details()],
                {d["dtype"] for d in it.get_tensor_details()})

    base, base_ends, _ = scales(conv.int8_path)
    mse, mse_ends, dtypes = scales(tiny_conversion.int8_path)
    assert mse_ends == base_ends
    assert dtypes <= {np.int8, np.int32}  # still full-integer
    shared = set(base) & set(mse)
    assert len(shared) >= 3
    assert all(mse[n] <= base[n] * 1.0001 for n in shared)
    assert any(mse[n] < 0.95 * base[n] for n in shared)
