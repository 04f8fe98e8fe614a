"""Shared fixtures: a network guard for the whole suite, tiny models, and conversions made once."""
from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from tests.models import TINY_SPEC, tiny
from tflite_int8 import Recipe, convert
from tflite_int8.data.readers import default_data_dir

_REAL_CONNECT = socket.socket.connect
_REAL_CONNECT_EX = socket.socket.connect_ex


class NetworkUsed(RuntimeError):
    pass


def _guarded_connect(self, address):  # type: ignore[no-untyped-def]
    if self.family in (socket.AF_INET, socket.AF_INET6):
        raise NetworkUsed(f"test tried to open a network connection to {address}")
    return _REAL_CONNECT(self, address)


def _guarded_connect_ex(self, address):  # type: ignore[no-untyped-def]
    if self.family in (socket.AF_INET, socket.AF_INET6):
        raise NetworkUsed(f"test tried to open a network connection to {address}")
    return _REAL_CONNECT_EX(self, address)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--arm64", action="store_true",
                     help="also run the ARM64 check (root, debootstrap, qemu-user-static; ~10 min the first time)")
    parser.addoption("--heavy", action="store_true",
                     help="also run the benchmark-sized real-model tests (MobileNetV2 quantized by ONNX Runtime; "
                          "~5-10 min on 2 cores)")


OPT_IN = {"arm64": "opt-in: pytest --arm64 (needs root, debootstrap, qemu-user-static)",
          "heavy": "opt-in: pytest --heavy (benchmark-sized; the suite stays within its time budget without it)"}


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    # The real-model (slow) tests first: xdist hands out whole files in this order (--dist loadfile with
    # --no-loadscope-reorder; by default it orders files by their number of tests), so the longest start at once,
    # beside the short ones, instead of forming the suite's tail.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    for marker, reason in OPT_IN.items():
        if config.getoption(f"--{marker}"):
            continue
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


def pytest_configure(config: pytest.Config) -> None:
    # Active for the whole suite: any TCP/UDP connect fails the test that made it.
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def photos() -> Path:
    return default_data_dir()


@pytest.fixture(scope="session")
def tiny_spec():
    return TINY_SPEC


@pytest.fixture(scope="session")
def tiny_conversion(tmp_path_factory: pytest.TempPathFactory, photos: Path):
    """The tiny model converted once: int8 I/O plus float32 and integer-with-float-I/O variants."""
    out = tmp_path_factory.mktemp("conv") / "tiny"
    return convert(tiny(), out, spec=TINY_SPEC, data=photos, views=2,
                   recipe=Recipe(variants=("float32", "int8-float-io")))


@pytest.fixture(scope="session")
def tiny_conversion_uint8(tmp_path_factory: pytest.TempPathFactory, photos: Path):
    out = tmp_path_factory.mktemp("conv") / "tiny_uint8"
    return convert(tiny(), out, spec=TINY_SPEC, data=photos, views=2,
                   recipe=Recipe(io_dtype="uint8", variants=("int8-float-io",)))


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_conversion, photos: Path) -> Path:
    """An Android bundle of the tiny conversion: 4 photos, the host's outputs."""
    from tflite_int8.device import android

    out = tmp_path_factory.mktemp("bundle") / "tiny"
    android.bundle(tiny_conversion.out_dir, out, data=photos, num_samples=4, runs=5)
    return out


@pytest.fixture(scope="session")
def det_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 generated detection images (shapes on photos, 256 px) with a COCO annotation file."""
    from tflite_int8.zoo.shapes_data import write_coco

    out = tmp_path_factory.mktemp("det_data")
    write_coco(out, "val", 12)
    return out


@pytest.fixture(scope="session")
def tiny_det_fix(tmp_path_factory: pytest.TempPathFactory, det_data: Path):
    from tests.models import tiny_detector

    return convert(tiny_detector(), tmp_path_factory.mktemp("det") / "fix", spec=TINY_SPEC,
                   data=det_data / "images", task="detect")


@pytest.fixture(scope="session")
def tiny_det_naive(tmp_path_factory: pytest.TempPathFactory, det_data: Path):
    from tests.models import tiny_detector

    return convert(tiny_detector(), tmp_path_factory.mktemp("det") / "naive", spec=TINY_SPEC,
                   data=det_data / "images", task="detect", head_fix=False)


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray instance for the whole session (2 CPUs, no dashboard, bound to 127.0.0.1), as `--ray` starts
    one; commands given `--ray` use it (a connected process keeps its connection). Shut down at the end."""
    import shutil

    from tflite_int8.cluster import start

    temp = start("local", num_cpus=2)
    import ray

    yield ray
    ray.shutdown()
    shutil.rmtree(str(temp), ignore_errors=True)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# -- inputs of any number and rank: conversions shared by the convert, runtime and verify tests ------------

