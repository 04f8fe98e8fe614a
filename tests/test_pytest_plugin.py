"""The pytest plugin, as a user meets it: example test files run by pytester, passing and failing."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestAssertRewriteWarning")


def _run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_model_int8=source)
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_user_file_that_passes(pytester, tiny_conversion):
    conv = tiny_conversion.out_dir
    result = _run(pytester, f"""
import numpy as np
import pytest
from tests.models import tiny

INT8 = r"{tiny_conversion.int8_path}"

def test_parity_with_pytorch(assert_int8_parity):
    x = np.random.default_rng(0).normal(0, 1, (8, 3, 32, 32)).astype(np.float32)
    m = assert_int8_parity(tiny(), INT8, x, top1_agreement=0.75, cosine=0.99)
    assert m["samples"] == 8

def test_parity_with_onnx_and_float_tflite(assert_int8_parity):
    x = np.random.default_rng(1).normal(0, 1, (4, 3, 32, 32)).astype(np.float32)
    assert_int8_parity(r"{conv / 'model.onnx'}", INT8, x, cosine=0.99, max_abs_err=0.5)
    xh = x.transpose(0, 2, 3, 1)  # a .tflite reference takes NHWC
    assert_int8_parity(r"{tiny_conversion.files['float32']}", INT8, xh, cosine=0.99)

def test_full_integer(assert_full_integer):
    assert assert_full_integer(INT8)["verdict"] == "full-integer"

@pytest.mark.tflite_model(INT8)
def test_runner_from_marker(tflite_runner):
    out = tflite_runner(np.zeros((1, 3, 32, 32), np.float32))  # the folder's conversion.json gives NCHW
    assert out["output"].shape == (1, 10) and out["output"].dtype == np.float32
""", "--rootdir", str(pytester.path))
    result.assert_outcomes(passed=4)


def test_user_file_that_fails_says_why(pytester, tiny_conversion):
    result = _run(pytester, f"""
import numpy as np
from tests.models import tiny

def test_too_strict(assert_int8_parity):
    x = np.random.default_rng(0).normal(0, 1, (6, 3, 32, 32)).astype(np.float32)
    assert_int8_parity(tiny(), r"{tiny_conversion.int8_path}", x, cosine=0.9999999, max_abs_err=1e-6)

def test_float_file_is_not_full_integer(assert_full_integer):
    assert_full_integer(r"{tiny_conversion.files['float32']}")
""")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "int8 parity failed for model_int8.tflite on 6 samples" in out
    assert "cosine of output 'output': mean 0.99" in out and "short by" in out and "worst samples: #" in out
    assert "max_abs_err of output 'output'" in out and "> 1e-06" in out
    assert "model_float32.tflite is not full-integer: it is float32" in out and "Float ops: #" in out


def test_runner_from_option_and_ini(pytester, tiny_conversion):
    source = """
import numpy as np

def test_runner(tflite_runner):
    assert tflite_runner.output_names == ["output"]
"""
    _run(pytester, source, f"--tflite-model={tiny_conversion.int8_path}").assert_outcomes(passed=1)
    pytester.makeini(f"[pytest]\ntflite_model = {tiny_conversion.int8_path}\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_runner_without_a_model_fails_clearly(pytester):
    result = _run(pytester, "def test_runner(tflite_runner):\n    pass\n")
    result.assert_outcomes(errors=1)
    assert "tflite_runner needs a model" in result.stdout.str()


def test_plugin_is_passive(pytester):
    result = _run(pytester, "def test_plain():\n    assert 1 + 1 == 2\n")
    result.assert_outcomes(passed=1)
    assert "tflite" not in result.stdout.str().lower().replace("tflite-int8", "")
