"""The executor layer: addresses are checked, a missing Ray is named with its extra, before any work."""
from __future__ import annotations

import sys

import pytest

from tflite_int8.cli import main
from tflite_int8.cluster import InOrder, check_address
from tflite_int8.errors import InputError


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
