"""The ARM64 parity check: a bundle run by aarch64 LiteRT in an emulated Debian root.

The real check is opt-in (``pytest --arm64``): it needs root, debootstrap and qemu-user-static, and
builds its root once (about 5 minutes, cached in ~/.cache/tflite-int8/arm64-bookworm).
"""
from __future__ import annotations

import json

import pytest

from tflite_int8.device import arm64
from tflite_int8.cli import main


def test_the_mirror_comes_from_the_hosts_apt_sources():
    mirror = arm64._mirror()
    assert mirror.startswith("http") and "security" not in mirror


@pytest.mark.arm64
def test_arm64_check_on_the_tiny_bundle(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "arm64.json"
    code = main(["android", "arm64-check", str(tiny_bundle), "-o", str(out)])
    printed = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["device"]["arch"] == "aarch64" and doc["input_quantization"]["mismatches"] == 0
    (o,) = doc["outputs"]
    assert o["max_step_diff"] <= 1 and code == 0, printed
    # the pulled results turn into the same verdict offline
    assert main(["android", "compare", str(out), str(tiny_bundle)]) == 0
