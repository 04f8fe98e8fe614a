"""pytest plugin (entry point ``pytest11``): int8 parity in users' own test suites.

Passive until used: it adds the ``tflite_runner`` fixture, the ``tflite_model`` marker, the
``--tflite-model`` option and ``tflite_model`` ini setting, and the fixtures ``assert_int8_parity``
and ``assert_full_integer`` (the functions of :mod:`tflite_int8.testing`, importable directly too).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tflite-int8")
    group.addoption("--tflite-model", default=None, help="the .tflite the tflite_runner fixture opens")
    parser.addini("tflite_model", "the .tflite the tflite_runner fixture opens (relative to the rootdir)",
                  default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tflite_model(path, preset=None, spec=None): the .tflite (and its "
                                       "preprocessing preset or spec file) for the tflite_runner fixture")


@pytest.fixture
def tflite_runner(request: pytest.FixtureRequest) -> Any:
    """The adapter's float-in/float-out Runner for the model named by the marker, option or ini setting.

    The preprocessing spec comes from the marker (``preset=``/``spec=``) or from the ``conversion.json``
    beside the file (a tflite-int8 output folder); without either, inputs are NHWC floats.
    """
    from tflite_int8.runtime.adapter import Runner
    from tflite_int8.config.preprocess import load_spec, preset

    marker = request.node.get_closest_marker("tflite_model")
    path = (marker.args[0] if marker and marker.args else None) or request.config.getoption("--tflite-model")
    base = Path.cwd()
    if not path:
        path = request.config.getini("tflite_model")
        base = request.config.rootpath
    if not path:
        pytest.fail("tflite_runner needs a model: @pytest.mark.tflite_model('model.tflite'), --tflite-model PATH "
                    "or 'tflite_model = PATH' in the pytest ini file", pytrace=False)
    path = Path(path) if Path(path).is_absolute() else base / path
    kwargs = marker.kwargs if marker else {}
    spec = None
    if kwargs.get("preset"):
        spec = preset(kwargs["preset"])
    elif kwargs.get("spec"):
        spec = load_spec(kwargs["spec"])
    elif (path.parent / "conversion.json").is_file():
        from tflite_int8.convert.record import load_conversion

        spec = load_conversion(path.parent)[1]
    return Runner(path, spec)


@pytest.fixture
def assert_int8_parity() -> Any:
    from tflite_int8.testing import assert_int8_parity as check

    return check


@pytest.fixture
def assert_full_integer() -> Any:
    from tflite_int8.testing import assert_full_integer as check

    return check
