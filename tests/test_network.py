"""No network, ever: the suite's guard works, and the conversion child process refuses sockets too."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.conftest import NetworkUsed


def test_guard_blocks_connections_in_tests():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(NetworkUsed):
        s.connect(("127.0.0.1", 9))
    s.close()


def test_onnx2tf_worker_refuses_sockets():
    code = ("from tflite_int8.convert.onnx2tf_worker import _refuse_network\n_refuse_network()\nimport socket\n"
            "try:\n    socket.create_connection(('140.82.112.3', 443), timeout=1)\nexcept ConnectionRefusedError as e:\n"
            "    print('refused', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "refused" in out.stdout and "never uses the network" in out.stdout


def test_a_full_conversion_runs_with_the_guard_on(tiny_conversion):
    # tiny_conversion was made in this process with connect() patched to raise, and the onnx2tf child
    # has its own guard: had anything tried to download, the conversion would have failed.
    assert socket.socket.connect.__name__ == "_guarded_connect"
    assert tiny_conversion.int8_path.exists()
