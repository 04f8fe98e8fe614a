"""This tool's version and the versions of what it runs on (recorded in every report)."""
from __future__ import annotations

__version__ = "0.1.0"

PACKAGES = ("torch", "onnx", "onnxruntime", "onnxslim", "onnx2tf", "tensorflow-cpu", "tf-keras", "ai-edge-litert",
            "numpy")


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out
