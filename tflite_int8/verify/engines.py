"""Engines: one interface over every way the same model can be run.

An engine takes one preprocessed float sample ({input name: array}, source layout,
batch 1) and returns ``{output name: float32 array}`` in the *reference* layout (the ONNX/PyTorch
one): PyTorch, ONNX Runtime, a float TFLite or a quantized TFLite through the
adapter's :class:`~tflite_int8.runtime.adapter.Runner`.  The verifier's parity ladder and
the pytest plugin are built from these.  Engines are described by a small
picklable :class:`EngineSpec`, so worker processes can build their own.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..config.inputs import InputTable
from ..config.preprocess import PreprocessSpec
from ..errors import InputError
from ..runtime.adapter import Runner, read_io
from ..runtime.metrics import align_layout
from ..runtime.reference import (feed_array, flatten_outputs, is_module, load_module, load_onnx, onnx_feed,
                                 ort_session, run_session, session_dtypes, simulation_session)


@dataclass(frozen=True)
class EngineSpec:
    """``kind`` is pytorch, onnxruntime or tflite; ``source`` a module, factory string or file path.
    ``simulation``: an ONNX model run as a QDQ model's reference, float fake-quant with ONNX Runtime's graph
    optimizations off (:func:`~tflite_int8.runtime.reference.simulation_session`), never its integer kernels."""

    step: str
    kind: str
    source: Any
    weights: str | None = None
    trust_checkpoint: bool = False
    simulation: bool = False


class Engine:
    """One way of running the model. ``inputs``: the model's inputs (their names and layouts); without it the
    model has one input, in ``preprocess``'s layout."""

    def __init__(self, spec: EngineSpec, preprocess: PreprocessSpec, output_names: Sequence[str] | None,
                 num_threads: int = 1, inputs: InputTable | None = None):
        self.spec = spec
        self.preprocess = preprocess
        self.inputs = inputs
        self.names = list(output_names) if output_names else None
        self._run = {"pytorch": self._torch, "onnxruntime": self._onnx, "tflite": self._tflite}[spec.kind]
        self._setup(num_threads)

    def _setup(self, num_threads: int) -> None:
        if self.spec.kind == "pytorch":
            self._module = load_module(self.spec.source, self.spec.weights, self.spec.trust_checkpoint)
        elif self.spec.kind == "onnxruntime":
            path = Path(self.spec.source)
            self._session = simulation_session(path) if self.spec.simulation else ort_session(path)
            self._inputs = [i.name for i in self._session.get_inputs()]
            self._dtypes = session_dtypes(self._session)
            self.names = self.names or [o.name for o in self._session.get_outputs()]
        else:
            self.runner = Runner(self.spec.source, self.preprocess, num_threads=num_threads, trusted=True,
                                 output_names=self.names, clip_warn=1.0, inputs=self.inputs)
            self.names = self.runner.output_names

    def __call__(self, feed: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """One sample: {input name: array} (or the array of a single-input model), source layout."""
        if isinstance(feed, np.ndarray):
            feed = {self.inputs.names[0] if self.inputs else "input": feed}
        return self._run(feed)

    def _ordered(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The inputs in model order: float32, integer inputs (token ids, masks) as they are."""
        if len(feed) == 1:
            return [np.ascontiguousarray(feed_array(next(iter(feed.values()))))]
        names = self.inputs.names if self.inputs is not None else list(feed)
        return [np.ascontiguousarray(feed_array(feed[n])) for n in names]

    def _torch(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.no_grad():
            outs = flatten_outputs(self._module(*[torch.from_numpy(a) for a in self._ordered(feed)]))
        names = self.names or [f"output_{i}" for i in range(len(outs))]
        if len(names) != len(outs):
            raise InputError(f"the PyTorch model returns {len(outs)} outputs, the converted model has {len(names)}")
        return {n: np.asarray(o, dtype=np.float32) for n, o in zip(names, outs)}

    def _onnx(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        item = self._ordered(feed)[0] if len(feed) == 1 else feed
        outs = run_session(self._session, onnx_feed(self._inputs, item, self._dtypes), Path(self.spec.source))
        return {n: np.asarray(o, dtype=np.float32) for n, o in zip(self.names or [], outs)}

    def _tflite(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.runner(*self._ordered(feed)) if len(feed) == 1 else self.runner.feed(feed)


def reference_spec(reference: Any, step: str = "reference") -> EngineSpec:
    """An EngineSpec for a user's reference: nn.Module, factory string, .onnx or float .tflite path."""
    if is_module(reference):
        return EngineSpec(step, "pytorch", reference)
    text = str(reference)
    if text.lower().endswith(".onnx"):
        if not Path(text).is_file():
            raise InputError(f"reference ONNX file {text} does not exist")
        return EngineSpec(step, "onnxruntime", text)
    if text.lower().endswith(".tflite"):
        if not Path(text).is_file():
            raise InputError(f"reference TFLite file {text} does not exist")
        return EngineSpec(step, "tflite", text)
    if ":" in text:
        return EngineSpec(step, "pytorch", text)
    raise InputError(f"reference {text!r} is not an nn.Module, a 'package.module:factory', an .onnx or a .tflite")


def shared_output_names(reference: EngineSpec, int8_path: str | Path) -> list[str]:
    """Names for the outputs of a reference and an int8 model, matched by position: the ONNX file's,
    the reference .tflite's, or else (a PyTorch reference) the int8 model's."""
    if reference.kind == "onnxruntime":
        return [o.name for o in load_onnx(reference.source).graph.output]
    return [o.name for o in read_io(reference.source if reference.kind == "tflite" else int8_path)[1]]


def aligned(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``candidate``'s outputs in ``reference``'s names and layouts (TFLite may be channels-last)."""
    out = {}
    for name, ref in reference.items():
        if name not in candidate:
            raise InputError(f"output '{name}' is missing from the candidate (it has {sorted(candidate)})")
        try:
            out[name] = align_layout(ref, candidate[name])
        except ValueError as exc:
            raise InputError(f"output '{name}': {exc}") from None
    return out
