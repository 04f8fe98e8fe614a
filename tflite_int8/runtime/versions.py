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


INT8_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def cpu() -> dict[str, object]:
    """The CPU that timed a model: its name, cores and the flags int8 kernels depend on (VNNI, dotprod...).

    int8/float32 latency ratios depend on them (XNNPACK's int8 GEMMs are fast with VNNI or ARM dotprod), so
    every timing is recorded with them."""
    import os
    import platform

    name, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = (part.strip() for part in line.partition(":"))
                if key == "model name" and not name:
                    name = value
                elif key in ("flags", "Features") and not flags:  # x86, ARM
                    flags = set(value.split())
    except OSError:
        pass
    name = name or platform.processor() or platform.machine()
    return {"name": name, "arch": platform.machine(), "cores": os.cpu_count(),
            "int8_flags": [f for f in INT8_CPU_FLAGS if f in flags]}
