"""The executor layer: addresses are checked, a missing Ray is named with its extra, before any work; a cluster
that does not answer fails within the timeout; ``auto`` never joins another program's private instance."""
from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time

import pytest

from tflite_int8.cli import main
from tflite_int8.cluster import InOrder, check_address, reach, resolve, start
from tflite_int8.errors import InputError

# another program's own ray.init(): a private instance (loopback only), its GCS address on stdout, ended by EOF
PRIVATE = ("import shutil, sys, ray\nfrom tflite_int8.cluster import start\ntemp = start('local', num_cpus=1)\n"
           "print(ray.get_runtime_context().gcs_address, flush=True)\nsys.stdin.read()\nray.shutdown()\n"
           "shutil.rmtree(temp, ignore_errors=True)\n")


@pytest.mark.parametrize("address", ["local", "auto", "10.0.0.5:6379", "head.cluster:6379", "ray://head:10001"])
def test_ray_addresses(address):
    assert check_address(address) == address


@pytest.mark.parametrize("address", ["out/", "tiny", "head", "http://head:8265/x"])
def test_not_ray_addresses(address):
    with pytest.raises(InputError, match="is not a Ray address"):
        check_address(address)


@pytest.mark.parametrize("argv", [["verify", "conv", "--ray"], ["recover", "m.onnx", "-o", "{tmp}/r", "--ray"],
                                  ["batch", "zoo.toml", "-o", "{tmp}/b", "--ray", "auto"]])
def test_without_ray_the_extra_is_named_before_any_work(monkeypatch, tmp_path, capsys, argv):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    assert "pip install 'tflite-int8[ray]'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_in_order_stops_at_the_first_accepted_result():
    seen = []
    out = InOrder().map(lambda x: seen.append(x) or x * 10, [1, 2, 3, 4], stop=lambda r: r >= 20)
    assert out.results == [10, 20] and seen == [1, 2] and out.retried() == []
    assert InOrder().map(lambda s, x: s + x, [1, 2], shared=100).results == [101, 102]


def _free_port() -> int:
    with socket.socket() as s:  # bound, never connected: the network guard allows it
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address", ["127.0.0.1:{free}", "192.0.2.1:6379"])  # nothing listens; TEST-NET-1
def test_an_address_that_does_not_answer_fails_within_the_timeout(address):
    address = address.format(free=_free_port())
    t0 = time.monotonic()
    with pytest.raises(InputError) as exc:
        start(address, timeout=10)
    elapsed = time.monotonic() - t0
    message = str(exc.value)
    assert elapsed < 10 + 5, elapsed
    assert f"cannot reach the Ray cluster at {address} (" in message and "--ray-timeout (now 10 s)" in message
    assert "\n" not in message


def test_a_bad_timeout_is_refused_before_anything():
    with pytest.raises(InputError, match="positive number of seconds"):
        start("auto", timeout=0)


@pytest.fixture(scope="module")
def private_instance():
    """Another program running its own ``ray.init()``; its GCS address.  Ended (and its files removed) after."""
    proc = subprocess.Popen([sys.executable, "-c", PRIVATE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        address = proc.stdout.readline().strip() if ready else ""
        assert address, "the private Ray instance did not start within 120 s"
        yield address
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_auto_never_joins_another_programs_private_instance(private_instance, tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))  # where `ray start --head` would record its address: nothing
    t0 = time.monotonic()
    with pytest.raises(InputError) as exc:
        start("auto", timeout=10)
    message = str(exc.value)
    assert time.monotonic() - t0 < 5
    assert message.startswith("--ray auto: no cluster started with `ray start --head` on this machine")
    assert private_instance in message and "not joined" in message and "\n" not in message


def test_auto_is_the_cluster_ray_start_recorded(private_instance, tmp_path, monkeypatch):
    """What `ray start --head` records (Ray's ray_current_cluster file, or RAY_ADDRESS) is what auto joins; that
    cluster answers the check in time (joined for real in a child: this process may be connected already)."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(private_instance)
    address, origin = resolve("auto")
    assert address == private_instance and "ray_current_cluster" in origin
    monkeypatch.setenv("RAY_ADDRESS", private_instance)
    assert resolve("auto") == (private_instance, " (from RAY_ADDRESS)")
    monkeypatch.delenv("RAY_ADDRESS")
    reach(address, timeout=30)  # no error: it answers
    joined = subprocess.run([sys.executable, "-c", "import ray; from tflite_int8.cluster import start; start('auto');"
                             "print(ray.get_runtime_context().gcs_address); ray.shutdown()"],
                            capture_output=True, text=True, timeout=120, env={**os.environ})
    assert joined.stdout.strip() == private_instance, joined.stderr[-2000:]
