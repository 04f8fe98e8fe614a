"""Writes arm64_tiny_results.json: real aarch64 LiteRT results for the test suite's tiny bundle.

The bundle is made exactly as the ``tiny_bundle`` fixture makes it (conversions are byte-deterministic),
then run by ``android arm64-check`` (root, debootstrap, qemu-user-static).  tests/device/test_android.py
compares these results with a freshly made bundle, so CI checks `compare` on real ARM64 outputs.

Run (as root, from the repository root): .venv/bin/python -m tests.golden.make_arm64_results
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from tests.models import TINY_SPEC, tiny
from tflite_int8 import Recipe, convert
from tflite_int8.device import android
from tflite_int8.device.arm64 import arm64_check
from tflite_int8.data.readers import default_data_dir

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        conv = convert(tiny(), Path(tmp) / "tiny", spec=TINY_SPEC, data=default_data_dir(), views=2,
                       recipe=Recipe(variants=("float32", "int8-float-io")))
        bundle = Path(tmp) / "bundle"
        android.bundle(conv.out_dir, bundle, data=default_data_dir(), num_samples=4, runs=5)
        doc, report = arm64_check(bundle, runs=5)
    path = Path(__file__).with_name("arm64_tiny_results.json")
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {path}: passed={report['passed']}, "
          f"max step diff {[o['max_step_diff'] for o in report['outputs']]}")
