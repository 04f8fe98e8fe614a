"""The Android harness's host side: bundles, device results, compare, and the Java core's JUnit tests."""
from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tflite_int8.device import android
from tflite_int8.portable import bundle_format as bf
from tflite_int8.runtime.adapter import Runner, quantize
from tflite_int8.cli import main
from tflite_int8.errors import InputError

CORE = Path(__file__).resolve().parents[2] / "android_harness" / "core"


@pytest.fixture(scope="session")
def host_results(tmp_path_factory, tiny_bundle) -> Path:
    """The bundle run by the device runner on this (x86) host, as a device would."""
    path = tmp_path_factory.mktemp("results") / "host_results.json"
    subprocess.run([sys.executable, "-m", "tflite_int8.portable.device_runner", str(tiny_bundle), str(path), "--runs", "3"],
                   check=True, capture_output=True)
    return path


def test_bundle_holds_quantized_inputs_and_the_host_outputs(tiny_bundle, tiny_conversion):
    m = bf.read_manifest(tiny_bundle)
    assert m["format"] == bf.BUNDLE_FORMAT and len(m["samples"]) == 4
    assert m["thresholds"] == {"max_step_diff": 1, "min_cosine": 0.999}
    assert m["model"]["sha256"] == bf.sha256(tiny_conversion.int8_path)
    runner = Runner(tiny_conversion.int8_path)
    (tin,), (tout,) = m["inputs"], m["outputs"]
    info = runner.inputs[0]
    assert (tin["dtype"], tin["scale"], tin["zero_point"]) == (info.dtype, list(info.scales), list(info.zero_points))
    for s in m["samples"]:
        x = bf.read_tensor(tiny_bundle / s["inputs"][0]["float_file"], tin, as_float=True)
        q = bf.read_tensor(tiny_bundle / s["inputs"][0]["file"], tin)
        assert np.array_equal(q, quantize(x, info))  # the adapter's own rule, byte for byte
        (raw,) = runner.invoke([q])
        assert np.array_equal(bf.read_tensor(tiny_bundle / s["expected"][0]["file"], tout), raw)
    (spread,) = m["host_kernel_spread"]
    assert spread["name"] == tout["name"] and spread["xnnpack_vs_builtin_max_step_diff"] >= 0


def test_bundle_refuses_an_existing_folder_and_unknown_thresholds(tiny_bundle, tiny_conversion, tmp_path):
    with pytest.raises(InputError, match="already exists"):
        android.bundle(tiny_conversion.out_dir, tiny_bundle)
    with pytest.raises(InputError, match="unknown bundle threshold"):
        android.bundle(tiny_conversion.out_dir, tmp_path / "b", thresholds={"max_steps": 3})
    with pytest.raises(InputError, match="neither a conversion output folder nor a .tflite"):
        android.bundle(tmp_path / "nothing", tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_a_changed_bundle_file_is_refused(tiny_bundle, tmp_path):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    raw = copy / "inputs" / "000_0.raw"
    data = bytearray(raw.read_bytes())
    data[0] ^= 1
    raw.write_bytes(bytes(data))
    with pytest.raises(InputError, match="000_0.raw does not match its sha256"):
        android.read_bundle(copy)


def test_device_results_compare_and_pass(host_results, tiny_bundle, capsys):
    doc = json.loads(host_results.read_text())
    assert doc["format"] == bf.RESULTS_FORMAT and doc["passed"] is True
    assert doc["input_quantization"]["mismatches"] == 0 and doc["input_quantization"]["checked"] == 4 * 32 * 32 * 3
    assert {t["xnnpack"] for t in doc["timing"]} == {True, False}
    assert main(["android", "compare", str(host_results), str(tiny_bundle)]) == 0
    out = capsys.readouterr().out
    assert "PASSED" in out and "max step diff" in out


def test_a_device_output_off_by_three_steps_fails(host_results, tiny_bundle, tmp_path, capsys):
    doc = json.loads(host_results.read_text())
    cell = doc["samples"][1]["outputs"][0]
    q = bytearray(base64.b64decode(cell["data_b64"]))
    q[5] = (q[5] + 3) % 256 if q[5] < 120 or q[5] > 127 else q[5] - 3
    cell["data_b64"] = base64.b64encode(bytes(q)).decode()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    report = android.compare(bad, tiny_bundle)
    assert not report["passed"]
    assert any("max difference 3 steps > 1" in f for f in report["failures"])
    assert any("the device reported passed=True" in f for f in report["failures"])
    assert main(["android", "compare", str(bad), str(tiny_bundle), "-o", str(tmp_path / "r.json")]) == 1
    assert json.loads((tmp_path / "r.json").read_text())["passed"] is False


def test_results_of_another_model_are_refused(host_results, tiny_bundle, tmp_path, capsys):
    doc = json.loads(host_results.read_text())
    doc["bundle"]["model_sha256"] = "0" * 64
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc))
    assert main(["android", "compare", str(other), str(tiny_bundle)]) == 2
    assert "another model" in capsys.readouterr().err


def test_run_without_adb_says_what_to_install(tiny_bundle):
    with pytest.raises(InputError, match="not found: install Android platform-tools"):
        android.run(tiny_bundle, adb="no-such-adb-here")