def _arrays(folder: Path, name: str, seed: int, **shapes: tuple[int, ...]) -> Path:
    """Random float inputs (one array per input name) in ``folder/name`` (.npz, or .npy for one unnamed array)."""
    rng = np.random.default_rng(seed)
    arrays = {k: rng.standard_normal(v).astype(np.float32) for k, v in shapes.items()}
    path = folder / name
    if path.suffix == ".npy":
        np.save(path, next(iter(arrays.values())))
    else:
        np.savez(path, **arrays)
    return path


@pytest.fixture(scope="session")
def kinds_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Calibration (seed 0) and held-out verification (seed 1) arrays for the input-kind models."""
    d = tmp_path_factory.mktemp("kinds_data")
    for split, seed in (("calib", 0), ("verify", 1)):
        _arrays(d, f"two_{split}.npz", seed, image=(24, 3, 32, 32), feats=(24, 16))
        _arrays(d, f"audio_{split}.npy", seed, wave=(24, 1, 4000))
        _arrays(d, f"tabular_{split}.npy", seed, features=(32, 32))
        _arrays(d, f"sequence_{split}.npy", seed, frames=(24, 50, 40))
        _arrays(d, f"feats_{split}.npy", seed, feats=(24, 16))
    return d


@pytest.fixture(scope="session")
def two_input_conversion(tmp_path_factory: pytest.TempPathFactory, kinds_data: Path):
    """tests.models:two_inputs (image + feature vector), calibrated from one .npz."""
    from tests.models import two_inputs

    return convert(two_inputs(), tmp_path_factory.mktemp("kinds") / "two", data=kinds_data / "two_calib.npz")


@pytest.fixture(scope="session")
def face_conversion(tmp_path_factory: pytest.TempPathFactory, photos: Path):
    """tests.models:face_boxes: outputs named box, landmarks, prob (a dict), 24x24 crops of the photos."""
    from tflite_int8 import PreprocessSpec

    return convert("tests.models:face_boxes", tmp_path_factory.mktemp("kinds") / "face",
                   spec=PreprocessSpec(size=(24, 24), resize="stretch"), data=photos)


@pytest.fixture(scope="session")
def dynamic_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests.models:two_outputs as an ONNX file with symbolic batch, height and width (input 'images',
    outputs 'features' [N, 4, H, W] and 'logits' [N, 3])."""
    import torch

    from tests.models import two_outputs

    path = tmp_path_factory.mktemp("kinds") / "dynamic.onnx"
    torch.onnx.export(two_outputs(), (torch.zeros(1, 3, 32, 32),), str(path), input_names=["images"],
                      output_names=["features", "logits"], opset_version=17, dynamo=False,
                      dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "features": {0: "batch", 2: "h",
                                    3: "w"}, "logits": {0: "batch"}})
    return path


@pytest.fixture(scope="session")
def qat_model():
    """tests.models.qat_tiny: trained here, then fine-tuned with torch.ao QAT (fake-quant modules attached)."""
    from tests.models import qat_tiny

    return qat_tiny()


@pytest.fixture(scope="session")
def quadrant_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generated inputs of the QAT model's task (preprocessed, NCHW) as .npy: calibration/checks and verification."""
    import torch

    from tests.models import quadrant_batch

    gen = torch.Generator().manual_seed(42)
    folder = tmp_path_factory.mktemp("quadrants")
    out = {}
    for name, n in (("calib", 48), ("verify", 96)):
        out[name] = folder / f"{name}.npy"
        np.save(out[name], quadrant_batch(n, gen)[0].numpy().astype(np.float32))
    return out


@pytest.fixture(scope="session")
def tflite_qat_model():
    """tests.models.tflite_qat_tiny: trained here, fine-tuned with tflite_int8's TFLite-matched FX QAT setup."""
    from tests.models import tflite_qat_tiny

    return tflite_qat_tiny()


@pytest.fixture(scope="session")
def tflite_qat_conversion(tmp_path_factory: pytest.TempPathFactory, tflite_qat_model, quadrant_data):
    """The TFLite-matched QAT model converted once with its own scales."""
    out = tmp_path_factory.mktemp("conv") / "tflite_qat"
    return convert(tflite_qat_model, out, spec=TINY_SPEC, data=quadrant_data["calib"])


@pytest.fixture(scope="session")
def qat_conversion(tmp_path_factory: pytest.TempPathFactory, qat_model, quadrant_data):
    """The QAT model converted once with its own scales."""
    out = tmp_path_factory.mktemp("conv") / "qat"
    return convert(qat_model, out, spec=TINY_SPEC, data=quadrant_data["calib"])
