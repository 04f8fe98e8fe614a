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
    assert "6 calibration samples, mse activation ranges" in printed.out  # the default, said
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


def test_a_failed_int8_check_exits_1_naming_the_output_and_keeps_the_files(tmp_path, photos, capsys):
    # tests.models:cancelling's output is the difference of two tensors of ~300: right in float, noise in int8
    out = tmp_path / "c"
    assert main(["convert", "tests.models:cancelling", "-o", str(out), "--data", str(photos)]) == 1
    printed = capsys.readouterr()
    assert "FAILED: the conversion's own int8 check" in printed.out
    assert "output 'output': SQNR" in printed.out and "quantization steps" in printed.out
    report = json.loads((out / "conversion.json").read_text())
    assert report["passed"] is False and any("'output'" in f for f in report["failures"])
    assert report["stages"]["int8_check"]["outputs"]["output"]["sqnr_db"] < 5
    assert (out / "model_int8.tflite").is_file() and (out / "model.onnx").is_file()  # kept for inspection
    assert not list(tmp_path.glob(".c.partial-*"))


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["convert"])
    assert info.value.code == 2


def test_inspect(tiny_conversion, capsys):
    assert main(["inspect", str(tiny_conversion.int8_path)]) == 0
    assert "full-integer" in capsys.readouterr().out
    assert main(["inspect", str(tiny_conversion.int8_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "full-integer"


# -- inputs of any number and rank, dynamic shapes, names ---------------------------------------------------------

def test_dynamic_onnx_fixed_with_input_shape(tmp_path, dynamic_onnx, photos, capsys):
    import numpy as np

    from tflite_int8 import Runner
    from tflite_int8.runtime.reference import run_onnx

    out = tmp_path / "dyn"
    base = ["convert", str(dynamic_onnx), "-o", str(out), "--data", str(photos), "--resize", "stretch",
            "--num-samples", "12"]
    assert main(base) == 2
    assert "give it with --input-shape images:1,3,<height>,<width> or --size HxW" in capsys.readouterr().err
    assert main([*base, "--input-shape", "images:1,3,40,48"]) == 0
    report = json.loads((out / "conversion.json").read_text())
    assert sum("(--input-shape)" in a for a in report["adjustments"]) == 3  # batch, height, width: each said
    assert report["preprocess"]["size"] == [40, 48] and report["inputs"][0]["shape"] == [1, 3, 40, 48]
    x = np.random.default_rng(0).standard_normal((1, 3, 40, 48)).astype(np.float32)
    got = Runner(out / "model_int8.tflite", layout="source")(x)  # NCHW in, NCHW out, by the ONNX names
    (ref,) = run_onnx(out / "model.onnx", [x])
    assert got["features"].shape == ref[0].shape == (1, 4, 40, 48) and got["logits"].shape == (1, 3)
    assert np.corrcoef(got["features"].ravel(), ref[0].ravel())[0, 1] > 0.99
    capsys.readouterr()
    assert main(["verify", str(out), "--data", str(photos), "--num-samples", "12", "--no-layers"]) == 0
    assert main(["inspect", str(out / "model_int8.tflite")]) == 0
    shown = capsys.readouterr().out
    assert "input 'images' (image): [1, 3, 40, 48] NCHW -> TFLite [1, 40, 48, 3] NHWC" in shown
    assert "RGB pixels, stretch to 40x48, float = (pixel / 255 - mean) / std" in shown
    assert "output 'features': [1, 40, 48, 4], TFLite [1, 40, 48, 4] -> source [1, 4, 40, 48]" in shown


def test_tabular_npy_needs_no_mean_or_std(tmp_path, kinds_data, capsys):
    out = tmp_path / "tab"
    calib = str(kinds_data / "tabular_calib.npy")
    assert main(["convert", "tests.models:tabular", "-o", str(out), "--data", calib]) == 0
    report = json.loads((out / "conversion.json").read_text())
    assert report["inputs"][0]["kind"] == "tensor" and report["preprocess"] is None
    assert main(["verify", str(out), "--data", str(kinds_data / "tabular_verify.npy"), "--no-layers"]) == 0
    assert main(["inspect", str(out / "model_int8.tflite")]) == 0
    shown = capsys.readouterr().out
    assert "input 'features' (tensor): [1, 32], layout as in the source model" in shown
    assert "float values as the source model takes them (no mean/std)" in shown


def test_two_inputs_from_photos_and_a_npy(tmp_path, photos, kinds_data, capsys):
    out = tmp_path / "two"
    assert main(["convert", "tests.models:two_inputs", "-o", str(out), "--data", str(photos), "--data",
                 f"feats={kinds_data / 'feats_calib.npy'}", "--size", "32", "--resize", "stretch"]) == 0
    report = json.loads((out / "conversion.json").read_text())
    assert [(i["name"], i["kind"]) for i in report["inputs"]] == [("image", "image"), ("feats", "tensor")]
    assert report["calibration"]["samples"] == 24
    assert main(["verify", str(out), "--data", f"image={photos}", "--data", f"feats={kinds_data / 'feats_verify.npy'}",
                 "--no-layers"]) == 0
    assert "overlaps calibration" in capsys.readouterr().err  # the same photos: said, not hidden


@pytest.mark.parametrize("value", ["image", "image:", "image:1,-3", "image:1,3,x"])
def test_input_shape_flag_syntax(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as info:
        main(["convert", "tests.models:two_inputs", "-o", str(tmp_path / "x"), "--input-shape", value])
    assert info.value.code == 2 and "NAME:D1,D2" in capsys.readouterr().err


def test_layout_and_value_flags_are_named_when_needed(tmp_path, capsys):
    """A 4-D input the graph is silent about, a rank-0 input: exit 2 naming --input-layout / --input-value."""
    import numpy as np

    from tests.models import keras_nhwc_onnx, vad_onnx

    keras_nhwc_onnx(tmp_path / "flat.onnx", into="reshape")
    np.save(tmp_path / "x.npy", np.zeros((4, 16, 16, 3), np.float32))
    assert main(["convert", str(tmp_path / "flat.onnx"), "-o", str(tmp_path / "a"), "--data",
                 str(tmp_path / "x.npy")]) == 2
    assert "declare it with --input-layout x:NHWC or x:NCHW" in capsys.readouterr().err
    vad_onnx(tmp_path / "vad.onnx")
    np.savez(tmp_path / "v.npz", x=np.zeros((4, 32), np.float32), state=np.zeros((4, 2, 1, 8), np.float32))
    assert main(["convert", str(tmp_path / "vad.onnx"), "-o", str(tmp_path / "b"), "--data",
                 str(tmp_path / "v.npz")]) == 2
    assert "fix it with --input-value sr=VALUE" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "vad.onnx"), "-o", str(tmp_path / "c"), "--data", str(tmp_path / "v.npz"),
                 "--input-value", "sr=16000", "--input-value", "sr=8000"]) == 2
    assert "--input-value gives input 'sr' twice (16000 and 8000)" in capsys.readouterr().err
    for flag, value, form in [("--input-layout", "x:NWC", "NAME:NHWC or NAME:NCHW"),
                              ("--input-value", "sr", "NAME=NUMBER")]:
        with pytest.raises(SystemExit) as info:
            main(["convert", str(tmp_path / "vad.onnx"), "-o", str(tmp_path / "d"), flag, value])
        assert info.value.code == 2 and form in capsys.readouterr().err