def test_java_core_junit_bit_identical_to_python(tiny_bundle, host_results, tmp_path):
    """The pure-Java core's JUnit tests (golden vectors, this bundle, these results), via Debian's JUnit 5."""
    out = tmp_path / "java"
    out.mkdir()
    proc = subprocess.run(["bash", str(CORE / "run_tests.sh"), f"-Dtflite_int8.bundle={tiny_bundle}",
                           f"-Dtflite_int8.results={host_results}", f"-Dtflite_int8.out={out}"],
                          env={"BUILD_DIR": str(tmp_path / "build"), "PATH": "/usr/bin:/bin:/usr/local/bin"},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    suites = [ET.parse(p).getroot() for p in (tmp_path / "build" / "reports").glob("*.xml")]
    cases = [c for s in suites for c in s.iter("testcase")]
    assert len(cases) == 11, [c.get("name") for c in cases]
    assert not [c for c in cases if c.find("skipped") is not None or c.find("failure") is not None]
    # What Java wrote is the same schema the host reads: its replay passes, its perturbed run fails.
    assert android.compare(out / "java_replay_results.json", tiny_bundle)["passed"]
    perturbed = android.compare(out / "java_perturbed_results.json", tiny_bundle)
    assert not perturbed["passed"] and perturbed["outputs"][0]["max_step_diff"] == 2
    java = json.loads((out / "java_recomputed_results.json").read_text())
    python = json.loads(host_results.read_text())
    for a, b in zip(java["outputs"], python["outputs"]):
        assert (a["max_step_diff"], a["differing_values"], a["values"]) == \
            (b["max_step_diff"], b["differing_values"], b["values"])
        assert a["min_cosine"] == pytest.approx(b["min_cosine"], abs=1e-12)


def test_compare_turns_real_arm64_results_into_a_verdict(tiny_bundle, tmp_path, capsys):
    """tests/golden/arm64_tiny_results.json: aarch64 LiteRT's outputs for this very bundle (make_arm64_results.py)."""
    golden = Path(__file__).parents[1] / "golden" / "arm64_tiny_results.json"
    report = android.compare(golden, tiny_bundle)
    assert report["device"]["arch"] == "aarch64" and report["device"]["runner"] == "python-litert"
    (o,) = report["outputs"]
    assert report["passed"] and o["max_step_diff"] <= 1 and o["min_cosine"] > 0.999
    assert main(["android", "compare", str(golden), str(tiny_bundle)]) == 0
    assert "aarch64" in capsys.readouterr().out


def _device_run(bundle: Path, tmp_path: Path) -> dict:
    """The bundle run by the device runner (LiteRT, XNNPACK) as a phone would, compared here."""
    results = tmp_path / "results.json"
    subprocess.run([sys.executable, "-m", "tflite_int8.portable.device_runner", str(bundle), str(results),
                    "--runs", "2", "--warmup", "1"], check=True, capture_output=True)
    return android.compare(results, bundle)


def test_a_two_input_model_is_bundled_input_by_input(two_input_conversion, kinds_data, tmp_path):
    """image [1, 3, 32, 32] (TFLite NHWC) + feats [1, 16]: each input quantized in the file's own layout."""
    data = kinds_data / "two_verify.npz"
    m = android.bundle(two_input_conversion.out_dir, tmp_path / "b", data=str(data), num_samples=3)
    runner = Runner(two_input_conversion.int8_path)
    ins, _ = runner.interpreter_order()
    assert [t["name"] for t in m["inputs"]] == [i.name for i in ins] and len(ins) == 2
    assert {tuple(t["shape"]) for t in m["inputs"]} == {(1, 32, 32, 3), (1, 16)}
    arrays = np.load(data)
    for s in m["samples"]:
        assert len(s["inputs"]) == 2
        k = int(re.search(r"\[(\d+)\]", s["source"])[1])  # the .npz row this sample came from
        for tensor, entry in zip(m["inputs"], s["inputs"]):
            source = arrays["image" if len(tensor["shape"]) == 4 else "feats"][k:k + 1]
            want = source.transpose(0, 2, 3, 1) if source.ndim == 4 else source
            x = bf.read_tensor(tmp_path / "b" / entry["float_file"], tensor, as_float=True)
            assert np.array_equal(x, want)  # the sample itself, in the layout the phone feeds
            info = next(i for i in ins if i.name == tensor["name"])
            assert np.array_equal(bf.read_tensor(tmp_path / "b" / entry["file"], tensor), quantize(want, info))
    report = _device_run(tmp_path / "b", tmp_path)
    assert report["passed"], report["failures"]
    assert len(report["outputs"]) == 1 and report["outputs"][0]["max_step_diff"] <= 1


def test_a_model_without_image_input_needs_data_and_is_bundled(tmp_path, kinds_data):
    from tests.models import tabular
    from tflite_int8 import convert

    conv = convert(tabular(), tmp_path / "tab", data=kinds_data / "tabular_calib.npy")
    with pytest.raises(InputError, match="has no image input"):
        android.bundle(conv.out_dir, tmp_path / "nodata")
    assert not (tmp_path / "nodata").exists()
    assert main(["android", "bundle", str(conv.out_dir), "-o", str(tmp_path / "b"), "--data",
                 str(kinds_data / "tabular_verify.npy"), "--num-samples", "4"]) == 0
    m = bf.read_manifest(tmp_path / "b")
    assert [t["shape"] for t in m["inputs"]] == [[1, 32]] and len(m["samples"]) == 4
    assert m["model"]["inputs"][0]["kind"] == "tensor"
    assert _device_run(tmp_path / "b", tmp_path)["passed"]
