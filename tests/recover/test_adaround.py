"""Activation-aware rounding (AdaRound + QDrop, block by block): the int8 file stores exactly the integers it chose,
with the converter's own per-channel scales, and runs as the rounding's int8 simulation says it will."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.models import TINY_SPEC
from tflite_int8 import Recipe, convert
from tflite_int8.data.images import list_images
from tflite_int8.data.readers import open_reader
from tflite_int8.recover.adaround import adaround, simulate
from tflite_int8.recover.onnx_torch import TorchGraph
from tflite_int8.runtime.adapter import Runner
from tflite_int8.runtime.metrics import step_agreement
from tflite_int8.runtime.reference import run_onnx

MSE = Recipe(ranges="mse")
LAYOUTS = {4: [(0, 2, 3, 1), (1, 2, 3, 0)], 2: [(0, 1)]}  # ONNX -> TFLite: conv OHWI, depthwise 1HWO; FC as is


def _samples(photos, which, views, seed=0):
    files = list_images(photos).paths[which]
    return [s.x for s in open_reader(files, TINY_SPEC, views=views, seed=seed, warn_few=False)]


@pytest.fixture(scope="module")
def rounded(tmp_path_factory, tiny_conversion, photos):
    folder = tmp_path_factory.mktemp("adaround")
    info = adaround(tiny_conversion.out_dir / "model.onnx", folder / "rounded.onnx",
                    _samples(photos, slice(0, None, 2), 4), iterations=150)
    return folder, info


def _tflite_weights(path):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    out = []
    for d in interp.get_tensor_details():
        qp = d["quantization_parameters"]
        if d["dtype"] == np.int8 and len(qp["scales"]) > 1:
            try:
                out.append((interp.get_tensor(d["index"]), qp["scales"]))
            except ValueError:  # not a constant
                continue
    return out


def test_the_int8_file_stores_exactly_our_integers_with_the_converters_scales(rounded, tiny_conversion, photos):
    folder, info = rounded
    model = onnx.load(str(folder / "rounded.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    weights = [inits[n.input[1]] for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
    assert info["layers"] == len(weights) == 4 and info["weights_rounded_the_other_way"] > 0
    conv = convert(folder / "rounded.onnx", folder / "out", spec=TINY_SPEC, data=photos, views=2, recipe=MSE)
    stored = _tflite_weights(conv.int8_path)
    for w in weights:
        scale = np.abs(w.reshape(w.shape[0], -1)).max(1) / 127.0
        ints = w / scale.reshape(-1, *[1] * (w.ndim - 1))
        assert np.allclose(ints, np.rint(ints), rtol=0, atol=1e-3)  # on the grid
        ints = np.rint(ints).astype(np.int8)
        matches = [(q, s) for q, s in stored for perm in LAYOUTS[w.ndim]
                   if q.shape == ints.transpose(perm).shape and np.array_equal(q, ints.transpose(perm))]
        assert len(matches) == 1, w.shape  # the converter did not re-round a single weight
        assert np.allclose(matches[0][1], scale, rtol=1e-6, atol=0)  # and derived the same scales


def test_the_int8_file_runs_as_the_rounding_simulated_it(rounded, photos):
    """The existing simulation-vs-real comparison (output quantization steps, as for QAT): the rounding's own
    int8 simulation of the rounded model (its fake-quant points at the converter's ranges) against the real int8
    file on samples neither calibrated on."""
    folder, _ = rounded
    out = folder / "out"
    if not out.exists():
        convert(folder / "rounded.onnx", out, spec=TINY_SPEC, data=photos, views=2, recipe=MSE)
    calibration = [s.x for s in open_reader(photos, TINY_SPEC, views=2, seed=0, warn_few=False)]  # convert's own
    held_out = _samples(photos, slice(1, None, 2), 4, seed=1)
    runner = Runner(out / "model_int8.tflite", TINY_SPEC, trusted=True)
    step = runner.outputs[0].scales[0]
    sim = simulate(folder / "rounded.onnx", calibration, held_out)
    diff = np.concatenate([(next(iter(runner(x).values())) - next(iter(s.values()))).ravel() / step
                           for x, s in zip(held_out, sim)])
    ref = np.concatenate([r[0].ravel() for r in run_onnx(folder / "rounded.onnx", held_out)])
    float_gap = step_agreement(np.concatenate([next(iter(runner(x).values())).ravel() for x in held_out]) / step
                               - ref / step)
    agree = step_agreement(diff)
    assert agree["within_1_step"] >= 0.95, agree
    assert agree["exact"] > float_gap["exact"], (agree, float_gap)  # closer to the int8 file than float is


def test_the_torch_graph_refuses_unknown_ops_by_name(tmp_path):
    from onnx import helper

    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Celu", ["x"], ["y"])], "g", [x], [y])
    from tflite_int8.errors import InputError

    with pytest.raises(InputError, match="Celu"):
        TorchGraph(helper.make_model(graph), "celu.onnx")


def test_recover_tries_adaround_only_when_named(tmp_path, photos):
    """Not in the default ladder (an hour on MobileNetV2 here); named, it runs and its row says what it did."""
    from tests.models import tiny
    from tflite_int8.recover import recover

    result = recover(tiny(), tmp_path / "r", spec=TINY_SPEC, data=photos, strategies=["adaround"],
                     rounding_iterations=20, thresholds={"sqnr_db": 50.0, "top1_agreement": None,
                                                         "top5_agreement": None})
    rows = result.attempts
    assert [a["strategy"] for a in rows] == ["baseline", "adaround"] and "error" not in rows[1], rows[1]
    assert rows[1]["how"].startswith("AdaRound block by block with int8 activations") and "20 steps each" in rows[1]["how"]
    assert rows[1]["full_integer"] and rows[1]["within_budget"]
