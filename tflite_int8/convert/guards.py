"""Model-state guards: never quantize a model twice; take quantization-aware models as they are; fold pruning.

``check_onnx`` and ``check_module`` say whether a model is ``"float"`` or quantization-aware (``"qat"``:
QuantizeLinear/DequantizeLinear pairs in ONNX, fake-quant modules after ``torch.ao`` ``prepare_qat``),
and refuse models that are already integer (QLinear*/ConvInteger/MatMulInteger ops, integer weights
not behind a DequantizeLinear, dynamic quantization; quantized modules or tensors, observers without
fake-quant) with an :class:`AlreadyQuantizedError` that says what was found and what to do.
``freeze_fake_quant`` makes a QAT module exportable (observers off, fused observer+fake-quant modules
as plain fake-quant with their learned scales), on a copy.  ``fold_pruning`` makes
``torch.nn.utils.prune`` reparametrisations permanent (weight = weight_orig * weight_mask), so the
exported graph and the weights report see the pruned weights themselves.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from ..errors import AlreadyQuantizedError
from ..runtime.describe import counts_text

FAKE_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear"}
QUANTIZED_ONNX_OPS = {
    "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
    "MatMulInteger", "QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearConcat",
    "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearSoftmax", "QGemm", "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat", "QAttention",
}
INT_WEIGHT_TYPES = {2: "uint8", 3: "int8", 4: "uint16", 5: "int16"}  # onnx.TensorProto data types
ADVICE = AlreadyQuantizedError.ADVICE


def check_onnx(model: Any, source: str) -> str:
    """``"float"`` or ``"qat"`` (fake-quant pairs); AlreadyQuantizedError for integer ops or integer weights."""
    ops = Counter(n.op_type for n in model.graph.node if n.op_type in QUANTIZED_ONNX_OPS)
    dequantized = {n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    consumed = {name for n in model.graph.node
                if n.op_type in ("Conv", "Gemm", "MatMul", "ConvTranspose") for name in n.input[1:2]}
    int_weights = [i.name for i in model.graph.initializer if i.data_type in INT_WEIGHT_TYPES
                   and i.name not in dequantized and (i.name in consumed or len(i.dims) >= 2)]
    if ops or int_weights:
        found = [counts_text(ops)] if ops else []
        if int_weights:
            found.append(f"{len(int_weights)} integer weight tensor(s) (e.g. '{int_weights[0]}')")
        raise AlreadyQuantizedError(f"{source} is already quantized: it holds {', '.join(found)}. {ADVICE}")
    return "qat" if any(n.op_type in FAKE_QUANT_OPS for n in model.graph.node) else "float"


QUANTIZED_MODULES = ("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized", "torch.nn.quantized")
QAT_MODULES = ("torch.ao.nn.qat", "torch.ao.nn.intrinsic.qat", "torch.nn.qat", "torch.nn.intrinsic.qat")


def check_module(module: Any, source: str) -> str:
    """``"float"`` or ``"qat"`` (fake-quant modules); AlreadyQuantizedError for quantized modules or tensors,
    and for observers without fake-quant (a model prepared for post-training quantization)."""
    import torch

    found: Counter = Counter()
    example = ""
    fake = observers = 0
    float_ops = (torch.ao.nn.quantized.FloatFunctional, torch.ao.nn.quantized.FXFloatFunctional)  # float math
    inside_fake = {id(sub) for m in module.modules() if isinstance(m, torch.ao.quantization.FakeQuantizeBase)
                   for sub in m.modules()}
    for name, m in module.named_modules():
        fake += isinstance(m, torch.ao.quantization.FakeQuantizeBase)
        if isinstance(m, torch.ao.quantization.ObserverBase) and id(m) not in inside_fake:
            observers += 1
            example = example or f"{name}: {type(m).__name__}"
        if type(m).__module__.startswith(QUANTIZED_MODULES) and not isinstance(m, float_ops):
            found["quantized module"] += 1
            example = example or f"{name or '(root)'}: {type(m).__name__}"
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if t.is_quantized:
            found["quantized tensor"] += 1
            example = example or f"{name}: {t.dtype}"
    if found:
        what = ", ".join(f"{v} {k}(s)" for k, v in found.items())
        raise AlreadyQuantizedError(f"{source} is already quantized: {what} (e.g. {example}). {ADVICE}; for a "
                                    f"QAT model, convert it before torch.ao.quantization.convert (with its "
                                    f"fake-quant modules), or the float model it was trained from")
    if observers:
        raise AlreadyQuantizedError(f"{source} holds {observers} observer(s) without fake-quant (e.g. {example}): a "
                                    f"model prepared for PyTorch's post-training quantization. Give the float model "
                                    f"(this tool calibrates it), or a quantization-aware one (prepare_qat, then "
                                    f"fine-tune)")
    return "qat" if fake else "float"


def freeze_fake_quant(module: Any) -> tuple[Any, list[str]]:
    """A copy of a QAT module fit for ONNX export: every fake-quant module replaced by a plain fake-quant with
    its learned scale and zero point (observers off: export must not move the scales)."""
    import copy

    import torch

    module = copy.deepcopy(module).eval()
    frozen: dict[int, Any] = {}  # one replacement per module: a module shared by two names stays shared
    for name, child in list(module.named_modules(remove_duplicate=False)):
        if isinstance(child, torch.ao.quantization.FakeQuantizeBase):
            parent, _, attr = name.rpartition(".")
            setattr(module.get_submodule(parent), attr, frozen.setdefault(id(child), _frozen(child)))
    count = len(frozen)
    return module, [f"{count} fake-quant module(s) exported with their learned scales and zero points, observers "
                    f"off (on a copy; your module is unchanged)"]


def _frozen(fq: Any) -> Any:
    import torch

    class FrozenFakeQuant(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("scale", fq.scale.detach().clone().float())
            self.register_buffer("zero_point", fq.zero_point.detach().clone().int())
            qmin, qmax = int(fq.quant_min), int(fq.quant_max)
            self.qmin, self.qmax = _onnx_range(qmin, qmax)
            self.axis = int(fq.ch_axis) if fq.is_per_channel else None
            self.enabled = bool(fq.fake_quant_enabled[0])
            self.bounds = None  # a range ONNX cannot say (e.g. TFLite's symmetric -127..127): clamp first
            if (qmin, qmax) != (self.qmin, self.qmax):
                self.bounds = tuple((q - self.zero_point.float()) * self.scale for q in (qmin, qmax))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.enabled:
                return x
            if self.bounds is not None:
                lo, hi = (b.reshape([-1 if d == self.axis else 1 for d in range(x.dim())]) if self.axis is not None
                          else b.reshape(()) for b in self.bounds)
                x = torch.minimum(torch.maximum(x, lo), hi)
            if self.axis is not None:
                return torch.fake_quantize_per_channel_affine(x, self.scale, self.zero_point, self.axis, self.qmin,
                                                              self.qmax)
            return torch.fake_quantize_per_tensor_affine(x, float(self.scale), int(self.zero_point), self.qmin,
                                                         self.qmax)

    return FrozenFakeQuant()


ONNX_RANGES = ((0, 127), (0, 255), (-128, 127))  # the fake-quant ranges torch.onnx.export can write


def _onnx_range(qmin: int, qmax: int) -> tuple[int, int]:
    """The smallest exportable range holding ``qmin..qmax`` (-127..127 -> -128..127, with a clamp before)."""
    return next((r for r in ONNX_RANGES if r[0] <= qmin and qmax <= r[1]), (qmin, qmax))


def fold_pruning(module: Any) -> tuple[Any, list[str]]:
    """Pruning masks made permanent, on a copy (the caller's module keeps its masks); one line per tensor."""
    import copy

    from torch.nn.utils import prune

    def pruned(m: Any) -> list[Any]:
        return [h for h in getattr(m, "_forward_pre_hooks", {}).values() if isinstance(h, prune.BasePruningMethod)]

    if not any(pruned(m) for m in module.modules()):
        return module, []
    memo: dict[int, Any] = {}  # the masked weights are computed (non-leaf) tensors: copy them detached
    for m in module.modules():
        for hook in pruned(m):
            t = getattr(m, hook._tensor_name)
            memo[id(t)] = t.detach().clone()
    module = copy.deepcopy(module, memo)
    folded = []
    for name, m in module.named_modules():
        for hook in pruned(m):
            prune.remove(m, hook._tensor_name)
            folded.append(f"pruning mask of {name or '(root)'}.{hook._tensor_name} folded into the weights "
                          f"(on a copy; your module is unchanged)")
    return module, folded
