"""No network, ever: the suite's guard works, and the conversion child process refuses sockets too."""
from __future__ import annotations

import socket

import pytest

from tests.conftest import NetworkUsed


def test_guard_blocks_connections_in_tests():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(NetworkUsed):
        s.connect(("127.0.0.1", 9))
    s.close()


def test_child_processes_refuse_sockets():
    # onnx2tf, the TF converter and interpreter loads all run through runtime.child, which blocks connect()
    from tests.child_jobs import Connects
    from tflite_int8.runtime import child

    out = child.call(Connects(), what="a job", stage="test")
    assert out.startswith("refused") and "never uses the network" in out


def test_a_full_conversion_runs_with_the_guard_on(tiny_conversion):
    # tiny_conversion was made in this process with connect() patched to raise, and the onnx2tf child
    # has its own guard: had anything tried to download, the conversion would have failed.
    assert socket.socket.connect.__name__ == "_guarded_connect"
    assert tiny_conversion.int8_path.exists()


def test_a_local_ray_instance_uses_loopback_only(ray_cluster):
    # Ray's processes talk over TCP from C++ (the guard above sees Python sockets only): every socket of the
    # instance the suite (and `--ray`) starts is bound to, and connected with, 127.0.0.1, never the network.
    import psutil

    ray = ray_cluster
    ray.get(ray.remote(lambda: 1).remote())  # a worker is up and has talked to the raylet
    me = psutil.Process()
    procs = [me] + me.children(recursive=True)
    sockets = [c for p in procs for c in _inet(p)]
    assert len(procs) > 3 and sockets  # the GCS, the raylet, workers...
    loopback = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}
    outside = [(c.laddr, c.raddr) for c in sockets if c.laddr.ip not in loopback or (c.raddr and c.raddr.ip not in loopback)]
    assert outside == []
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")


def _inet(proc):
    import psutil

    try:
        return proc.connections(kind="inet")
    except psutil.Error:  # a process that ended meanwhile
        return []
