"""Checkpoints: safe loading, and a clear report when they do not fit the model."""
from __future__ import annotations

import pytest
import torch

from tests.models import TinyNet, tiny
from tflite_int8 import InputError
from tflite_int8.runtime.checkpoint import load_weights


def test_matching_checkpoint_loads(tmp_path):
    torch.save(tiny().state_dict(), tmp_path / "ok.pt")
    model = TinyNet()
    report = load_weights(model, tmp_path / "ok.pt")
    assert report["missing"] == [] and report["unexpected"] == [] and report["mismatched"] == {}
    assert torch.equal(model.head.weight, tiny().head.weight)


def test_nested_and_dataparallel_checkpoints(tmp_path):
    sd = {f"module.{k}": v for k, v in tiny().state_dict().items()}
    torch.save({"epoch": 3, "state_dict": sd}, tmp_path / "dp.pt")
    report = load_weights(TinyNet(), tmp_path / "dp.pt")
    assert report["missing"] == [] and "module." in report["adjustments"][0]


def test_other_architecture_is_refused_with_the_keys(tmp_path):
    torch.save(TinyNet(classes=7).state_dict(), tmp_path / "other.pt")
    with pytest.raises(InputError, match=r"head.weight: checkpoint \[7, 24\] vs model \[10, 24\]"):
        load_weights(TinyNet(), tmp_path / "other.pt")
    report = load_weights(TinyNet(), tmp_path / "other.pt", allow_partial=True)
    assert "head.weight" in report["left_random"]


def test_pickle_with_code_is_not_loaded_without_trust(tmp_path):
    torch.save({"state_dict": tiny().state_dict(), "note": Exotic()}, tmp_path / "pickled.pt")
    with pytest.raises(InputError, match="holds Python objects.*--trust-checkpoint"):
        load_weights(TinyNet(), tmp_path / "pickled.pt")
    assert load_weights(TinyNet(), tmp_path / "pickled.pt", trust_pickle=True)["missing"] == []


def test_garbage_and_missing_files(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read checkpoint"):
        load_weights(TinyNet(), tmp_path / "junk.pt")
    with pytest.raises(InputError, match="does not exist"):
        load_weights(TinyNet(), tmp_path / "none.pt")


class Exotic:
    pass
