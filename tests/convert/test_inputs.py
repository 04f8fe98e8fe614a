"""Resolving a model's inputs before anything runs: static shapes from flags, the model, --size or the data."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.models import audio, keras_nhwc_onnx, qdq_onnx, two_inputs, vad_onnx
from tflite_int8 import InputError, PreprocessSpec
from tflite_int8.convert.export import export
from tflite_int8.convert.inputs import Declared, declared_inputs, resolve_inputs
from tflite_int8.data.readers import open_reader


def _resolve(declared, data, spec=None, shapes=None):
    return resolve_inputs(declared, source="m.onnx", spec=spec, spec_given=spec is not None, input_shapes=shapes,
                          data=data)


def test_onnx_static_shape_is_the_size(photos):
    table, notes = _resolve([Declared("images", (1, 3, 48, 40))], photos)
    (s,) = table
    assert s.kind == "image" and s.preprocess.size == (48, 40) and s.shape == (1, 3, 48, 40)
    assert any("no preprocessing given for image input 'images'" in n for n in notes)
    mean_std = PreprocessSpec(size=None, mean=(0.5,), std=(0.5,))  # --mean/--std without --size
    assert _resolve([Declared("images", (1, 3, 48, 40))], photos, spec=mean_std)[0].specs[0].preprocess.size == (48, 40)


def test_dynamic_dims_fixed_by_flag_size_or_data_each_said(tmp_path, photos):
    dyn = [Declared("images", ("batch", 3, "h", "w"))]
    table, notes = _resolve(dyn, photos, shapes={"images": (1, 3, 64, 64)})
    assert table.specs[0].shape == (1, 3, 64, 64) and len(notes) >= 3 and "(--input-shape)" in notes[0]
    table, notes = _resolve(dyn, photos, spec=PreprocessSpec(size=(32, 48)))
    assert table.specs[0].shape == (1, 3, 32, 48) and "fixed to 48 (--size)" in notes[-1]
    np.save(tmp_path / "wave.npy", np.zeros((3, 1, 16000), np.float32))
    table, notes = _resolve([Declared("wave", (1, 1, "samples"))], tmp_path / "wave.npy")
    assert table.specs[0].shape == (1, 1, 16000) and table.specs[0].kind == "tensor"
    assert "('samples') fixed to 16000 from its data" in notes[0]


def test_dynamic_dims_read_from_either_array_form_and_a_static_first_dim_is_kept(tmp_path):
    for shape in [(3, 1, 1, 16000), (3, 1, 16000)]:  # (N, *S) and (N, *S[1:])
        np.save(tmp_path / "wave.npy", np.zeros(shape, np.float32))
        table, _ = _resolve([Declared("wave", ("batch", 1, "samples"))], tmp_path / "wave.npy")
        assert table.specs[0].shape == (1, 1, 16000)
    np.save(tmp_path / "state.npy", np.zeros((5, 2, 1, 64), np.float32))
    table, notes = _resolve([Declared("state", (2, 1, "hidden"))], tmp_path / "state.npy")
    assert table.specs[0].shape == (2, 1, 64) and notes == ["input 'state': dynamic dimension 2 ('hidden') fixed to 64 "
                                                             "from its data"]
    np.save(tmp_path / "state.npy", np.zeros((5, 2, 128), np.float32))  # a Silero state [2, batch, 128] fed without 1
    with pytest.raises(InputError, match=r"'state' \[2, batch, 128\] has a dynamic dimension 1 .*state:2,<batch>,128"):
        _resolve([Declared("state", (2, "batch", 128))], tmp_path / "state.npy")  # was [2, 2, 128] from the data


def test_a_dim_nothing_fixes_is_refused_naming_the_flag(photos):
    with pytest.raises(InputError, match=r"dynamic dimension 2 \('h'\).*--input-shape images:1,3,<h>,<w> or --size"):
        _resolve([Declared("images", ("batch", 3, "h", "w"))], photos)
    with pytest.raises(InputError, match=r"dimension 2 is 64, --input-shape gives 32"):
        _resolve([Declared("images", (1, 3, 64, 64))], photos, shapes={"images": (1, 3, 32, 32)})
    with pytest.raises(InputError, match="--input-shape names 'imgs', which m.onnx has no input of"):
        _resolve([Declared("images", (1, 3, 64, 64))], photos, shapes={"imgs": (1, 3, 64, 64)})


def test_arrays_need_no_mean_or_std(tmp_path):
    np.save(tmp_path / "tab.npy", np.zeros((5, 32), np.float32))
    table, notes = _resolve([Declared("features", None)], tmp_path / "tab.npy")
    assert table.specs[0].kind == "tensor" and table.specs[0].preprocess is None and table.first_preprocess is None
    assert notes == ["input 'features': shape [1, 32] taken from its data (batch 1)"]
    np.save(tmp_path / "chw.npy", np.zeros((5, 3, 8, 8), np.float32))  # 4-D arrays without a spec: a tensor too
    table, _ = _resolve([Declared("x", None)], tmp_path / "chw.npy")
    assert table.specs[0].kind == "tensor" and table.specs[0].tflite_shape == (1, 8, 8, 3)


def test_pytorch_forward_arguments_are_the_inputs(tmp_path, photos):
    assert [d.name for d in declared_inputs(two_inputs())] == ["image", "feats"]
    np.save(tmp_path / "feats.npy", np.zeros((24, 16), np.float32))
    data = {"image": str(photos), "feats": str(tmp_path / "feats.npy")}
    table, _ = _resolve(declared_inputs(two_inputs()), data, spec=PreprocessSpec(size=(32, 32)))
    assert [(s.name, s.kind, s.shape) for s in table] == [("image", "image", (1, 3, 32, 32)),
                                                         ("feats", "tensor", (1, 16))]
    res = export(two_inputs(), tmp_path / "two.onnx", table,
                 check_inputs=[{"image": np.ones((1, 3, 32, 32), np.float32), "feats": np.ones((1, 16), np.float32)}])
    assert res.input_names == ["image", "feats"] and res.check["outputs"]["output"]["cosine"] > 0.99999


def test_raw_audio_of_16000_samples_is_accepted(tmp_path):
    """One second at 16 kHz: resolved, read and exported as rank 3 (the conversion itself is the 4000 case)."""
    np.save(tmp_path / "wave.npy", np.random.default_rng(0).standard_normal((2, 1, 16000)).astype(np.float32))
    table, _ = _resolve(declared_inputs(audio()), tmp_path / "wave.npy")
    assert table.specs[0].shape == (1, 1, 16000) and table.specs[0].tflite_shape == (1, 1, 16000)
    reader = open_reader(tmp_path / "wave.npy", table, warn_few=False)
    res = export(audio(), tmp_path / "audio.onnx", table, check_inputs=[s.x for s in reader])
    dims = [d.dim_value for d in onnx.load(str(res.onnx_path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 1, 16000] and res.check["outputs"]["output"]["cosine"] > 0.99999


def test_dict_outputs_name_the_onnx_outputs(tmp_path):
    from tests.models import face_boxes

    res = export(face_boxes(), tmp_path / "face.onnx", (1, 3, 24, 24), input_name="crop")
    assert res.output_names == ["box", "landmarks", "prob"]


def test_onnx_declared_dims_read_symbolic_names():
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 40, "t"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 40, "t"])])
    assert declared_inputs(helper.make_model(graph)) == [Declared("x", ("n", 40, "t"), "float32")]


# -- converted end to end: full-integer, loaded with XNNPACK, verified ----------------------------------------

def _full_integer_on_xnnpack(path):
    from tflite_int8.runtime.describe import describe

    info = describe(path)  # loads it with the default delegate (XNNPACK) too
    assert info["verdict"] == "full-integer" and info["xnnpack"]["partitions"] >= 1, info["xnnpack"]
    return info


def _verified(out_dir, data, **kw):
    from tflite_int8 import verify

    res = verify(out_dir, data=data, layers=False, **kw)
    assert res.passed, res.failures
    return res.report


def test_two_inputs_from_one_npz(two_input_conversion, kinds_data):
    conv = two_input_conversion
    info = _full_integer_on_xnnpack(conv.int8_path)
    assert [(i["name"], i["shape"]) for i in info["inputs"]] == [("image", [1, 32, 32, 3]), ("feats", [1, 16])]
    assert [(i["name"], i["kind"]) for i in conv.report["inputs"]] == [("image", "tensor"), ("feats", "tensor")]
    assert conv.report["preprocess"] is None  # arrays only: nothing asks for a mean/std
    rep = _verified(conv.out_dir, kinds_data / "two_verify.npz")
    assert rep["classification"]["top1_agreement"] >= 0.75 and rep["outputs"]["output"]["sqnr_db"] > 20


def test_raw_audio_stays_rank_3(tmp_path, kinds_data):
    from tflite_int8 import convert

    conv = convert(audio(), tmp_path / "audio", data=kinds_data / "audio_calib.npy")
    info = _full_integer_on_xnnpack(conv.int8_path)
    assert info["inputs"][0]["shape"] == [1, 1, 4000] and info["inputs"][0]["name"] == "wave"
    assert _verified(conv.out_dir, kinds_data / "audio_verify.npy")["outputs"]["output"]["cosine"] > 0.99


def test_sequence_stays_rank_3_in_the_users_layout(tmp_path, kinds_data):
    from tests.models import sequence
    from tflite_int8 import Runner, convert

    conv = convert(sequence(), tmp_path / "seq", data=kinds_data / "sequence_calib.npy")
    info = _full_integer_on_xnnpack(conv.int8_path)
    assert info["inputs"][0]["shape"] == [1, 50, 40] and info["outputs"][0]["shape"] == [1, 50, 6]
    x = np.load(kinds_data / "sequence_verify.npy")[:2]
    import torch

    with torch.no_grad():
        ref = sequence()(torch.from_numpy(x)).numpy()
    got = Runner(conv.int8_path)(x)["output"]  # (N, time, features) in, as the PyTorch model takes it
    assert got.shape == ref.shape and np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.99
    assert _verified(conv.out_dir, kinds_data / "sequence_verify.npy")["outputs"]["output"]["sqnr_db"] > 20


# -- a 4-D input's source layout, read from the graph; inputs fixed to a constant; inputs with no batch axis -----

def _layouts(path, declared=None):
    from tflite_int8.convert.layouts import source_layouts

    return source_layouts(onnx.load(str(path)), {"x": 4}, declared, path.name)


def test_layout_is_read_from_the_graph_or_refused_naming_the_flag(tmp_path, photos):
    keras_nhwc_onnx(tmp_path / "keras.onnx")
    found, notes = _layouts(tmp_path / "keras.onnx")
    assert found == {"x": "NHWC"} and "source layout NHWC read from the graph (it goes into Transpose" in notes[0]
    qdq_onnx(tmp_path / "qdq.onnx")  # QuantizeLinear/DequantizeLinear then a Conv: channels-first
    found, notes = _layouts(tmp_path / "qdq.onnx")
    assert found == {"x": "NCHW"} and "is Conv" in notes[0]
    keras_nhwc_onnx(tmp_path / "flat.onnx", into="reshape")  # Reshape -> MatMul: the graph does not say
    with pytest.raises(InputError, match=r"flat.onnx: the layout of 4-D input 'x' cannot be read from the graph "
                                         r"\(.*\); declare it with --input-layout x:NHWC or x:NCHW"):
        _layouts(tmp_path / "flat.onnx")
    assert _layouts(tmp_path / "flat.onnx", {"x": "nhwc"}) == ({"x": "NHWC"}, [])
    found, notes = _layouts(tmp_path / "keras.onnx", {"x": "NCHW"})  # the user's word wins, the doubt is said
    assert found == {"x": "NCHW"} and "as declared (--input-layout), although it goes into Transpose" in notes[0]
    with pytest.raises(InputError, match="--input-layout names 'images', which keras.onnx has no input of"):
        _layouts(tmp_path / "keras.onnx", {"images": "NHWC"})
    # photos for a channels-last image input: the preprocessed arrays are NHWC too, and that is said
    table, notes = resolve_inputs([Declared("x", ("N", 16, 16, 3))], source="keras.onnx", data=photos,
                                  spec=PreprocessSpec(size=(16, 16)), spec_given=True, input_shapes=None,
                                  layouts={"x": "NHWC"})
    (s,) = table
    assert s.kind == "image" and s.preprocess.layout == "NHWC" and s.layout == "NHWC"
    assert s.tflite_shape == (1, 16, 16, 3) and any("laid out NHWC as the source model takes them" in n for n in notes)


def _cosine(a, b):
    return float(np.dot(a.ravel(), b.ravel()) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_keras_channels_last_input_stays_nhwc_end_to_end(tmp_path):
    """tf2onnx's [N, 16, 16, 3] -> Transpose(0, 3, 1, 2) -> Conv: the .tflite takes [1, 16, 16, 3] as the Keras
    model did; metadata and inspect say NHWC; verify passes; fed a channels-first buffer instead, int8 differs."""
    import onnxruntime as ort

    from tflite_int8 import Runner, convert
    from tflite_int8.cli.summaries import feeding_lines

    keras_nhwc_onnx(tmp_path / "keras.onnx")
    rng, colour = np.random.default_rng(0), np.array([1.5, -1.0, 0.5])  # channels of their own means, as photos
    np.save(tmp_path / "calib.npy", (rng.standard_normal((16, 16, 16, 3)) + colour).astype(np.float32))  # (N, *S[1:])
    np.save(tmp_path / "held.npy", (rng.standard_normal((8, 1, 16, 16, 3)) + colour).astype(np.float32))  # (N, *S)
    conv = convert(tmp_path / "keras.onnx", tmp_path / "out", data=tmp_path / "calib.npy")
    info = _full_integer_on_xnnpack(conv.int8_path)
    assert info["inputs"][0]["shape"] == [1, 16, 16, 3]  # was [1, 16, 3, 16]: taken for NCHW
    assert conv.report["inputs"][0]["layout"] == "NHWC" and conv.report["inputs"][0]["layout_change"] is None
    assert info["feeding"]["inputs"][0]["layout"] == "NHWC"
    assert any("source layout NHWC read from the graph" in a for a in conv.report["adjustments"])
    assert "  input 'x' (tensor): [1, 16, 16, 3] NHWC, as in the source model" in feeding_lines(info)
    assert conv.report["stages"]["translate"]["check"]["outputs"]["y"]["cosine_min"] > 0.9999
    _verified(conv.out_dir, tmp_path / "held.npy")
    x = np.load(tmp_path / "held.npy")[:, 0]
    ref = ort.InferenceSession(str(tmp_path / "keras.onnx")).run(None, {"x": x})[0]
    runner = Runner(conv.int8_path)  # the phone's view: the file alone, its input as a camera gives it (NHWC)
    mean = ref.mean(axis=0)  # what varies from sample to sample (the bias alone keeps any cosine high)
    assert _cosine(runner(x)["y"] - mean, ref - mean) > 0.9
    channels_first = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(x.shape)  # the same bytes as NCHW
    assert _cosine(runner(channels_first)["y"] - mean, ref - mean) < 0.5


def test_an_unreadable_layout_is_declared_with_input_layouts(tmp_path):
    from tflite_int8 import convert

    keras_nhwc_onnx(tmp_path / "flat.onnx", into="reshape")
    np.save(tmp_path / "calib.npy", np.random.default_rng(0).standard_normal((12, 16, 16, 3)).astype(np.float32))
    with pytest.raises(InputError, match="declare it with --input-layout x:NHWC or x:NCHW"):
        convert(tmp_path / "flat.onnx", tmp_path / "refused", data=tmp_path / "calib.npy")
    conv = convert(tmp_path / "flat.onnx", tmp_path / "out", data=tmp_path / "calib.npy", input_layouts={"x": "NHWC"})
    assert conv.report["inputs"][0]["layout"] == "NHWC" and _full_integer_on_xnnpack(conv.int8_path)["inputs"][0][
        "shape"] == [1, 16, 16, 3]
    assert not any("read from the graph" in a for a in conv.report["adjustments"])  # declared, not read


def test_a_scalar_input_is_fixed_to_a_value_and_a_state_keeps_its_leading_2(tmp_path):
    """A VAD: audio [1, 32], state [2, 1, 8] fed (N, 2, 1, 8), sample rate sr a rank-0 int64 the graph branches on."""
    from tflite_int8 import Runner, convert

    vad_onnx(tmp_path / "vad.onnx")
    rng = np.random.default_rng(0)
    for split, n in (("calib", 16), ("held", 8)):
        np.savez(tmp_path / f"{split}.npz", x=rng.standard_normal((n, 32)).astype(np.float32),
                 state=(rng.standard_normal((n, 2, 1, 8)) * 0.5).astype(np.float32))
    with pytest.raises(InputError, match=r"input 'sr' of .*vad.onnx is a scalar \(rank 0\).*--input-value sr=VALUE"):
        convert(tmp_path / "vad.onnx", tmp_path / "refused", data=tmp_path / "calib.npz")
    conv = convert(tmp_path / "vad.onnx", tmp_path / "out", data=tmp_path / "calib.npz", input_values={"sr": 16000})
    assert [(i["name"], i["shape"]) for i in conv.report["inputs"]] == [("x", [1, 32]), ("state", [2, 1, 8])]
    assert "input 'sr' fixed to the constant 16000 (int64)" in conv.report["adjustments"][0]
    assert "folded: Equal x1, If x1" in conv.report["adjustments"][1]
    info = _full_integer_on_xnnpack(conv.int8_path)
    assert [i["shape"] for i in info["inputs"]] == [[1, 32], [2, 1, 8]]
    assert {n.op_type for n in onnx.load(str(conv.out_dir / "model.onnx")).graph.node}.isdisjoint({"If", "Equal"})
    _verified(conv.out_dir, tmp_path / "held.npz")
    held = np.load(tmp_path / "held.npz")
    got = Runner(conv.int8_path)(held["x"], held["state"])  # (N, 32) and (N, 2, 1, 8): N runs
    assert got["prob"].shape == (8, 1) and got["new_state"].shape == (8, 2, 1, 8)  # [1, 1] and [2, 1, 8] each
    import onnxruntime as ort

    session = ort.InferenceSession(str(conv.out_dir / "model.onnx"))  # sr folded in: x and state only
    ref = np.stack([session.run(["new_state"], {"x": held["x"][i:i + 1], "state": held["state"][i]})[0]
                    for i in range(8)])
    assert _cosine(got["new_state"], ref) > 0.99


def test_an_output_that_passes_an_input_through_is_kept_and_said(tmp_path):
    """A graph output that is an input (through Identity): kept, said in adjustments, and it is the input's bytes."""
    from onnx import numpy_helper

    from tflite_int8 import Runner, convert

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]), helper.make_node("Identity", ["x"], ["echo"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8]),
         helper.make_tensor_value_info("echo", TensorProto.FLOAT, [1, 3, 8, 8])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "echo.onnx")
    x = np.random.default_rng(1).standard_normal((16, 1, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    conv = convert(tmp_path / "echo.onnx", tmp_path / "out", data=tmp_path / "x.npy")
    said = [a for a in conv.report["adjustments"] if "passes input" in a]
    assert said == ["output 'echo' passes input 'x' through unchanged: kept, quantized with the input's own int8 "
                    "scale (drop it from the model if the app does not read it)"]
    runner = Runner(conv.int8_path)
    step = runner.inputs[0].scales[0]
    nhwc = x[:4, 0].transpose(0, 2, 3, 1)  # the .tflite's own layout
    got = runner(nhwc)
    assert [o.name for o in runner.outputs] == ["y", "echo"]
    assert np.abs(got["echo"] - nhwc).max() <= step / 2 + 1e-6  # the input back, one rounding


# -- integer inputs (token ids, masks): read from the model, fed as they are, never quantized ------------------

def _id_model(elem_type=TensorProto.INT64):
    """ids [1, 6] -> Gather on a float table -> [1, 6, 4]: the smallest embedding lookup."""
    table = helper.make_tensor("table", TensorProto.FLOAT, [10, 4], np.arange(40, dtype=np.float32).tolist())
    graph = helper.make_graph([helper.make_node("Gather", ["table", "ids"], ["y"])], "g",
                              [helper.make_tensor_value_info("ids", elem_type, ["n", 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 6, 4])], [table])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_an_integer_input_keeps_its_dtype_from_the_onnx_file_or_the_data(tmp_path):
    np.save(tmp_path / "ids.npy", np.arange(24).reshape(4, 6) % 10)
    assert declared_inputs(_id_model()) == [Declared("ids", ("n", 6), "int64")]
    table, _ = _resolve(declared_inputs(_id_model()), tmp_path / "ids.npy")
    assert table["ids"].dtype == "int64" and table["ids"].integer and table.to_list()[0]["dtype"] == "int64"
    torch_table, _ = _resolve([Declared("ids", None)], tmp_path / "ids.npy")  # a PyTorch input: its data's type
    assert torch_table["ids"].dtype == np.load(tmp_path / "ids.npy").dtype.name
    sample = next(iter(open_reader(tmp_path / "ids.npy", table, warn_few=False)))
    assert sample.x.dtype == np.int64 and sample.x.tolist() == [[0, 1, 2, 3, 4, 5]]  # as they are: no mean/std


def test_integer_data_is_checked_against_the_input(tmp_path):
    np.save(tmp_path / "float.npy", np.zeros((4, 6), np.float32))
    table, _ = _resolve(declared_inputs(_id_model()), tmp_path / "float.npy")  # the ONNX file says int64
    with pytest.raises(InputError, match=r"input 'ids' takes int64 values .* got float32"):
        open_reader(tmp_path / "float.npy", table, warn_few=False)
    np.save(tmp_path / "huge.npy", np.full((4, 6), 2 ** 40, np.int64))
    with pytest.raises(InputError, match=r"input 'ids' holds values outside int32"):
        open_reader(tmp_path / "huge.npy", table, warn_few=False)
    with pytest.raises(InputError, match=r"input 'ids' .* is a int64 input \(ids, masks: not photos\)"):
        _resolve(declared_inputs(_id_model()), [str(tmp_path / "a.jpg")])
    with pytest.raises(InputError, match=r"input 'ids' of m.onnx is uint64; inputs must be float or one of"):
        _resolve(declared_inputs(_id_model(TensorProto.UINT64)), tmp_path / "huge.npy")


@pytest.fixture(scope="module")
def encoder_conversion(tmp_path_factory):
    """tests.models:tiny_encoder exported to ONNX with int64 input_ids/attention_mask [1, 16] (dynamic batch, as
    sentence encoders ship), converted by the CLI from a .npz of token ids and padded masks."""
    from tests.models import tiny_encoder_onnx, token_batch
    from tflite_int8.cli import main

    d = tmp_path_factory.mktemp("encoder")
    np.savez(d / "calib.npz", **token_batch(24, seed=0))
    np.savez(d / "verify.npz", **token_batch(24, seed=1))
    tiny_encoder_onnx(d / "encoder.onnx")
    code = main(["convert", str(d / "encoder.onnx"), "-o", str(d / "out"), "--data", str(d / "calib.npz"),
                 "--variants", "float32"])
    return code, d


def test_a_sentence_encoder_with_int64_ids_converts_full_integer(encoder_conversion):
    import json

    code, d = encoder_conversion
    assert code == 0
    report = json.loads((d / "out" / "conversion.json").read_text())
    assert [(i["name"], i["dtype"]) for i in report["inputs"]] == [("input_ids", "int64"), ("attention_mask", "int64")]
    info = _full_integer_on_xnnpack(d / "out" / "model_int8.tflite")
    assert {i["name"]: (i["dtype"], i["scale"]) for i in info["inputs"]} == {
        "input_ids": ("int64", []), "attention_mask": ("int64", [])}  # integers as they are: no quantization
    assert info["input_casts"] == 1  # the mask, made int8 once for the arithmetic: no float op
    assert [i["dtype"] for i in info["feeding"]["inputs"]] == ["int64", "int64"]  # the file's own metadata
    assert report["stages"]["int8_check"]["outputs"]["embedding"]["cosine_min"] > 0.99


def test_the_runner_takes_token_ids_as_integers_and_refuses_floats(encoder_conversion):
    from tests.models import token_batch
    from tflite_int8 import Runner

    _, d = encoder_conversion
    runner = Runner(d / "out" / "model_int8.tflite")
    batch = token_batch(2, seed=2)
    out = runner.feed({k: v.astype(np.int32) for k, v in batch.items()})["embedding"]  # int32 ids are fine too
    assert out.shape == (2, 32) and np.isfinite(out).all()
    with pytest.raises(InputError, match=r"input 'input_ids' takes int64 values .* got float32"):
        runner.feed({"input_ids": batch["input_ids"].astype(np.float32), "attention_mask": batch["attention_mask"]})
    from tflite_int8 import ConversionError

    with pytest.raises(ConversionError, match=r"\[run\] model_int8.tflite: the TFLite interpreter failed to run it: "
                                              r".*GATHER"):  # an id beyond the vocabulary: one line, not a traceback
        runner.feed({"input_ids": batch["input_ids"] + 10**6, "attention_mask": batch["attention_mask"]})


def test_a_sentence_encoder_is_verified_by_embedding_cosine(encoder_conversion):
    _, d = encoder_conversion
    rep = _verified(d / "out", d / "verify.npz", task="raw")
    assert rep["outputs"]["embedding"]["cosine_min"] > 0.99
