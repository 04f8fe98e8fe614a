"""Pruned models: masks folded before export, sparsity of float and int8 weights reported, zeros kept."""
from __future__ import annotations

import json

import torch
from torch.nn.utils import prune

from tests.models import TINY_SPEC, tiny
from tflite_int8 import convert


def test_pruned_model_with_masks_attached(tmp_path, photos):
    model = tiny()
    prune.l1_unstructured(model.down[0], "weight", amount=0.6)           # unstructured
    prune.ln_structured(model.head, "weight", amount=0.5, n=1, dim=0)     # L1-structured: whole output rows
    result = convert(model, tmp_path / "out", spec=TINY_SPEC, data=photos, num_samples=12)
    assert hasattr(model.down[0], "weight_mask")  # the caller's module is left as it was
    rep = json.loads((tmp_path / "out" / "conversion.json").read_text())
    assert sum("pruning mask" in a for a in rep["adjustments"]) == 2
    sp = rep["sparsity"]
    pruned_zeros = int((model.down[0].weight == 0).sum() + (model.head.weight == 0).sum())
    assert sp["float"]["zeros"] >= pruned_zeros > 0
    assert sp["int8"]["zeros"] >= sp["float"]["zeros"] and sp["zeros_kept"]  # 0.0 stays exactly 0 in int8
    assert 0.05 < sp["float"]["fraction"] < 0.9
    assert "not because of zeros" in sp["note"] and "zlib" in sp["note"]
    dense = convert(tiny(), tmp_path / "dense", spec=TINY_SPEC, data=photos, num_samples=12)
    # dense storage: the pruned file is as big as the unpruned one; only compression sees the zeros
    assert abs(result.int8_path.stat().st_size - dense.int8_path.stat().st_size) < 64
    dense_sp = json.loads((tmp_path / "dense" / "conversion.json").read_text())["sparsity"]
    assert sp["int8"]["zlib_bytes"] < dense_sp["int8"]["zlib_bytes"]
    assert dense_sp["float"]["fraction"] < 0.01


def test_pruning_without_masks_is_left_alone(tmp_path, photos):
    model = tiny()
    with torch.no_grad():
        model.down[0].weight[:, :8] = 0  # pruned by hand: nothing to fold
    convert(model, tmp_path / "out", spec=TINY_SPEC, data=photos, num_samples=12)
    rep = json.loads((tmp_path / "out" / "conversion.json").read_text())
    assert not any("pruning mask" in a for a in rep["adjustments"]) and rep["sparsity"]["float"]["fraction"] > 0.1
