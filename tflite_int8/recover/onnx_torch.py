"""An ONNX graph run in PyTorch: float32, batched, differentiable — what activation-aware rounding optimises through.

:class:`TorchGraph` runs a static-shape ONNX graph (one image input, batch 1 as exported) on a batch of samples,
node range by node range, with a hook after every node output (where the rounding puts TFLite's activation
quantization) and weights that may be replaced by tensors being optimised.  The ops it knows are the table
:data:`OPS` (those of common CNNs and detectors); a graph with any other op is refused with the op's name, and
``check`` compares the batched run with ONNX Runtime before anything relies on it.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..errors import InputError
from .onnx_layers import attribute


def _ints(t: Any) -> list[int]:
    return [int(v) for v in t.reshape(-1).tolist()]


def _conv(x: Any, w: Any, b: Any = None, *, node: Any) -> Any:
    import torch.nn.functional as F

    k = w.dim() - 2
    pads = attribute(node, "pads", [0] * 2 * k)
    if attribute(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise InputError(f"Conv {node.name}: auto_pad is not supported by activation-aware rounding")
    x = F.pad(x, [p for i in reversed(range(k)) for p in (pads[i], pads[i + k])])
    fn = F.conv1d if k == 1 else F.conv2d
    return fn(x, w, b, attribute(node, "strides", [1] * k), 0, attribute(node, "dilations", [1] * k),
              attribute(node, "group", 1))


def _gemm(a: Any, b: Any, c: Any = None, *, node: Any) -> Any:
    a = a.transpose(-1, -2) if attribute(node, "transA", 0) else a
    b = b.transpose(-1, -2) if attribute(node, "transB", 0) else b
    y = attribute(node, "alpha", 1.0) * (a @ b)
    return y if c is None else y + attribute(node, "beta", 1.0) * c


def _clip(x: Any, lo: Any = None, hi: Any = None, *, node: Any) -> Any:
    import torch
    import torch.nn.functional as F

    lo = attribute(node, "min", None) if lo is None else float(lo)
    hi = attribute(node, "max", None) if hi is None else float(hi)
    if lo is not None and hi is not None:
        return F.hardtanh(x, lo, hi)  # ReLU6; its backward is one pass (clamp's goes through a slow where)
    return torch.clamp(x, lo, hi)


def _pool(x: Any, *, node: Any, kind: str) -> Any:
    import torch.nn.functional as F

    k = attribute(node, "kernel_shape", [1, 1])
    pads = attribute(node, "pads", [0] * 2 * len(k))
    strides = attribute(node, "strides", [1] * len(k))
    ceil = bool(attribute(node, "ceil_mode", 0))
    if kind == "max":
        x = F.pad(x, [p for i in reversed(range(len(k))) for p in (pads[i], pads[i + len(k)])], value=float("-inf"))
        return F.max_pool2d(x, k, strides, 0, attribute(node, "dilations", [1] * len(k)), ceil)
    if pads[:len(k)] != pads[len(k):]:
        raise InputError(f"AveragePool {node.name}: asymmetric padding is not supported by activation-aware rounding")
    return F.avg_pool2d(x, k, strides, pads[:len(k)], ceil, bool(attribute(node, "count_include_pad", 0)))


def _reduce_mean(x: Any, axes: Any = None, *, node: Any) -> Any:
    dims = attribute(node, "axes", None) if axes is None else _ints(axes)
    dims = list(range(x.dim())) if dims is None else dims
    return x.mean(dim=dims, keepdim=bool(attribute(node, "keepdims", 1)))


def _reshape(x: Any, shape: Any, *, node: Any) -> Any:
    s = _ints(shape)
    if s and s[0] == 1 and x.shape[0] != 1:  # the exported batch of 1 is the run's batch
        s[0] = x.shape[0]
    s = [x.shape[i] if v == 0 and not attribute(node, "allowzero", 0) else v for i, v in enumerate(s)]
    return x.reshape(s)


def _slice(x: Any, starts: Any, ends: Any, axes: Any = None, steps: Any = None, *, node: Any) -> Any:
    starts, ends = _ints(starts), _ints(ends)
    axes = _ints(axes) if axes is not None else list(range(len(starts)))
    steps = _ints(steps) if steps is not None else [1] * len(starts)
    index = [slice(None)] * x.dim()
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st != 1 and st < 0:
            raise InputError(f"Slice {node.name}: negative steps are not supported by activation-aware rounding")
        index[a] = slice(s, min(e, x.shape[a]) if e > 0 else e, st)
    return x[tuple(index)]


def _split(x: Any, split: Any = None, *, node: Any) -> tuple:
    axis = attribute(node, "axis", 0)
    sizes = _ints(split) if split is not None else attribute(node, "split", None)
    if sizes is None:
        n = len(node.output)
        sizes = [x.shape[axis] // n] * n
    return tuple(x.split(sizes, dim=axis))


def _resize(x: Any, roi: Any = None, scales: Any = None, sizes: Any = None, *, node: Any) -> Any:
    import torch.nn.functional as F

    mode = attribute(node, "mode", b"nearest").decode()
    if sizes is not None and sizes.numel():
        size = _ints(sizes)[2:]
    else:
        size = [int(round(d * float(s))) for d, s in zip(x.shape[2:], scales.reshape(-1).tolist()[2:])]
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    align = attribute(node, "coordinate_transformation_mode", b"half_pixel") == b"align_corners"
    return F.interpolate(x, size=size, mode="bilinear", align_corners=align)


def _unsqueeze(x: Any, axes: Any = None, *, node: Any) -> Any:
    for a in sorted(attribute(node, "axes", None) if axes is None else _ints(axes)):
        x = x.unsqueeze(a)
    return x


def _squeeze(x: Any, axes: Any = None, *, node: Any) -> Any:
    dims = attribute(node, "axes", None) if axes is None else _ints(axes)
    return x.squeeze() if dims is None else x.squeeze(tuple(dims))


def _batch_norm(x: Any, scale: Any, bias: Any, mean: Any, var: Any, *, node: Any) -> Any:
    shape = (1, -1) + (1,) * (x.dim() - 2)
    inv = scale / (var + attribute(node, "epsilon", 1e-5)).sqrt()
    return (x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)


def _ops() -> dict[str, Callable[..., Any]]:
    import torch
    import torch.nn.functional as F

    return {
        "Conv": _conv, "Gemm": _gemm, "MatMul": lambda a, b, node: a @ b,
        "Add": lambda a, b, node: a + b, "Sub": lambda a, b, node: a - b, "Mul": lambda a, b, node: a * b,
        "Div": lambda a, b, node: a / b, "Pow": lambda a, b, node: a ** b, "Sqrt": lambda x, node: x.sqrt(),
        "Neg": lambda x, node: -x, "Exp": lambda x, node: x.exp(), "Erf": lambda x, node: torch.erf(x),
        "Relu": lambda x, node: F.relu(x), "Clip": _clip, "Sigmoid": lambda x, node: torch.sigmoid(x),
        "Tanh": lambda x, node: torch.tanh(x),
        "HardSigmoid": lambda x, node: torch.clamp(attribute(node, "alpha", 0.2) * x + attribute(node, "beta", 0.5),
                                                   0, 1),
        "HardSwish": lambda x, node: F.hardswish(x),
        "LeakyRelu": lambda x, node: F.leaky_relu(x, attribute(node, "alpha", 0.01)),
        "PRelu": lambda x, slope, node: torch.where(x >= 0, x, x * slope),
        "Softmax": lambda x, node: torch.softmax(x, attribute(node, "axis", -1)),
        "GlobalAveragePool": lambda x, node: x.mean(dim=tuple(range(2, x.dim())), keepdim=True),
        "GlobalMaxPool": lambda x, node: x.amax(dim=tuple(range(2, x.dim())), keepdim=True),
        "AveragePool": lambda x, node: _pool(x, node=node, kind="avg"),
        "MaxPool": lambda x, node: _pool(x, node=node, kind="max"),
        "ReduceMean": _reduce_mean, "BatchNormalization": _batch_norm,
        "Flatten": lambda x, node: x.flatten(attribute(node, "axis", 1)) if attribute(node, "axis", 1) > 0 else
        x.reshape(1, -1),
        "Reshape": _reshape, "Transpose": lambda x, node: x.permute(attribute(node, "perm", None)),
        "Concat": lambda *xs, node: torch.cat(xs, attribute(node, "axis", 0)),
        "Split": _split, "Slice": _slice, "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Resize": _resize,
        "Identity": lambda x, node: x, "Dropout": lambda x, *rest, node: x,
    }


OPS = ("Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Neg", "Exp", "Erf", "Relu", "Clip",
       "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "PRelu", "Softmax", "GlobalAveragePool",
       "GlobalMaxPool", "AveragePool", "MaxPool", "ReduceMean", "BatchNormalization", "Flatten", "Reshape",
       "Transpose", "Concat", "Split", "Slice", "Squeeze", "Unsqueeze", "Resize", "Identity", "Dropout")

Hook = Callable[[str, Any], Any]


class TorchGraph:
    """``model`` (an onnx.ModelProto) as PyTorch: :meth:`run` evaluates a range of its nodes on a batch."""

    def __init__(self, model: Any, source: str = "the ONNX model") -> None:
        import torch
        from onnx import numpy_helper

        self.nodes = [n for n in model.graph.node if n.op_type != "Constant"]
        unknown = sorted({n.op_type for n in self.nodes} - set(OPS))
        if unknown:
            raise InputError(f"{source}: activation-aware rounding cannot run op(s) {', '.join(unknown)} in PyTorch "
                             f"(it knows {', '.join(OPS)}); use the weight-rounding strategy for this model")
        self.consts = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in model.graph.initializer}
        for n in model.graph.node:
            if n.op_type == "Constant":
                self.consts[n.output[0]] = torch.from_numpy(numpy_helper.to_array(n.attribute[0].t).copy())
        self.inputs = [i.name for i in model.graph.input if i.name not in self.consts]
        self.outputs = [o.name for o in model.graph.output]
        self._ops = _ops()

    def run(self, env: Mapping[str, Any], nodes: Iterable[int] | None = None, *,
            params: Mapping[str, Any] | None = None, hook: Hook | None = None) -> dict[str, Any]:
        """Evaluate ``nodes`` (indices into :attr:`nodes`, default all) from the tensors in ``env``; returns the
        environment grown by every output.  ``params`` replace initializers; ``hook(name, value)`` may replace
        each node output as it is made."""
        env = dict(env)
        params = params or {}
        for i in (range(len(self.nodes)) if nodes is None else nodes):
            node = self.nodes[i]
            args = [None if not name else params[name] if name in params else
                    env[name] if name in env else self.consts[name] for name in node.input]
            while args and args[-1] is None:
                args.pop()
            out = self._ops[node.op_type](*args, node=node)
            for name, value in zip(node.output, out if isinstance(out, tuple) else (out,)):
                env[name] = hook(name, value) if hook is not None else value
        return env

    def check(self, onnx_model: Any, samples: Sequence[Any]) -> float:
        """Largest relative difference between this batched run and ONNX Runtime on ``samples``' outputs (arrays,
        or {input name: array}); InputError when the two disagree (a reshape that does not batch, an op read
        differently)."""
        import torch

        from ..runtime.reference import onnx_feed
        from .onnx_layers import layer_inputs

        feeds = [onnx_feed(self.inputs, s) for s in samples]
        with torch.no_grad():
            got = self.run({n: torch.from_numpy(np.concatenate([f[n] for f in feeds])) for n in self.inputs})
        worst = 0.0
        for k, ref in enumerate(layer_inputs(onnx_model, self.outputs, samples)):
            for name in self.outputs:
                a, b = got[name][k:k + 1].numpy(), ref[name]
                worst = max(worst, float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12)))
        if worst > 1e-3:
            raise InputError(f"activation-aware rounding: the PyTorch run of the graph differs from ONNX Runtime "
                             f"(relative {worst:.2g}); use the weight-rounding strategy for this model")
        return worst
