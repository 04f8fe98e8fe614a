"""What the float-weight transforms share: the Conv/Gemm layers with constant weights of an ONNX graph,
and the inputs those layers see on real data (ONNX Runtime, one sample at a time)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..runtime.reference import onnx_feed


def weighted_layers(model: Any) -> list[Any]:
    """Conv and Gemm nodes whose weight is an initializer (what the converter quantizes per channel)."""
    inits = {i.name for i in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type in ("Conv", "Gemm") and len(n.input) > 1 and n.input[1] in inits]


def attribute(node: Any, name: str, default: Any) -> Any:
    """An ONNX node attribute's value (a list for ints, bytes for a string), or ``default``."""
    import onnx

    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def layer_inputs(onnx_model: str | Path | Any, names: Sequence[str], samples: Sequence[Any]
                 ) -> Iterator[dict[str, np.ndarray]]:
    """For each sample (an array, or {input name: array}), the value of every tensor in ``names`` (made graph
    outputs of a probe copy of the ONNX file or in-memory ``ModelProto``)."""
    import onnx
    import onnxruntime as ort

    if isinstance(onnx_model, onnx.ModelProto):
        probe = onnx.ModelProto()
        probe.CopyFrom(onnx_model)
    else:
        probe = onnx.load(str(onnx_model))
    have = {o.name for o in probe.graph.output}
    for name in names:
        if name not in have:
            probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
            have.add(name)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    outs = [o.name for o in sess.get_outputs()]
    feed = [i.name for i in sess.get_inputs()]
    wanted = set(names)
    for x in samples:
        values = sess.run(None, onnx_feed(feed, x))
        yield {n: v for n, v in zip(outs, values) if n in wanted}


def channel_mean(value: np.ndarray) -> np.ndarray:
    """A tensor's mean per channel (axis 1 of NCHW, the last axis of a (N, features) Gemm tensor), float64."""
    return value.astype(np.float64).mean(axis=(0,) + tuple(range(2, value.ndim)))
