"""Verify's view of a quantization-aware conversion: the int8 file against its own simulation.

:mod:`tflite_int8.convert.qat_check` measures (the conversion's own check uses the same code on its check
samples): every fake-quantized tensor the int8 file holds, in the ONNX graph's order and in that tensor's QAT
steps, end to end and **locally** (the simulation's op fed the int8 file's own input tensors), and per output
int8 and the simulation (the QDQ model as float fake-quant, ONNX Runtime with its graph optimizations off)
each against the float model.  Here each tensor row is marked ``departs`` when its local agreement is below
the ``qat_within_1_step`` limit; :func:`~tflite_int8.config.thresholds.check_qat` judges.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..config.inputs import InputTable
from ..convert.qat import FLOAT_ONNX
from ..convert.qat_check import simulation_check
from ..convert.record import Conversion

DEPARTS = 0.99  # local within-1-step share below which a tensor departs, when the limit is disabled
QAT_SAMPLES = 256  # verification samples the task figures are measured on (the tensors: ``tensor_samples``)


def simulation_layers(conversion: Conversion, int8: Any, samples: Sequence[Any], table: InputTable,
                      names: Sequence[str], limits: Mapping[str, float | None], tensor_samples: int) -> dict[str, Any]:
    """convert.qat_check's ``outputs`` and ``tensors`` on data reader ``samples``; each tensor row marked
    ``departs``."""
    feeds = [dict(zip(table.names, s.arrays(table.names))) for s in samples]
    out = conversion.out_dir
    check = simulation_check(int8, conversion.onnx_path, out / FLOAT_ONNX, table, feeds, names,
                             conversion.report.get("qat", {}).get("activations", []), tensor_feeds=tensor_samples)
    limit = limits.get("qat_within_1_step")
    for row in check["tensors"]:
        row["departs"] = row["local_within_1_step"] < (DEPARTS if limit is None else limit)
    return check
