"""What verify compares: from a conversion folder (or a reference and an int8 file), the ladder's steps from the
float reference to the int8 file, the steps skipped and why, and the inputs to feed."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config.inputs import InputSpec, InputTable
from ..config.preprocess import PreprocessSpec
from ..convert.qat import FLOAT_ONNX, SIMULATION_STEP
from ..convert.record import Conversion, read_conversion
from ..errors import InputError
from ..runtime.describe import describe
from ..runtime.interpreter import probe
from ..runtime.reference import SIMULATION
from .engines import EngineSpec, reference_spec, shared_output_names


@dataclass
class Plan:
    steps: list[EngineSpec]
    skipped: list[dict[str, str]]
    spec: PreprocessSpec
    int8: Path
    output_names: list[str] | None
    conversion: Conversion | None
    onnx: Path | None
    notes: dict[str, str] = field(default_factory=dict)
    qat: bool = False  # a quantization-aware conversion: its QDQ model is the reference to match
    int8_outputs: dict[str, tuple[int, ...]] = field(default_factory=dict)  # name -> shape, from describe()
    inputs: InputTable | None = None  # the conversion's inputs; None: one image input described by ``spec``

    @property
    def feeding(self) -> InputTable | PreprocessSpec:
        """What readers, translate and the diagnosis take: the model's inputs, or the one image input's spec."""
        return self.inputs if self.inputs is not None else self.spec



def make_plan(target: Any, tflite: Any, reference: Any, spec: PreprocessSpec | None) -> Plan:
    """What to compare: the ladder's steps from the float reference to the int8 file, and what was skipped."""
    skipped: list[dict[str, str]] = []
    steps: list[EngineSpec] = []
    if target is not None:
        conv = read_conversion(target)
        int8 = Path(tflite) if tflite else conv.int8_path
        inputs = _with_spec(conv.inputs, spec)
        spec = spec or conv.spec
        if conv.report.get("quantization_source") == "qat" and reference is None:
            plan = _qat_plan(conv, int8, spec, inputs)
        else:
            plan = _folder_plan(conv, int8, reference, spec, inputs)
    else:
        if tflite is None or reference is None:
            raise InputError("give a conversion output folder, or both a reference model and a .tflite to verify")
        if spec is None:
            raise InputError("verifying a .tflite against a reference needs the preprocessing spec (--preset/--spec)")
        int8 = Path(tflite)
        ref = reference_spec(reference)
        steps.append(ref)
        if not int8.is_file():
            raise InputError(f"the int8 model {int8} does not exist")
        plan = Plan(steps, skipped, spec, int8, shared_output_names(ref, int8), None, None)
    if not plan.int8.is_file():
        raise InputError(f"the int8 model {plan.int8} does not exist")
    for path in [plan.int8] + [Path(s.source) for s in plan.steps if s.kind == "tflite"]:
        probe(path)  # a corrupt file fails here, in a child process, before any worker loads it
    info = describe(plan.int8, trusted=True)
    plan.int8_outputs = {o["name"]: tuple(o["shape"]) for o in info["outputs"]}
    verdict = info["verdict"]
    if verdict in ("float32", "float16"):
        raise InputError(f"{plan.int8} is {verdict}, not an int8 model: nothing quantized to verify. Pass the "
                         f"int8 file (`tflite-int8 inspect` tells which file is which)")
    plan.steps.append(EngineSpec("tflite-int8", "tflite", str(plan.int8)))
    if len(plan.steps) < 2:
        raise InputError(f"nothing to compare {plan.int8} with: no float reference was found")
    return plan


def _with_spec(inputs: InputTable, spec: PreprocessSpec | None) -> InputTable:
    """The conversion's inputs, the image input's preprocessing replaced by the one given (if any)."""
    images = inputs.images
    if spec is None or not images:
        return inputs
    if len(images) > 1:
        raise InputError(f"the model has {len(images)} image inputs; one preprocessing spec cannot replace theirs")
    spec = spec if spec.size is not None else spec.with_overrides(size=images[0].preprocess.size)
    if images[0].layout is not None:  # arrays laid out as the source model takes them (an NHWC Keras input)
        spec = spec.with_overrides(layout=images[0].layout)
    return InputTable(tuple(replace(s, preprocess=spec) if s.kind == "image" else s for s in inputs))


def _folder_plan(conv: Conversion, int8: Path, reference: Any, spec: PreprocessSpec, inputs: InputTable) -> Plan:
    """A conversion folder: PyTorch (when reproducible) -> ONNX Runtime -> float32 TFLite -> the int8 file."""
    skipped: list[dict[str, str]] = []
    steps: list[EngineSpec] = []
    src = conv.source
    if reference is not None:
        ref = reference_spec(reference)
        steps.append(replace(ref, step="pytorch" if ref.kind == "pytorch" else "reference"))
    elif conv.head.get("fix"):
        skipped.append({"step": "pytorch", "reason": "the detector's head was split after export (boxes and "
                        "scores apart, same math): the ONNX model is the reference"})
    elif src.get("kind") == "pytorch" and ":" in str(src.get("model", "")):
        weights = src.get("weights", {}).get("file")
        steps.append(EngineSpec("pytorch", "pytorch", src["model"], weights))
    else:
        skipped.append({"step": "pytorch", "reason": "the conversion started from an ONNX file or an in-memory "
                        "module: pass reference= (Python API) to include PyTorch"})
    onnx: Path | None = conv.onnx_path
    if onnx.is_file():
        steps.append(EngineSpec("onnxruntime", "onnxruntime", str(onnx)))
    else:
        skipped.append({"step": "onnxruntime", "reason": f"{onnx} is missing"})
        onnx = None
    f32 = conv.variant_path("float32")
    if f32 is not None and f32.is_file():
        steps.append(EngineSpec("tflite-float32", "tflite", str(f32)))
    return Plan(steps, skipped, spec, int8, conv.output_names, conv, onnx, inputs=inputs)


def _qat_plan(conv: Conversion, int8: Path, spec: PreprocessSpec, inputs: InputTable) -> Plan:
    """A QAT conversion: the float model (fake-quant removed) -> its QDQ simulation -> the int8 file."""
    steps = []
    for step, path in (("float", conv.out_dir / FLOAT_ONNX), (SIMULATION_STEP, conv.onnx_path)):
        if not path.is_file():
            what = "QAT simulation" if step == SIMULATION_STEP else "float reference"
            raise InputError(f"{conv.out_dir} is a quantization-aware conversion but {path.name} is missing: it is "
                             f"the {what} to verify against")
        steps.append(EngineSpec(step, "onnxruntime", str(path), simulation=step == SIMULATION_STEP))
    skipped = [{"step": "pytorch", "reason": "quantization-aware conversion: its QDQ model (model.onnx) is the "
                "reference the int8 file must match, the float model without fake-quant (model_float.onnx) the "
                "accuracy reference"},
               {"step": "tflite-float32", "reason": "quantization-aware conversion: the float32 TFLite holds neither "
                "reference (weights on the QAT grid, activations not rounded)"}]
    plan = Plan(steps, skipped, spec, int8, conv.output_names, conv, None, qat=True, inputs=inputs)
    plan.notes[SIMULATION_STEP] = f"the QDQ model as {SIMULATION}: the QAT model's own simulation"
    return plan

