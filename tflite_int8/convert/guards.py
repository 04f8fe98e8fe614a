"""Model-state guards: never quantize a model twice; fold pruning before export.

``check_onnx_float`` and ``check_module_float`` refuse inputs that are already quantized (Q/DQ or
QLinear*/integer ops, int8 weights; fake-quant/observer modules or quantized tensors) with an
:class:`AlreadyQuantizedError` that says what was found and what to do.  ``fold_pruning`` makes
``torch.nn.utils.prune`` reparametrisations permanent (weight = weight_orig * weight_mask), so the
exported graph and the weights report see the pruned weights themselves.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from ..errors import AlreadyQuantizedError
from ..runtime.describe import counts_text

QUANTIZED_ONNX_OPS = {
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
    "MatMulInteger", "QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearConcat",
    "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearSoftmax", "QGemm", "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat", "QAttention",
}
INT_WEIGHT_TYPES = {2: "uint8", 3: "int8", 4: "uint16", 5: "int16"}  # onnx.TensorProto data types
ADVICE = AlreadyQuantizedError.ADVICE


def check_onnx_float(model: Any, source: str) -> None:
    """AlreadyQuantizedError if the ONNX graph holds quantization ops or integer weight tensors."""
    ops = Counter(n.op_type for n in model.graph.node if n.op_type in QUANTIZED_ONNX_OPS)
    consumed = {name for n in model.graph.node
                if n.op_type in ("Conv", "Gemm", "MatMul", "ConvTranspose") for name in n.input[1:2]}
    int_weights = [i.name for i in model.graph.initializer
                   if i.data_type in INT_WEIGHT_TYPES and (i.name in consumed or len(i.dims) >= 2)]
    if not ops and not int_weights:
        return
    found = [counts_text(ops)] if ops else []
    if int_weights:
        found.append(f"{len(int_weights)} integer weight tensor(s) (e.g. '{int_weights[0]}')")
    raise AlreadyQuantizedError(f"{source} is already quantized: it holds {', '.join(found)}. {ADVICE}")


def check_module_float(module: Any, source: str) -> None:
    """AlreadyQuantizedError if the module holds fake-quant/observer modules, quantized modules or tensors."""
    import torch

    fake = (torch.ao.quantization.FakeQuantizeBase, torch.ao.quantization.ObserverBase)
    found: Counter = Counter()
    example = ""
    for name, m in module.named_modules():
        kind = None
        if isinstance(m, fake):
            kind = "fake-quant/observer"
        elif type(m).__module__.startswith(("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized",
                                            "torch.ao.nn.qat", "torch.nn.quantized", "torch.nn.qat")):
            kind = "quantized/QAT module"
        if kind:
            found[kind] += 1
            example = example or f"{name or '(root)'}: {type(m).__name__}"
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if t.is_quantized:
            found["quantized tensor"] += 1
            example = example or f"{name}: {t.dtype}"
    if found:
        what = ", ".join(f"{v} {k}(s)" for k, v in found.items())
        raise AlreadyQuantizedError(f"{source} is already quantized: {what} (e.g. {example}). {ADVICE}; for a "
                                    f"QAT model, convert the float model it was trained from")


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
