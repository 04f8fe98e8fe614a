"""One tiny instance of each model kind mobile engineers bring, converted full-integer end to end, loaded with
XNNPACK and verified with its task metric (tests/models.py has the models).

CTC text recognizer (conv + GRU), LSTM sequence classifier, MTCNN-like net with ceil-mode pools, DeiT-like block
with erf GELU, segmentation net, DBNet-like text detector (probability map)."""
from __future__ import annotations

import pytest

from tflite_int8 import Recipe, convert, verify
from tflite_int8.runtime.describe import describe

# model, rewrite it needs (or None), task verify picks by itself, the metric that decides and its least value
KINDS = {
    "ctc_recognizer": ("unroll-rnn", "ctc", "sequence_match", 0.9),
    "lstm_classifier": ("unroll-rnn", "classification", "top1_agreement", 0.9),
    "ceil_pool_net": ("ceil-pool", "classification", "top1_agreement", 0.9),
    "gelu_block": ("erf-gelu", "classification", "top1_agreement", 0.9),
    "segmenter": (None, "segment", "pixel_agreement", 0.95),
    "text_detector": (None, "mask", "mask_iou", 0.9),
}


@pytest.fixture(scope="module", params=list(KINDS))
def kind(request, tmp_path_factory, photos):
    # by name: the factory's preprocess_spec is used, and verify runs PyTorch too; a float32 variant in the folder
    # means verify needs no second translation
    conv = convert(f"tests.models:{request.param}", tmp_path_factory.mktemp("kinds") / request.param, data=photos,
                   recipe=Recipe(variants=("float32",)))
    return request.param, conv


def test_each_kind_converts_full_integer_and_loads_with_xnnpack(kind):
    name, conv = kind
    rewrite = KINDS[name][0]
    assert conv.passed and conv.failures == []
    info = describe(conv.int8_path)
    assert info["verdict"] == "full-integer" and not info["float_ops"]
    assert info["xnnpack"]["partitions"] >= 1  # XNNPACK prepared it (int8_lint would have refused otherwise)
    assert conv.report["stages"]["int8_lint"]["files"]["full-integer"]["loads_with"] == ["builtin kernels", "XNNPACK"]
    if rewrite:
        assert rewrite in conv.report["rewrites"]["applied"]
        line = next(a for a in conv.report["adjustments"] if a.startswith(f"rewrite {rewrite}:"))
        assert "float change (ONNX Runtime before vs after" in line
    if name == "ceil_pool_net":
        assert "PADV2" not in info["op_histogram"]  # no -inf padding left to poison a scale


def test_each_kind_is_verified_with_its_task_metric(kind):
    name, conv = kind
    _, task, metric, least = KINDS[name]
    result = verify(conv.out_dir, data=conv.report["calibration"]["source"], layers=False)
    assert result.report["task"] == task
    assert result.report[task][metric] >= least, result.failures
    assert result.passed, result.failures
