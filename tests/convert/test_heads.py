"""Head lint and head split: mixed-range outputs are found, and split apart back to where they are computed."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.models import TINY_SPEC, tiny_detector, tiny_detector_v8
from tflite_int8.errors import ConversionError
from tflite_int8.convert.export import export
from tflite_int8.runtime.reference import run_onnx
from tflite_int8.convert.head_split import split_head
from tflite_int8.convert.heads import apply, detect_layout, lint


@pytest.fixture(scope="module", params=["v5", "v8"])
def exported(request, tmp_path_factory, rng):
    factory = tiny_detector if request.param == "v5" else tiny_detector_v8
    path = tmp_path_factory.mktemp("head") / f"{request.param}.onnx"
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    result = export(factory(), path, TINY_SPEC.input_shape(), check_inputs=[x])
    y = run_onnx(path, [x])[0][0]
    return request.param, path, result.output_names[0], x, y


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(0)


def test_layouts_are_recognised():
    assert detect_layout("o", [1, 4032, 85]).layout == "v5"
    head = detect_layout("o", [1, 84, 8400])
    assert head.layout == "v8" and head.num_classes == 80 and head.axis == 1
    assert detect_layout("o", [1, 1000]) is None and detect_layout("o", [1, 20, 30]) is None


def test_lint_flags_scores_sharing_a_pixel_scale(exported):
    layout, _, name, _, y = exported
    (finding,) = lint({name: y})
    assert finding["layout"] == layout and finding["channels"][0] == 4
    assert finding["levels"] < 13 and "span" in finding["message"] and name in finding["message"]


def test_lint_leaves_a_classifier_alone():
    assert lint({"logits": np.random.default_rng(1).normal(size=(4, 10)).astype(np.float32)}) == []


def test_split_is_exact_and_reaches_back_to_the_head_conv(exported):
    layout, path, name, x, y = exported
    model, desc = split_head(onnx.load(str(path)), detect_layout(name, y.shape), (32, 32))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    boxes, scores = sess.run(["boxes", "scores"], {sess.get_inputs()[0].name: x})
    ref_boxes, ref_scores = (y[..., :4], y[..., 4:]) if layout == "v5" else (y[:, :4], y[:, 4:])
    np.testing.assert_allclose(boxes * 32, ref_boxes, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6, atol=1e-6)
    assert (boxes.shape[-1] if layout == "v5" else boxes.shape[1]) == 4
    # no tensor mixes the quantities: not even the head conv's output is sliced, the conv itself is split
    # (its rows for x/y, w/h and the scores each computed by a conv of their own, so each gets its own scale)
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    original = {o for n in onnx.load(str(path)).graph.node for o in n.output}
    assert desc["separated_at"] and all(producers[t] == "Conv" and t not in original for t in desc["separated_at"])
    assert not any(n.op_type == "Slice" for n in model.graph.node)
    assert [o.name for o in model.graph.output] == ["boxes", "scores"]
    # the 1/size normalisation went into the stride/anchor constants, not a Mul on pixel boxes
    assert not any("norm" in i.name for i in model.graph.initializer)


def test_apply_splits_only_for_detect_and_rewrites_the_file(exported, tmp_path):
    _, path, name, _, y = exported
    copy = tmp_path / "m.onnx"
    copy.write_bytes(path.read_bytes())
    names, section = apply(copy, [name], {name: y}, task="auto", fix=True, input_size=(32, 32))
    assert names == [name] and section["lint"] and "decode" not in section
    names, section = apply(copy, [name], {name: y}, task="detect", fix=False, input_size=(32, 32))
    assert names == [name] and section["fix"] is None and section["decode"]["box_units"] == "pixels"
    names, section = apply(copy, [name], {name: y}, task="detect", fix=True, input_size=(32, 32))
    assert names == ["boxes", "scores"] and "replaced by 'boxes'" in section["fix"]
    assert [o.name for o in onnx.load(str(copy)).graph.output] == ["boxes", "scores"]


def test_detect_without_a_detector_output_is_refused(tmp_path):
    with pytest.raises(ConversionError, match="needs exactly one output in YOLOv5 layout"):
        apply(tmp_path / "x.onnx", ["logits"], {"logits": np.zeros((2, 10), np.float32)}, task="detect", fix=True,
              input_size=(32, 32))


def test_carry_takes_only_a_split_head_with_the_same_outputs(tmp_path):
    """head_from: the head of a conversion whose model.onnx the file is (recover's weight-changed copies)."""
    import json

    from tests.models import tiny
    from tflite_int8.convert.heads import carry
    from tflite_int8.convert.pipeline import convert
    from tflite_int8.errors import InputError

    naive, split = tmp_path / "naive", tmp_path / "split"
    naive.mkdir(), split.mkdir()
    (naive / "conversion.json").write_text(json.dumps({"head": {"lint": [], "fix": None}}))
    decode = {"layout": "v8", "boxes": "boxes", "scores": "scores", "num_classes": 2, "mode": "model"}
    (split / "conversion.json").write_text(json.dumps({"head": {"lint": [], "fix": "split", "decode": decode},
                                                       "onnx": {"outputs": ["boxes", "scores"]}}))
    scores = {"boxes": np.zeros((4, 4, 48), np.float32), "scores": np.full((4, 2, 48), 0.5, np.float32)}
    with pytest.raises(InputError, match="is not a conversion whose detector head was split"):
        carry(tmp_path / "new" / "model.onnx", ["boxes", "scores"], scores, naive)
    with pytest.raises(InputError, match=r"outputs \['output'\] are not those of the head-split model"):
        carry(tmp_path / "new" / "model.onnx", ["output"], {"output": scores["boxes"]}, split)
    section = carry(tmp_path / "new" / "model.onnx", ["scores", "boxes"], scores, split)
    assert section["decode"] == decode and section["fix"] == "split" and section["carried_from"] == "../split"
    with pytest.raises(InputError, match="head_from carries a split detector head: it needs task='detect'"):
        convert(tiny(), tmp_path / "x", spec=TINY_SPEC, head_from=split)
    assert not (tmp_path / "x").exists()
