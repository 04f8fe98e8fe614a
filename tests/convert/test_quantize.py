"""Quantize: full-integer by default, per-channel weights, variants named for what they are, float ops refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models import TINY_SPEC, tiny
from tflite_int8 import InputError, Recipe, UnsupportedOpError, convert
from tflite_int8.runtime.describe import describe
from tflite_int8.runtime.interpreter import load_interpreter


def _weight_scales(path):
    interp = load_interpreter(path, op_resolver="no-delegates", trusted=True)
    counts = []
    for t in interp.get_tensor_details():
        scales = t["quantization_parameters"]["scales"]
        if t["dtype"] == np.int8 and len(t["shape"]) == 4 and t["shape"][0] == 8 and len(scales) > 0:
            counts.append(len(scales))
    return counts


def test_per_channel_by_default_and_per_tensor_on_request(tiny_conversion, tmp_path, photos):
    assert max(_weight_scales(tiny_conversion.int8_path)) == 8  # one scale per output channel
    per_tensor = convert(tiny(), tmp_path / "pt", spec=TINY_SPEC, data=photos, num_samples=8,
                         recipe=Recipe(per_channel=False))
    assert set(_weight_scales(per_tensor.int8_path)) == {1}
    assert per_tensor.report["recipe"]["per_channel"] is False


def test_variants_are_what_their_names_say(tmp_path, photos):
    res = convert(tiny(), tmp_path / "v", spec=TINY_SPEC, data=photos, num_samples=8,
                  recipe=Recipe(variants=("float16", "dynamic-range", "int16x8")))
    verdicts = {k: describe(p)["verdict"] for k, p in res.files.items()}
    assert verdicts == {"full-integer": "full-integer", "float16": "float16", "dynamic-range": "dynamic-range",
                        "int16x8": "integer with float I/O"}
    assert res.files["int16x8"].name == "model_int16x8.tflite"
    ins = describe(res.files["int16x8"])
    assert {"int16"} <= {t["dtype"] for t in ins["inputs"] + ins["outputs"]} | _activation_types(res.files["int16x8"])


def _activation_types(path):
    interp = load_interpreter(path, op_resolver="no-delegates", trusted=True)
    return {np.dtype(t["dtype"]).name for t in interp.get_tensor_details()}


def test_op_without_int8_kernel_is_refused_by_name(tmp_path, photos):
    class WithSin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            return torch.sin(self.conv(x)).mean(dim=(2, 3))

    with pytest.raises(UnsupportedOpError, match=r"not full-integer.*SIN") as info:
        convert(WithSin().eval(), tmp_path / "sin", spec=TINY_SPEC, data=photos, num_samples=4)
    assert info.value.ops == ["SIN"] and info.value.stage == "quantize"
    assert not (tmp_path / "sin").exists()


def test_recipe_validation():
    with pytest.raises(InputError, match="int8 or uint8"):
        Recipe(io_dtype="int16")
    with pytest.raises(InputError, match="unknown variant.*fp8"):
        Recipe(variants=("fp8",))
