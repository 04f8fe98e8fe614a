"""The bad-input matrix: every case gets a typed error, the right exit code, and leaves no files behind.

Each row runs twice: through the Python API (the error class) and through the CLI (exit code and
message); afterwards the output folder does not exist and no partial folder is left in its parent.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from PIL import Image

from tflite_int8 import (AlreadyQuantizedError, ConversionError, InputError, PreprocessSpec, UnsupportedOpError,
                         convert, verify)
from tflite_int8.cli import main
from tflite_int8.runtime.describe import describe

TINY = ["--size", "32", "--resize", "stretch"]


@dataclass
class Case:
    name: str
    error: type
    code: int
    message: str
    setup: Callable[[Path, Any], tuple[list[str], Callable[[], Any]]]


def _onnx_bytes(tmp: Path, data: bytes) -> Path:
    p = tmp / "model.onnx"
    p.write_bytes(data)
    return p


def _onnx_graph(tmp: Path, nodes: list, inputs: list, outputs: list, name: str = "model.onnx") -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    p = tmp / name
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), p)
    return p


def _vi(name: str, shape: list) -> Any:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _convert(model: Any, tmp: Path, ctx: Any, **kw: Any) -> tuple[list[str], Callable[[], Any]]:
    data = kw.pop("data", ctx.photos)
    spec = kw.pop("spec", PreprocessSpec(size=(32, 32), resize="stretch"))
    extra = kw.pop("argv", TINY)
    argv = ["convert", str(model), "-o", str(tmp / "out"), "--data", str(data), *extra]
    return argv, lambda: convert(model, tmp / "out", spec=spec, data=data, **kw)


def _folder(tmp: Path, files: dict[str, bytes | Image.Image]) -> Path:
    d = tmp / "data"
    d.mkdir(exist_ok=True)
    for name, content in files.items():
        if isinstance(content, Image.Image):
            content.save(d / name)
        else:
            (d / name).write_bytes(content)
    return d


def _npy(tmp: Path, arr: np.ndarray) -> Path:
    p = tmp / "calib.npy"
    np.save(p, arr)
    return p


def _verify_tflite(tmp: Path, ctx: Any, data: bytes | None = None, path: Path | None = None) -> tuple:
    if path is None:
        path = tmp / "model.tflite"
        path.write_bytes(data or b"")
    ref = ctx.tiny_conversion.out_dir / "model.onnx"
    argv = ["verify", "--reference", str(ref), "--tflite", str(path), *TINY, "--report-dir", str(tmp / "out")]
    return argv, lambda: verify(tflite=path, reference=ref, spec=PreprocessSpec(size=(32, 32), resize="stretch"),
                                report_dir=tmp / "out")


def _two_inputs(tmp: Path, ctx: Any) -> tuple:
    p = _onnx_graph(tmp, [helper.make_node("Add", ["a", "b"], ["y"])], [_vi("a", [1, 3, 32, 32]),
                    _vi("b", [1, 3, 32, 32])], [_vi("y", [1, 3, 32, 32])])
    return _convert(p, tmp, ctx)


def _one_d(tmp: Path, ctx: Any) -> tuple:
    p = _onnx_graph(tmp, [helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [1, 16])], [_vi("y", [1, 16])])
    return _convert(p, tmp, ctx)


def _dynamic(tmp: Path, ctx: Any) -> tuple:
    """A dynamic dimension neither --size nor the data can fix (the channels): refused, naming --input-shape."""
    p = _onnx_graph(tmp, [helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [1, "c", 32, 32])],
                    [_vi("y", [1, "c", 32, 32])])
    return _convert(p, tmp, ctx)


def _two_inputs_pt(tmp: Path, ctx: Any, **kw: Any) -> tuple:
    """tests.models:two_inputs (image, feats) with the given data/shapes; fails before any conversion work."""
    data = kw.pop("data")
    shapes = kw.pop("input_shapes", None)
    argv = ["convert", "tests.models:two_inputs", "-o", str(tmp / "out"), *TINY]
    argv += [a for d in (data if isinstance(data, list) else [data]) for a in ("--data", str(d))]
    argv += [a for n, dims in (shapes or {}).items() for a in ("--input-shape", f"{n}:{','.join(map(str, dims))}")]
    api_data = data if not isinstance(data, list) else {"": [str(d) for d in data]}
    return argv, lambda: convert("tests.models:two_inputs", tmp / "out", spec=PreprocessSpec(size=(32, 32)),
                                 data=api_data, input_shapes=shapes)


def _npz(tmp: Path, **arrays: np.ndarray) -> Path:
    np.savez(tmp / "data.npz", **arrays)
    return tmp / "data.npz"


FEATS = np.zeros((4, 16), np.float32)
IMAGES = np.zeros((4, 3, 32, 32), np.float32)


def _with_shape(made: tuple, name: str, dims: tuple, tmp: Path) -> tuple:
    argv, _ = made
    model = Path(argv[1])
    return ([*argv, "--input-shape", f"{name}:{','.join(map(str, dims))}"],
            lambda: convert(model, tmp / "out", spec=PreprocessSpec(size=(32, 32)), input_shapes={name: dims}))


def _fails_in_ort(tmp: Path, name: str = "model.onnx", input_name: str = "x") -> Path:
    """Valid ONNX whose graph ONNX Runtime fails on at run time, on data of the declared shape (a Reshape of
    3*32*32 values to 5x7, after a 1x1 max-pool that says the input is channels-first)."""
    shape = onnx.numpy_helper.from_array(np.array([5, 7], np.int64), "s")
    nodes = [helper.make_node("MaxPool", [input_name], ["p"], kernel_shape=[1, 1]),  # channels-first: NCHW
             helper.make_node("Reshape", ["p", "s"], ["y"])]
    graph = helper.make_graph(nodes, "g",
                              [_vi(input_name, [1, 3, 32, 32])], [_vi("y", [5, 7])], [shape])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), tmp / name)
    return tmp / name


def _lppool(tmp: Path, ctx: Any) -> tuple:
    p = _onnx_graph(tmp, [helper.make_node("LpPool", ["x"], ["y"], kernel_shape=[2, 2], p=2)],
                    [_vi("x", [1, 3, 32, 32])], [_vi("y", [1, 3, 31, 31])])
    return _convert(p, tmp, ctx)


def _pickle_ckpt(tmp: Path, ctx: Any) -> tuple:
    from tests.models import tiny

    torch.save(tiny(), tmp / "whole_model.pt")  # a pickled module: code runs when it is loaded
    argv, _ = _convert("tests.models:tiny", tmp, ctx, argv=[*TINY, "--weights", str(tmp / "whole_model.pt")])
    return argv, lambda: convert("tests.models:tiny", tmp / "out", data=ctx.photos, weights=tmp / "whole_model.pt")


def _other_arch(tmp: Path, ctx: Any) -> tuple:
    from tests.models import two_outputs

    torch.save(two_outputs().state_dict(), tmp / "other.pt")
    argv, _ = _convert("tests.models:tiny", tmp, ctx, argv=[*TINY, "--weights", str(tmp / "other.pt")])
    return argv, lambda: convert("tests.models:tiny", tmp / "out", data=ctx.photos, weights=tmp / "other.pt")


def _spec_file(tmp: Path, ctx: Any) -> tuple:
    (tmp / "spec.toml").write_text('size = [32, 32]\ncolour = "RGB"\n')
    from tflite_int8 import load_spec

    argv = ["convert", "tests.models:tiny", "-o", str(tmp / "out"), "--spec", str(tmp / "spec.toml")]
    return argv, lambda: load_spec(tmp / "spec.toml")


def _exists(tmp: Path, ctx: Any) -> tuple:
    (tmp / "out").mkdir()
    (tmp / "out" / "mine.txt").write_text("keep")
    return _convert("tests.models:tiny", tmp, ctx)


def _not_writable(tmp: Path, ctx: Any) -> tuple:
    out = Path("/proc/sys/tflite-int8-out")  # /proc/sys cannot be written, even by root
    argv = ["convert", "tests.models:tiny", "-o", str(out), "--data", str(ctx.photos)]
    return argv, lambda: convert("tests.models:tiny", out, data=ctx.photos)


def _qdq_recalibrated(tmp: Path, ctx: Any) -> tuple:
    from tests.models import qdq_onnx
    from tflite_int8 import Recipe

    path = qdq_onnx(tmp / "qdq.onnx")
    return _convert(path, tmp, ctx, argv=[*TINY, "--ranges", "mse"], recipe=Recipe(ranges="mse"))


def _integer_ops(tmp: Path, ctx: Any) -> tuple:
    from onnxruntime.quantization import QuantFormat, quantize_static
    from onnxruntime.quantization.calibrate import CalibrationDataReader

    source = ctx.tiny_conversion.out_dir / "model.onnx"
    name = onnx.load(source).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = [{name: np.zeros((1, 3, 32, 32), np.float32)}]

        def get_next(self):  # type: ignore[no-untyped-def]
            return self.left.pop() if self.left else None

    path = tmp / "qoperator.onnx"  # QLinearConv/QLinearMatMul: an integer model, not fake-quant
    quantize_static(str(source), str(path), Reader(),
                    quant_format=QuantFormat.QOperator)
    return _convert(path, tmp, ctx)


def _tflite_as_model(tmp: Path, ctx: Any) -> tuple:
    return _convert(ctx.tiny_conversion.int8_path, tmp, ctx)


CASES = [
    Case("empty ONNX file", InputError, 2, "is empty", lambda t, c: _convert(_onnx_bytes(t, b""), t, c)),
    Case("truncated ONNX", InputError, 2, "model.onnx", lambda t, c: _convert(_onnx_bytes(
        t, (c.tiny_conversion.out_dir / "model.onnx").read_bytes()[:300]), t, c)),
    Case("garbage ONNX", InputError, 2, "not a valid ONNX", lambda t, c: _convert(_onnx_bytes(t, b"\x00junk" * 50),
                                                                                  t, c)),
    Case("ONNX op onnx2tf cannot translate (LpPool)", UnsupportedOpError, 2, "LpPool", _lppool),
    Case("ONNX that ONNX Runtime fails to run", ConversionError, 2, "model.onnx on x float32 "
         "(1, 3, 32, 32) (it declares x tensor(float) (1, 3, 32, 32)): Non-zero status code returned while running "
         "Reshape node", lambda t, c: _convert(_fails_in_ort(t), t, c)),
    Case("ONNX with a dynamic dim --size cannot fix", InputError, 2, "give it with --input-shape x:1,<c>,32,32",
         _dynamic),
    Case("model with 2 image inputs, one folder", InputError, 2, "2 inputs", _two_inputs),
    Case("non-image (1-D) input fed photos", InputError, 2,
         "is not an image input: give its data as a .npy (N, 1, 16) or (N, 16)", _one_d),
    Case("--input-shape names no input", InputError, 2, "--input-shape names 'feat', which",
         lambda t, c: _two_inputs_pt(t, c, data=_npz(t, image=IMAGES, feats=FEATS), input_shapes={"feat": (1, 16)})),
    Case(".npz missing an input", InputError, 2, "no data for input(s) feats",
         lambda t, c: _two_inputs_pt(t, c, data=_npz(t, image=IMAGES, features=FEATS))),
    Case("two-input model given one .npy", InputError, 2, "a .npy holds the data of one input",
         lambda t, c: _two_inputs_pt(t, c, data=_npy(t, FEATS))),
    Case("input of the wrong rank in the .npz", InputError, 2, "data.npz['feats']: the array is (4, 16, 1); the "
         "model input 'feats' is [1, 16], so its array must be (N, 1, 16) or (N, 16)", lambda t, c: _two_inputs_pt(
             t, c, data=_npz(t, image=IMAGES, feats=FEATS[..., None]), input_shapes={"feats": (1, 16)})),
    Case("--input-shape of the wrong rank for an ONNX input", InputError, 2, "has rank 4 [1, c, 32, 32]; "
         "--input-shape gives 3 dims", lambda t, c: _with_shape(_dynamic(t, c), "x", (1, 3, 32), t)),
    Case("a .tflite given as the model to convert", AlreadyQuantizedError, 2, "already a TFLite model",
         _tflite_as_model),
    Case("QDQ (quantization-aware) ONNX with a re-calibration request (--ranges mse)", AlreadyQuantizedError, 2,
         "--ranges mse re-calibrates the activation ranges", _qdq_recalibrated),
    Case("integer-op ONNX (QLinearConv, ONNX Runtime QOperator)", AlreadyQuantizedError, 2,
         "is already quantized: it holds", _integer_ops),
    Case("empty .tflite to verify", InputError, 2, "is empty", lambda t, c: _verify_tflite(t, c, b"")),
    Case("truncated .tflite to verify", InputError, 2, "cannot be loaded", lambda t, c: _verify_tflite(
        t, c, c.tiny_conversion.int8_path.read_bytes()[:2000])),
    Case("not a flatbuffer (.zip) as .tflite", InputError, 2, "not a TFLite flatbuffer",
         lambda t, c: _verify_tflite(t, c, b"PK\x03\x04" + b"\x00" * 64)),
    Case("float-only .tflite where int8 is expected", InputError, 2, "is float32, not an int8 model",
         lambda t, c: _verify_tflite(t, c, path=c.tiny_conversion.files["float32"])),
    Case("empty calibration folder", InputError, 2, "no usable images",
         lambda t, c: _convert("tests.models:tiny", t, c, data=_folder(t, {}))),
    Case("calibration folder of non-images only", InputError, 2, "2 files skipped",
         lambda t, c: _convert("tests.models:tiny", t, c, data=_folder(t, {"a.txt": b"hi", "b.jpg": b"\xff\xd8no"}))),
    Case("calibration path does not exist", InputError, 2, "does not exist",
         lambda t, c: _convert("tests.models:tiny", t, c, data=t / "nowhere")),
    Case(".npy of wrong shape", InputError, 2, "the array is (4, 3, 16, 16); the model input is [1, 3, 32, 32]",
         lambda t, c: _convert("tests.models:tiny", t, c, data=_npy(t, np.zeros((4, 3, 16, 16), np.float32)))),
    # a PyTorch input's dtype is its data's: int64 arrays for a conv net fail its export, naming the dtype
    Case(".npy of wrong dtype", ConversionError, 2, "does not run on input(s) x int64 [1, 3, 32, 32]", lambda t, c: _convert(
        "tests.models:tiny", t, c, data=_npy(t, np.zeros((4, 3, 32, 32), np.int64)))),
    Case(".npy with NaN/Inf", InputError, 2, "contain NaN or Inf", lambda t, c: _convert(
        "tests.models:tiny", t, c, data=_npy(t, np.full((4, 3, 32, 32), np.nan, np.float32)))),
    Case("corrupt .npy", InputError, 2, "cannot read", lambda t, c: _convert(
        "tests.models:tiny", t, c, data=_onnx_bytes(t, b"\x93NUMPY garbage").rename(t / "x.npy"))),
    Case("checkpoint that is a pickle with code", InputError, 2, "--trust-checkpoint", _pickle_ckpt),
    Case("checkpoint for another architecture", InputError, 2, "does not match the model", _other_arch),
    Case("spec file with an unknown key", InputError, 2, "unknown key", _spec_file),
    Case("output folder exists", InputError, 2, "already exists", _exists),
    Case("output folder not writable", InputError, 2, "permission denied", _not_writable),
    Case("factory that cannot be imported", InputError, 2, "cannot import",
         lambda t, c: _convert("no_such_pkg.models:net", t, c)),
    Case("factory that is not a module", InputError, 2, "nn.Module", lambda t, c: _convert(
        "tests.models:not_a_module", t, c)),
]


@pytest.fixture
def ctx(tiny_conversion, photos):
    class Ctx:
        pass

    c = Ctx()
    c.tiny_conversion, c.photos = tiny_conversion, photos
    return c


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_matrix(case, tmp_path, ctx, capsys):
    argv, call = case.setup(tmp_path, ctx)
    with pytest.raises(case.error):
        call()
    out_existed = (tmp_path / "out").exists()
    assert main(argv) == case.code
    err = capsys.readouterr().err
    assert case.message in err, err
    assert "Traceback" not in err
    if not out_existed:
        assert not (tmp_path / "out").exists()
    else:
        assert (tmp_path / "out" / "mine.txt").read_text() == "keep"
    assert _leftovers(tmp_path) == []


def test_matrix_has_enough_rows():
    assert len(CASES) + len(ACCEPTED) >= 30


# Inputs that must be *accepted* (converted, not refused): the image zoo of real folders.
ACCEPTED = {
    "grayscale PNG": Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50), np.uint8)),
    "RGBA PNG": Image.new("RGBA", (40, 30), (10, 200, 30, 128)),
    "palette PNG": Image.new("P", (30, 40), 7),
    "16-bit PNG": Image.fromarray((np.arange(1200).reshape(30, 40) * 50).astype(np.uint16)),
    "CMYK JPEG": Image.new("CMYK", (40, 40), (10, 20, 30, 40)),
    "1x1 image": Image.new("RGB", (1, 1), (255, 0, 0)),
    "8000x8000 JPEG": Image.new("RGB", (8000, 8000), (90, 90, 90)),
}


def test_odd_images_are_accepted_and_broken_ones_counted(tmp_path, capsys):
    names = {f"{k.replace(' ', '_')}.{'jpg' if 'JPEG' in k else 'png'}": v for k, v in ACCEPTED.items()}
    data = _folder(tmp_path, names)
    (data / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (data / "notes.txt").write_text("not an image")
    assert main(["convert", "tests.models:tiny", "-o", str(tmp_path / "out"), "--data", str(data), *TINY]) == 0
    err = capsys.readouterr().err
    assert "2 file(s)" in err and "skipped" in err
    assert describe(tmp_path / "out" / "model_int8.tflite")["verdict"] == "full-integer"


def _run_cli(args: list[str], env_extra: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent), **(env_extra or {}))
    return subprocess.Popen([sys.executable, "-m", "tflite_int8", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_interrupted_conversion_leaves_nothing(tmp_path, photos):
    proc = _run_cli(["convert", "tests.models:tiny", "-o", str(tmp_path / "out"), "--data", str(photos)],
                    cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not any(".partial-" in p.name for p in tmp_path.iterdir()):
        time.sleep(0.05)  # wait until the conversion is under way (its staging folder exists)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted; no partial output was left" in err
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_swallowed_interrupt_still_stops_the_conversion(tmp_path, photos):
    # Ctrl-C lands where a library swallows it (onnxslim's bare except around `import onnxruntime` did this)
    proc = _run_cli(["convert", "tests.models:swallows_interrupt", "-o", str(tmp_path / "out"), "--data",
                     str(photos)], cwd=tmp_path)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err  # not 0 (carried on), not -2 (CPython's flag killing `python -m`)
    assert "interrupted; no partial output was left" in err
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_disk_full_leaves_nothing(tmp_path, photos):
    import resource

    def small_files() -> None:  # files may not grow past 64 kB: writes fail like on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, 64_000))

    proc = _run_cli(["convert", "tests.models:spatial", "-o", str(tmp_path / "out"), "--data", str(photos)],
                    cwd=tmp_path, preexec_fn=small_files)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert "error:" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_conversion_is_byte_deterministic_across_processes(tmp_path, photos):
    """Same model, same calibration set and seed, two separate processes: the very same .tflite bytes."""
    digests = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        proc = _run_cli(["convert", "tests.models:tiny", "-o", str(out), "--data", str(photos), "--views", "2",
                         "--seed", "7"], cwd=tmp_path, env_extra={"PYTHONHASHSEED": str(k + 1)})
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        digests.append(((out / "model_int8.tflite").read_bytes(), (out / "model.onnx").read_bytes()))
    assert digests[0][1] == digests[1][1]
    assert digests[0][0] == digests[1][0]


def test_qdq_onnx_is_accepted_as_qat(tmp_path, photos, capsys):
    """The accepted side of the QAT rows: a QDQ ONNX converts, with its own scales (quantization_source qat)."""
    import json

    from tests.models import qdq_onnx

    path = qdq_onnx(tmp_path / "qdq.onnx")
    assert main(["convert", str(path), "-o", str(tmp_path / "out"), "--data", str(photos), *TINY]) == 0
    assert "quantization: the model's own (QAT" in capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "conversion.json").read_text())
    assert report["quantization_source"] == "qat" and (tmp_path / "out" / "model_float.onnx").is_file()


def _int64_ids(tmp: Path) -> Path:
    """An embedding lookup: its input is int64 ids [1, 10]."""
    table = onnx.numpy_helper.from_array(np.ones((50, 8), np.float32), "emb")
    graph = helper.make_graph([helper.make_node("Gather", ["emb", "ids"], ["y"])], "g",
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 10])],
                              [_vi("y", [1, 10, 8])], [table])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), tmp / "ids.onnx")
    return tmp / "ids.onnx"


def _bad_cli_inputs(tmp: Path, tiny_conversion: Any, photos: Path) -> dict[str, tuple[list[str], str]]:
    """{case: (arguments, what the one line must say)}; each refused with exit code 2."""
    (tmp / "text.onnx").write_text("this is not a model\n")
    np.save(tmp / "small.npy", np.zeros((4, 3, 16, 16), np.float32))
    np.save(tmp / "ids.npy", np.zeros((4, 7), np.int64))
    np.savez(tmp / "image_only.npz", image=IMAGES)
    bad_ref = _fails_in_ort(tmp, "ref.onnx", tiny_conversion.report["inputs"][0]["name"])
    (tmp / "zoo.toml").write_text(f'[models.a]\nmodel = "{tmp / "text.onnx"}"\n')
    with socket.socket() as s:  # a free loopback port: bound, never connected
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = lambda name: ["-o", str(tmp / name)]  # noqa: E731
    return {
        "text file named .onnx": (["convert", str(tmp / "text.onnx"), *out("o1"), "--data", str(photos)],
                                  "text.onnx is not a valid ONNX model"),
        "wrong-shaped .npy": (["convert", "tests.models:tiny", *out("o2"), *TINY, "--data", str(tmp / "small.npy")],
                              "the array is (4, 3, 16, 16)"),
        ".npz missing an input": (["convert", "tests.models:two_inputs", *out("o3"), *TINY, "--data",
                                   str(tmp / "image_only.npz")], "no data for input(s) feats"),
        "int64 input, data of the wrong shape": (["convert", str(_int64_ids(tmp)), *out("o4"), "--data",
                                                  str(tmp / "ids.npy")], "ids.npy"),
        "graph ONNX Runtime fails on": (["convert", str(_fails_in_ort(tmp)), *out("o5"), *TINY, "--data",
                                         str(photos)], "ONNX Runtime cannot run"),
        "verify against a reference ONNX Runtime fails on": (
            ["verify", str(tiny_conversion.out_dir), "--reference", str(bad_ref), "--report-dir", str(tmp / "o6"),
             "--data", str(photos), "--num-samples", "4", "--no-layers"], f"ONNX Runtime cannot run {bad_ref}"),
        "inspect a text file": (["inspect", str(tmp / "text.onnx")], "is not a TFLite flatbuffer"),
        "--ray at an address nothing listens on": (["batch", str(tmp / "zoo.toml"), *out("o7"), "--ray",
                                                    f"127.0.0.1:{port}", "--ray-timeout", "10"],
                                                   f"cannot reach the Ray cluster at 127.0.0.1:{port}"),
    }


def test_bad_inputs_through_the_cli_are_one_line_and_exit_2(tmp_path, tiny_conversion, photos):
    """The real command in its own process: exit code 2, one line on stderr, no traceback (all at once)."""
    cases = _bad_cli_inputs(tmp_path, tiny_conversion, photos)
    procs = {name: _run_cli(argv, cwd=tmp_path) for name, (argv, _) in cases.items()}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        lines = [line for line in err.splitlines() if line.strip() and not line.startswith("warning:")]
        assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in err, (name, err[-3000:])
        assert lines[0].startswith("error: ") and cases[name][1] in lines[0], (name, lines[0])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("o")) == []  # no output folder left
