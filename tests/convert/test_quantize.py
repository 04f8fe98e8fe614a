"""Quantize: full-integer by default, per-channel weights, variants named for what they are, float ops refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models import TINY_SPEC, tiny
from tflite_int8 import InputError, PreprocessSpec, Recipe, UnsupportedOpError, convert
from tflite_int8.convert.quantize import quantize
from tflite_int8.data.readers import default_data_dir, open_reader
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


def test_a_calibrator_crash_is_a_typed_error_naming_the_op_and_leaves_nothing(tmp_path, monkeypatch):
    # A recurrence left as a WHILE loop (what onnx2tf makes of an LSTM it does not unroll) segfaults TF's int8
    # calibrator. It runs in a child process: the crash is a CrashError naming the stage, the step and the op.
    import tempfile

    from tests.child_jobs import WhileLoopSavedModel
    from tflite_int8.errors import CrashError
    from tflite_int8.runtime import child

    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", None)
    (tmp_path / "tmp").mkdir()
    spec = PreprocessSpec(size=(8, 8), resize="stretch", channels="L", mean=(0.5,), std=(0.25,))
    out = tmp_path / "out"
    out.mkdir()
    reader = open_reader(default_data_dir(), spec, num_samples=4, warn_few=False)
    with child.Worker() as worker, pytest.raises(CrashError) as info:  # one child: one TensorFlow import
        saved = worker.call(WhileLoopSavedModel(str(tmp_path / "loop")), what="making the test model", stage="test")
        quantize(saved, out, reader, spec, float32_tflite=f"{saved}/float32.tflite", worker=worker)
    err = info.value
    assert str(err).startswith("[quantize] the TF converter crashed (SIGSEGV) while calibrating; the float model "
                               "holds WHILE")
    assert err.ops == ["WHILE"] and err.exit_code == 2
    assert list(out.iterdir()) == [] and list((tmp_path / "tmp").iterdir()) == []
