"""The maintained peer for activation-aware rounding: aimet-onnx's AdaRound and SeqMSE on our exported ONNX.

aimet's QuantizationSimModel is set up for TFLite's grids: per-channel symmetric weights on [-127, 127]
("strict_symmetric", so a channel's scale is max|w_c| / 127 as the TF converter derives it), per-tensor
asymmetric int8 activations.  Activation encodings are computed first, so AdaRound's layer inputs come from the
quantized model (weights rounded so far, activations int8), as in our own rounding.  The rounded weights are folded
into the float initializers (``fold_param_quantizers``) and copied into the original ONNX, which our pipeline then
converts like any other.
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def _config(folder: Path) -> str:
    import aimet_onnx.common.quantsim_config as qc

    cfg = json.loads((Path(qc.__file__).parent / "default_config_per_channel.json").read_text())
    cfg["defaults"]["strict_symmetric"] = "True"
    path = folder / "tflite_like.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def round_with_aimet(onnx_in: str | Path, onnx_out: str | Path, samples: Sequence[np.ndarray], method: str,
                     iterations: int = 500) -> dict[str, Any]:
    """``method`` "adaround" or "seqmse": write ``onnx_out`` (the float model with aimet's rounded weights)."""
    import onnx
    from aimet_onnx import QuantizationSimModel, apply_adaround, apply_seq_mse, int8
    from onnx import numpy_helper

    model = onnx.load(str(onnx_in))
    name = model.graph.input[0].name
    feeds = [{name: np.asarray(s, np.float32)} for s in samples]
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aimet-") as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # aimet writes scratch files into the working directory
        try:
            sim = QuantizationSimModel(copy.deepcopy(model), param_type=int8, activation_type=int8,
                                       quant_scheme="min_max", config_file=_config(Path(tmp)),
                                       providers=["CPUExecutionProvider"])
            sim.compute_encodings(feeds)  # activation encodings first: AdaRound then sees quantized inputs
            if method == "adaround":
                apply_adaround(sim, feeds, num_iterations=iterations)
            elif method == "seqmse":
                apply_seq_mse(sim, feeds, num_candidates=20)
            else:
                raise ValueError(method)
            sim.fold_param_quantizers()
            folded = {i.name: numpy_helper.to_array(i) for i in sim.model.model.graph.initializer}
        finally:
            os.chdir(cwd)
    seconds = time.perf_counter() - t
    weights = {n.input[1] for n in model.graph.node if n.op_type in ("Conv", "Gemm")}
    for init in model.graph.initializer:
        if init.name in weights and init.name in folded:
            init.CopyFrom(numpy_helper.from_array(folded[init.name].astype(np.float32), init.name))
    onnx.save(model, str(onnx_out))
    return {"method": method, "iterations": iterations if method == "adaround" else None,
            "seconds": round(seconds, 1)}


def weights_off_grid(onnx_path: str | Path) -> int:
    """Conv/Gemm weights (output channels on axis 0) not on TFLite's per-channel grid max|w_c| / 127: the
    converter would re-round them."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    weights = {n.input[1] for n in model.graph.node if n.op_type in ("Conv", "Gemm")}
    off = 0
    for init in model.graph.initializer:
        if init.name in weights:
            flat = numpy_helper.to_array(init).astype(np.float32).reshape(init.dims[0], -1)
            step = np.abs(flat).max(1, keepdims=True) / 127.0
            steps = flat / np.where(step == 0, 1, step)
            off += int((np.abs(steps - np.rint(steps)) > 1e-3).sum())
    return off
