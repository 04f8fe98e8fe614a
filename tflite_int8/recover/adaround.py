"""Activation-aware weight rounding on TFLite's own int8 grid: AdaRound (Nagel et al., 2020) learned block by block
(BRECQ, Li et al., 2021) with the activations quantized as TFLite will quantize them, QDrop-style (Wei et al., 2022).

GPTQ (:mod:`.weight_rounding`) rounds each layer for the layer's float inputs; on MobileNetV2 that makes the weights
almost lossless, yet the int8 model still loses most of its accuracy to the 8-bit activations.  Here every weight's
rounding (up or down from its nearest step, AdaRound's soft-rounding variable annealed to 0 or 1) is learned so that
a *block* of the network (the nodes between two points where a single tensor carries everything, e.g. a residual
block) gives the float model's block output although its input comes from the already rounded, int8-activation
model and each activation inside it is fake-quantized with TFLite's arithmetic: per-tensor asymmetric int8, the
range the converter will use (``--ranges mse``: MSE-optimal, :func:`tflite_int8.convert.ranges.best_range`; inputs
and outputs min/max; sigmoid/softmax/tanh TFLite's fixed scales), at every tensor the int8 model requantizes (op
outputs, with a Conv/Gemm/Add's Relu/Clip fused into it).  QDrop: during the optimisation each activation (and the
block input) is quantized for a random half of its elements only, which keeps the learned rounding from
over-fitting the calibration samples' particular activation rounding.

The rounded weights are written back as float weights on the converter's per-channel grid: symmetric, scale
``max|w_c| / 127``, each channel's largest weight held at exactly +-127 steps and zeros kept zero, so the converter
derives the same scales and stores exactly these integers.  The converter's calibration (with MSE ranges) then
measures the ranges on the rounded model, as assumed here.  Entry: :func:`adaround`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..progress import Progress
from ..runtime.reference import onnx_feed
from .onnx_layers import attribute, weighted_layers
from .onnx_torch import TorchGraph

ITERATIONS = 200  # optimisation steps per block (MobileNetV2, 18 blocks: 59 min wall on 2 loaded cores, bench_adaround)
BATCH = 32
POSITIONS = 32 * 28 * 28  # per optimisation step at most this many images x feature-map positions
LAMBDA = 0.01  # weight of the rounding regulariser (AdaRound)
LR = 1e-3
GAMMA, ZETA = -0.1, 1.1  # AdaRound's rectified sigmoid stretch
FUSED = {"Relu", "Clip"}  # activations TFLite fuses into the op before them
PRODUCERS = {"Conv", "Gemm", "MatMul", "Add", "Sub", "Mul"}  # ops whose output may take a fused activation
SAME_SCALE = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "MaxPool", "GlobalMaxPool", "Identity",
              "Dropout", "Split", "Slice"}  # int8 ops that keep their input's scale: no requantization
FIXED = {"Sigmoid": (1 / 256, -128), "Softmax": (1 / 256, -128), "Tanh": (1 / 128, 0)}  # TFLite's fixed int8 outputs


@dataclass(frozen=True)
class Point:
    """An int8 tensor of the TFLite model: scale and zero point as the converter will derive them."""

    scale: float
    zero_point: int

    @classmethod
    def from_range(cls, lo: float, hi: float) -> "Point":
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        scale = (hi - lo) / 255.0 if hi > lo else 1.0
        return cls(scale, int(np.clip(np.round(-128 - lo / scale), -128, 127)))


def adaround(onnx_in: str | Path, onnx_out: str | Path, samples: Sequence[Any], *,
             iterations: int = ITERATIONS, seed: int = 0, progress: Progress | None = None) -> dict[str, Any]:
    """Write a copy of ``onnx_in`` whose Conv/Gemm weights are rounded block by block for the int8 model's
    activations (see the module docstring); ``samples``: arrays, or {input name: array}; returns a summary."""
    import onnx
    import torch
    from onnx import numpy_helper

    if not samples:
        raise InputError("activation-aware rounding needs at least one calibration sample")
    t = time.perf_counter()
    model = onnx.load(str(onnx_in))
    graph = TorchGraph(model, str(onnx_in))
    graph.check(model, samples[:2])
    layers = {n.output[0]: n for n in weighted_layers(model)}
    xf = {name: torch.from_numpy(np.concatenate([onnx_feed(graph.inputs, s)[name] for s in samples]))
          for name in graph.inputs}
    rng = np.random.default_rng(seed)
    points = _points(graph, xf)
    blocks = _blocks(graph, set(layers))
    weights = {n.input[1]: graph.consts[n.input[1]] for n in layers.values()}
    rounded: dict[str, torch.Tensor] = {}
    xq = {name: _fake_quant(v, points[name]) for name, v in xf.items()}
    bar = progress("activation-aware rounding: blocks", len(blocks)) if progress else None
    losses = []
    for block in blocks:
        state = {n.input[1]: _Rounding(weights[n.input[1]], _axis(n)) for n in (graph.nodes[i] for i in block)
                 if n.output[0] in layers}
        exits = _exits(graph, block, xf)
        with torch.no_grad():
            ff = _run(graph, block, xf, {}, None, exits)
        if state:
            losses.append(_learn(graph, block, state, xq, xf, ff, points, iterations, rng))
            rounded.update({w: s.hard() for w, s in state.items()})
        with torch.no_grad():
            xq = _run(graph, block, xq, rounded, lambda n, v: _fake_quant(v, points[n]) if n in points else v, exits)
        xf = ff
        if bar:
            bar.update()
    if bar:
        bar.close()
    inits = {i.name: i for i in model.graph.initializer}
    moved = 0
    for node in layers.values():
        w0, w = weights[node.input[1]], rounded[node.input[1]]
        step = _steps(w0, _axis(node))
        moved += int((torch.round(w / step) != torch.round(w0 / step)).sum())
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(w.numpy().astype(np.float32), node.input[1]))
    onnx.save(model, str(onnx_out))
    return {"layers": len(rounded), "blocks": len(blocks), "weights_rounded_the_other_way": moved,
            "activation_points": len(points), "iterations": iterations, "samples": len(samples),
            "final_loss": float(np.mean(losses)) if losses else 0.0, "seconds": round(time.perf_counter() - t, 1)}


def simulate(onnx_path: str | Path, calibration: Sequence[Any], samples: Sequence[Any]) -> list[dict[str, Any]]:
    """The int8 model as this rounding sees it: ``onnx_path`` run in PyTorch with every tensor the int8 file
    requantizes fake-quantized at the range measured on ``calibration`` (as :func:`adaround` assumes the converter
    derives it); one {output name: array} per sample of ``samples``.  What the real int8 file is compared with."""
    import onnx
    import torch

    graph = TorchGraph(onnx.load(str(onnx_path)), str(onnx_path))

    def batch(items: Sequence[Any]) -> dict[str, Any]:
        return {n: torch.from_numpy(np.concatenate([onnx_feed(graph.inputs, s)[n] for s in items]))
                for n in graph.inputs}

    points = _points(graph, batch(calibration))
    x = {n: _fake_quant(v, points[n]) for n, v in batch(samples).items()}
    with torch.no_grad():
        out = _run(graph, list(range(len(graph.nodes))), x, {},
                   lambda n, v: _fake_quant(v, points[n]) if n in points else v, graph.outputs)
    return [{n: out[n][k:k + 1].numpy() for n in graph.outputs} for k in range(len(samples))]


def _axis(node: Any) -> int:
    """The output-channel axis of a Conv/Gemm weight (TFLite quantizes per output channel)."""
    return 1 if node.op_type == "Gemm" and not attribute(node, "transB", 0) else 0


def _steps(w: Any, axis: int) -> Any:
    """Per-output-channel int8 step, shaped to broadcast against ``w``: max|w_c| / 127 (1 for an all-zero channel)."""
    import torch

    dims = [d for d in range(w.dim()) if d != axis]
    s = w.abs().amax(dim=dims, keepdim=True) / 127.0
    return torch.where(s == 0, torch.ones_like(s), s)


class _Rounding:
    """AdaRound's state for one weight: floor on the per-channel grid plus a learned 0/1 (soft while learning).
    Each channel's largest weight (exactly +-127 steps) and zeros are pinned to their nearest integer."""

    def __init__(self, w: Any, axis: int) -> None:
        import torch

        self.step = _steps(w, axis)
        steps = w / self.step
        self.floor = torch.floor(steps)
        rest = (steps - self.floor).clamp(1e-4, 1 - 1e-4)
        self.v = torch.nn.Parameter(-torch.log((ZETA - GAMMA) / (rest - GAMMA) - 1))
        self.nearest = torch.clamp(torch.round(steps), -127, 127)
        dims = [d for d in range(w.dim()) if d != axis]
        self.pin = (w == 0) | (w.abs() == w.abs().amax(dim=dims, keepdim=True))

    def _h(self) -> Any:
        import torch

        return torch.clamp(torch.sigmoid(self.v) * (ZETA - GAMMA) + GAMMA, 0, 1)

    def soft(self) -> Any:
        import torch

        q = torch.clamp(self.floor + self._h(), -127, 127)
        return torch.where(self.pin, self.nearest, q) * self.step

    def hard(self) -> Any:
        import torch

        q = torch.clamp(self.floor + (self.v >= 0).to(self.floor.dtype), -127, 127)
        return (torch.where(self.pin, self.nearest, q) * self.step).detach()

    def regulariser(self, beta: float) -> Any:
        return (1 - (2 * self._h() - 1).abs().pow(beta))[~self.pin].sum()


