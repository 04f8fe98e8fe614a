"""ARM64 parity without a phone: run a bundle in an arm64 Debian root under qemu-user, compare with x86.

The root is built once with debootstrap (Debian bookworm, Python 3.11; about 5 minutes)
and cached outside the repository (``~/.cache/tflite-int8/arm64-bookworm``); the
aarch64 wheels of ai-edge-litert and numpy, at the host's versions, are fetched by the
host's pip (``pip download --platform``) and installed into a venv inside the root with
``--no-index``.  The bundle then runs there through ``device_runner.py`` (emulated
aarch64: XNNPACK's ARM kernels), and its results are compared with the host's expected
outputs.  Needs root (chroot, binfmt_misc), ``debootstrap`` and ``qemu-user-static``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import portable
from ..errors import InputError, Int8Error
from ..progress import Progress, step
from ..runtime.versions import versions
from .android import compare, read_bundle

SUITE = "bookworm"  # Python 3.11: the same cp311 wheels as the host
PACKAGES = "python3,python3-venv,ca-certificates"
VENV = "/opt/tflite-int8-litert"
WHEELS = "/opt/tflite-int8-wheels"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
RUNNER_FILES = ("qmath.py", "bundle_format.py", "timing.py", "device_runner.py")  # tflite_int8/portable: numpy-only


def default_root() -> Path:
    return Path.home() / ".cache" / "tflite-int8" / f"arm64-{SUITE}"


def _run(cmd: list[str], what: str, *, timeout: float, env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise Int8Error(f"{what}: did not finish within {timeout:.0f} s ({' '.join(cmd[:3])} ...)") from None
    except FileNotFoundError:
        raise InputError(f"{what}: {cmd[0]} is not installed") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-1500:]
        raise Int8Error(f"{what} failed (exit {proc.returncode}): {tail}")
    return proc.stdout


def check_host() -> None:
    """Root, debootstrap, and an aarch64 binfmt handler (registered here if qemu-user-static is installed)."""
    if os.geteuid() != 0:
        raise InputError("arm64-check needs root (debootstrap and chroot); run it with sudo")
    if shutil.which("debootstrap") is None:
        raise InputError("debootstrap is not installed: apt install debootstrap qemu-user-static binfmt-support")
    handler = BINFMT / "qemu-aarch64"
    if not handler.is_file():
        if not (BINFMT / "register").exists():
            subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], capture_output=True)
        if shutil.which("update-binfmts"):
            subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
    if not handler.is_file() or "enabled" not in handler.read_text():
        raise InputError("no aarch64 binfmt handler: apt install qemu-user-static binfmt-support (and, in a "
                         "container, make /proc/sys/fs/binfmt_misc available)")
    if "F" not in next((ln for ln in handler.read_text().splitlines() if ln.startswith("flags:")), ""):
        raise InputError(f"{handler} lacks the F (fix binary) flag, so the emulator is not visible inside a "
                         f"chroot; reinstall qemu-user-static (Debian registers it with F)")


def _mirror() -> str:
    """The host's own Debian mirror (so it works where only the configured mirror is reachable)."""
    for src in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]:
        try:
            text = src.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and len(words) > 1 and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"] and len(words) > 2 and "security" not in line:
                return words[2] if not words[1].startswith("[") else words[3]
    return "http://deb.debian.org/debian"


def _host_versions() -> dict[str, str]:
    found = versions()
    return {"ai-edge-litert": found["ai-edge-litert"], "numpy": found["numpy"]}


def ensure_root(root: Path, *, rebuild: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Build (or reuse) the arm64 root with LiteRT installed; returns what was done and how long it took."""
    done: dict[str, Any] = {"root": str(root), "built": False, "installed": False}
    want = _host_versions()
    stamp = root / "opt" / "tflite-int8-stamp.json"
    if rebuild and root.exists():
        shutil.rmtree(root)
    if not (root / "usr" / "bin" / "python3").exists():
        t0 = time.perf_counter()
        root.parent.mkdir(parents=True, exist_ok=True)
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with step(progress, f"debootstrap arm64 {SUITE} into {root} (about 5 minutes, once)"):
            _run(["debootstrap", "--arch=arm64", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(partial),
                  _mirror()], "debootstrap of the arm64 root", timeout=3600)
        os.replace(partial, root)
        done.update(built=True, build_seconds=round(time.perf_counter() - t0, 1))
    if not stamp.is_file() or json.loads(stamp.read_text()) != want:
        t0 = time.perf_counter()
        wheels = root / WHEELS.lstrip("/")
        shutil.rmtree(wheels, ignore_errors=True)
        with step(progress, "downloading the aarch64 wheels (host pip)"):
            _run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version",
                  "3.11", "--implementation", "cp", "--platform", "manylinux_2_27_aarch64", "--platform",
                  "manylinux_2_17_aarch64", "--platform", "manylinux2014_aarch64", "-d", str(wheels)]
                 + [f"{k}=={v}" for k, v in want.items()], "downloading aarch64 wheels", timeout=1800)
        with step(progress, "installing LiteRT into the arm64 root (emulated)"):
            _chroot(root, ["/usr/bin/python3", "-m", "venv", "--clear", VENV], "making the venv", timeout=1800)
            _chroot(root, [f"{VENV}/bin/python", "-m", "pip", "install", "--quiet", "--no-index", "--find-links",
                           WHEELS] + [f"{k}=={v}" for k, v in want.items()], "installing the wheels", timeout=3600)
        stamp.write_text(json.dumps(want))
        done.update(installed=True, install_seconds=round(time.perf_counter() - t0, 1))
    done["versions"] = want
    return done


def _chroot(root: Path, cmd: list[str], what: str, *, timeout: float) -> str:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    return _run([chroot, str(root)] + cmd, what, timeout=timeout, env=env)


def arm64_check(bundle_dir: str | Path, *, root: str | Path | None = None, rebuild: bool = False,
                warmup: int = 1, runs: int = 5, threads: int = 1,
                progress: Progress | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the bundle on emulated aarch64 LiteRT: (the device results document, the host's comparison report)."""
    read_bundle(bundle_dir)
    check_host()
    root_dir = Path(root) if root is not None else default_root()
    t0 = time.perf_counter()
    setup = ensure_root(root_dir, rebuild=rebuild, progress=progress)
    work = Path(tempfile.mkdtemp(prefix="tflite-int8-", dir=root_dir / "tmp"))
    try:
        shutil.copytree(bundle_dir, work / "bundle")
        here = Path(portable.__file__).parent
        for name in RUNNER_FILES:
            shutil.copyfile(here / name, work / name)
        inside = "/" + str(work.relative_to(root_dir))
        t1 = time.perf_counter()
        with step(progress, "running the bundle on emulated aarch64"):
            _chroot(root_dir, [f"{VENV}/bin/python", f"{inside}/device_runner.py", f"{inside}/bundle",
                               f"{inside}/results.json", "--warmup", str(warmup), "--runs", str(runs),
                               "--threads", str(threads)], "the aarch64 run", timeout=7200)
        run_seconds = time.perf_counter() - t1
        doc = json.loads((work / "results.json").read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = compare(doc, bundle_dir)
    report["arm64"] = {**setup, "run_seconds": round(run_seconds, 1),
                       "total_seconds": round(time.perf_counter() - t0, 1)}
    return doc, report
