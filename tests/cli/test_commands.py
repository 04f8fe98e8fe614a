"""The CLI: a thin layer; exit codes 0 / 1 / 2; no traceback unless --debug."""
from __future__ import annotations

import json

import pytest

from tflite_int8.cli import main


def test_convert_a_factory_with_flags(tmp_path, photos, capsys):
    out = tmp_path / "out"
    code = main(["convert", "tests.models:tiny", "-o", str(out), "--data", str(photos), "--num-samples", "6",
                 "--io-dtype", "uint8", "--size", "32", "--resize", "stretch", "--mean", "0.5", "--std", "0.5"])
    assert code == 0
    printed = capsys.readouterr()
    assert "model_int8_uint8io.tflite" in printed.out and "full-integer" in printed.out
    assert "warning: only 6 calibration samples" in printed.err
    report = json.loads((out / "conversion.json").read_text())
    assert report["preprocess"]["mean"] == [0.5, 0.5, 0.5] and report["preprocess"]["size"] == [32, 32]


def test_factory_preset_is_used_and_said(tmp_path, photos, capsys):
    assert main(["convert", "tests.models:tiny", "-o", str(tmp_path / "o"), "--data", str(photos),
                 "--num-samples", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["preprocess"]["size"] == [32, 32]
    assert any("preprocess_spec" in a for a in report["adjustments"])


@pytest.mark.parametrize("argv, message", [
    (["convert", "tests.models:tiny", "-o", "{tmp}/x", "--mean", "0.1,0.2"], "'mean' needs 1 or 3 values"),
    (["convert", "no_such_module:m", "-o", "{tmp}/x"], "cannot import 'no_such_module'"),
    (["convert", "{tmp}/missing.onnx", "-o", "{tmp}/x"], "missing.onnx does not exist"),
    (["convert", "tests.models:tiny", "-o", "{tmp}/x", "--data", "{tmp}/nowhere"], "nowhere does not exist"),
    (["convert", "tests.models:tiny", "-o", "{tmp}/x", "--preset", "resnet"], "unknown preprocessing preset"),
    (["convert", "tests.models:tiny", "-o", "{tmp}/x", "--variants", "fp8"], "unknown variant"),
    (["inspect", "{tmp}/missing.tflite"], "does not exist"),
])
def test_user_errors_exit_2_with_a_message(tmp_path, capsys, argv, message):
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_existing_output_exits_2(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    assert main(["convert", "tests.models:tiny", "-o", str(tmp_path / "x")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_failed_parity_exits_1(tmp_path, capsys):
    # Not reachable from flags; the exit code comes from the error class.
    from tflite_int8 import ParityError

    assert ParityError("x").exit_code == 1


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["convert"])
    assert info.value.code == 2


def test_inspect(tiny_conversion, capsys):
    assert main(["inspect", str(tiny_conversion.int8_path)]) == 0
    assert "full-integer" in capsys.readouterr().out
    assert main(["inspect", str(tiny_conversion.int8_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "full-integer"