def _learn(graph: TorchGraph, block: list[int], state: dict[str, _Rounding], xq: dict, xf: dict, ff: dict,
           points: dict[str, Point], iterations: int, rng: np.random.Generator) -> float:
    """AdaRound + QDrop on one block: float targets, quantized-model inputs; returns the last reconstruction loss."""
    import torch

    opt = torch.optim.Adam([s.v for s in state.values()], lr=LR)
    first = next(iter(xq.values()))
    n = first.shape[0]
    batch = min(n, BATCH, max(2, POSITIONS // int(np.prod(first.shape[2:]))))  # big feature maps: fewer images
    scale = {e: float(t.pow(2).mean()) or 1.0 for e, t in ff.items()}  # errors relative to the target's size
    warm = int(0.2 * iterations)
    rec = torch.zeros(())

    quant = _drop_quant()

    def drop(name: str, value: Any) -> Any:
        return quant.apply(value, points[name], _mask(value.shape, rng)) if name in points else value

    with torch.enable_grad():
        for it in range(iterations):
            idx = torch.from_numpy(rng.integers(0, n, batch))
            entry = {}
            for k, v in xq.items():  # QDrop at the block's input too: half the elements from the float model
                quantized = v[idx]
                entry[k] = torch.lerp(xf[k][idx], quantized, _mask(quantized.shape, rng).to(quantized.dtype))
            out = _run(graph, block, entry, {w: s.soft() for w, s in state.items()}, drop, list(ff))
            rec = sum(_error(out[e], ff[e][idx]) / scale[e] for e in ff)
            loss = rec
            if it >= warm:
                beta = 20 + (2 - 20) * (it - warm) / max(iterations - warm, 1)
                loss = rec + LAMBDA * sum(s.regulariser(beta) for s in state.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
    return float(rec.detach())


def _drop_quant() -> Any:
    """QDrop's fake quantization as one autograd op, ``apply(x, point, mask)``: where ``mask`` is 1 the element is
    quantized with TFLite's int8 arithmetic, elsewhere it stays float; the gradient passes straight through the
    rounding, not through the clipping."""
    import torch

    class DropQuant(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, p: Point, mask: Any) -> Any:
            lo, hi = -128 - p.zero_point, 127 - p.zero_point
            q = torch.round(x * (1.0 / p.scale))
            ctx.save_for_backward(((q < lo) | (q > hi)) & mask)  # quantized and clipped: no gradient
            return torch.lerp(x, q.clamp_(lo, hi).mul_(p.scale), mask.to(x.dtype))

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            (blocked,) = ctx.saved_tensors
            return grad.masked_fill(blocked, 0.0), None, None

    return DropQuant


def _mask(shape: Any, rng: np.random.Generator) -> Any:
    """A boolean tensor, each element True with probability 1/2 (random bytes, 8 elements per byte: ~20x faster
    than torch.rand)."""
    import torch

    n = int(np.prod(shape))
    bits = np.unpackbits(np.frombuffer(rng.bytes((n + 7) // 8), np.uint8), count=n)
    return torch.from_numpy(bits.view(np.bool_).reshape(shape))


def _error(a: Any, b: Any) -> Any:
    """Squared error summed over channels (axis 1), averaged over the rest (BRECQ's reconstruction loss)."""
    d = (a - b).pow(2)
    return d.sum(1).mean() if d.dim() > 1 else d.mean()


def _run(graph: TorchGraph, block: list[int], env: dict, params: dict, hook: Any, keep: list[str]) -> dict:
    """The block's nodes on ``env``; the tensors in ``keep`` (in chunks when not learning, to bound memory)."""
    import torch

    if torch.is_grad_enabled():
        out = graph.run(env, block, params=params, hook=hook)
        return {k: out[k] for k in keep}
    n = next(iter(env.values())).shape[0]
    parts = [graph.run({k: v[i:i + BATCH] for k, v in env.items()}, block, params=params, hook=hook)
             for i in range(0, n, BATCH)]
    return {k: torch.cat([p[k] for p in parts]) for k in keep}


def _exits(graph: TorchGraph, block: list[int], entry: dict) -> list[str]:
    """The tensors (entering or made in the block) still needed after it: by a later node or as a graph output."""
    later = {name for node in graph.nodes[block[-1] + 1:] for name in node.input} | set(graph.outputs)
    made = [o for i in block for o in graph.nodes[i].output]
    return [k for k in [*entry, *made] if k in later]


def _fake_quant(x: Any, p: Point, ste: bool = False) -> Any:
    """TFLite's int8 quantize-dequantize (round half to even, as XNNPACK's rint); ``ste``: gradient passes through."""
    import torch

    q = torch.clamp(torch.round(x * (1.0 / p.scale)), -128 - p.zero_point, 127 - p.zero_point)
    out = q * p.scale
    return x + (out - x).detach() if ste else out


def _points(graph: TorchGraph, x: dict[str, Any]) -> dict[str, Point]:
    """Every tensor the int8 model requantizes, with the scale and zero point the converter will give it
    (measured on the float model: min/max for the input and outputs, MSE-optimal ranges inside)."""
    import torch

    from ..convert.ranges import BINS, best_range

    consumers: dict[str, list[Any]] = {}
    for node in graph.nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    names = list(graph.inputs)
    fixed = {}
    for node in graph.nodes:
        for out in node.output:
            users = consumers.get(out, [])
            if node.op_type in SAME_SCALE or (node.op_type in PRODUCERS and len(users) == 1
                                               and users[0].op_type in FUSED and out not in graph.outputs):
                continue
            if node.op_type in FIXED:
                fixed[out] = Point(*FIXED[node.op_type])
            else:
                names.append(out)
    lo = {n: np.inf for n in names}
    hi = {n: -np.inf for n in names}

    def record(name: str, value: Any) -> Any:
        if name in lo:
            lo[name], hi[name] = min(lo[name], float(value.min())), max(hi[name], float(value.max()))
        return value

    hist = {n: np.zeros(BINS) for n in names}

    def histogram(name: str, value: Any) -> Any:
        if name in hist and hi[name] > lo[name]:
            v = value.reshape(-1).numpy()
            hist[name] += np.histogram(v[v != 0], BINS, (lo[name], hi[name]))[0]
        return value

    n = next(iter(x.values())).shape[0]
    with torch.no_grad():
        for fn in (record, histogram):
            for i in range(0, n, BATCH):
                xb = {k: v[i:i + BATCH] for k, v in x.items()}
                for k, v in xb.items():
                    fn(k, v)
                graph.run(xb, hook=fn)
    ends = {*graph.inputs, *graph.outputs}
    out = dict(fixed)
    for n in names:
        a, b = (lo[n], hi[n]) if n in ends or hi[n] <= lo[n] else best_range(hist[n], lo[n], hi[n])
        out[n] = Point.from_range(a, b)
    return out


def _blocks(graph: TorchGraph, layer_outputs: set[str], min_layers: int = 3) -> list[list[int]]:
    """The nodes cut where a single tensor carries everything onward, segments merged until each block holds
    ``min_layers`` weighted layers (a residual block of MobileNetV2: expand, depthwise, project)."""
    last_use: dict[str, int] = {}
    for i, node in enumerate(graph.nodes):
        for name in node.input:
            last_use[name] = i
    for name in graph.outputs:
        last_use[name] = len(graph.nodes)
    blocks, current, count, live = [], [], 0, set(graph.inputs)
    for i, node in enumerate(graph.nodes):
        current.append(i)
        count += node.output[0] in layer_outputs
        live = {t for t in live | set(node.output) if last_use.get(t, -1) > i}
        if len(live) == 1 and count >= min_layers:
            blocks.append(current)
            current, count = [], 0
    if current:
        blocks.append(current)
    return blocks
