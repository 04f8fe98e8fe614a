"""The sub-commands: each turns parsed arguments into one call of the Python API and prints its summary.

A handler returns the exit code: 0 success, 1 a failed check, 2 bad input (raised as an error and mapped
in :func:`tflite_int8.cli.main`).  ``args.progress`` is the terminal's progress (set by ``main``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..config.preprocess import PreprocessSpec, load_spec, preset
from ..config.recipe import Recipe
from ..config.thresholds import resolve_thresholds
from ..convert.pipeline import ConversionResult
from ..convert.pipeline import convert as run_convert
from ..device import android
from ..device.arm64 import arm64_check
from ..recover.strategies import recover as run_recover
from ..runtime.describe import compare, counts_text, describe
from ..verify.core import VerifyResult
from ..verify.core import verify as run_verify
from ..zoo.demo import demo as run_demo
from . import summaries


# verify's threshold flags: flag -> (threshold key, help)
THRESHOLD_FLAGS = {
    "min-cosine": ("cosine", "mean cosine per output"), "min-sqnr": ("sqnr_db", "mean SQNR dB per output"),
    "min-top1": ("top1_agreement", "top-1 agreement"), "min-top5": ("top5_agreement", "top-5 agreement"),
    "min-top1-confident": ("top1_agreement_confident",
                           "top-1 agreement on samples where the float model's top-1 probability >= 0.5"),
    "max-accuracy-drop": ("accuracy_drop_points", "labelled accuracy drop, points"),
    "min-box-agreement": ("box_agreement", "detection: float/int8 box agreement"),
    "max-map-drop": ("map50_95_drop_points", "detection: labelled mAP50-95 drop, points"),
    "min-qat-within-1-step": ("qat_within_1_step", "QAT conversions: for each of the first --qat-tensors "
                              "fake-quantized tensors, the fraction of int8 values within one step of the model's "
                              "own simulation (its QDQ model as float fake-quant) computed locally"),
    "qat-tensors": ("qat_tensors", "QAT conversions: how many fake-quantized tensors from the input are judged"),
    "qat-cosine-margin": ("qat_cosine_margin", "QAT conversions: how much lower int8's cosine with the float model "
                          "may be than the simulation's"),
    "qat-top1-margin": ("qat_top1_margin_points", "QAT conversions: how many points lower int8's top-1 agreement "
                        "with the float model may be than the simulation's"),
    "min-sequence-match": ("sequence_match", "ctc: fraction of lines whose int8 text equals the float text"),
    "max-cer": ("char_error_rate", "ctc: character error rate of the int8 text vs the float text"),
    "min-pixel-agreement": ("pixel_agreement", "segment: per-pixel class agreement"),
    "min-miou": ("miou", "segment: mean IoU of the int8 vs float class maps"),
    "min-mask-iou": ("mask_iou", "mask: IoU of the int8 vs float binary masks"),
}



class UsageError(Exception):
    """A combination of arguments that cannot work (exit 2)."""


def spec_from_args(args: argparse.Namespace) -> PreprocessSpec | None:
    """The image inputs' preprocessing from the flags (None: none given). Without --size (or a preset/spec file
    that has one) the size is the model's own."""
    if args.preset and args.spec:
        raise UsageError("give either --preset or --spec, not both")
    base = preset(args.preset) if args.preset else load_spec(args.spec) if args.spec else None
    overrides = dict(size=args.size, resize=args.resize, mean=tuple(args.mean) if args.mean else None,
                     std=tuple(args.std) if args.std else None, layout=args.layout, channels=args.channels,
                     pixel_max=args.pixel_max)
    if base is None and not any(v is not None for v in overrides.values()):
        return None
    return (base or PreprocessSpec(size=None)).with_overrides(**overrides)


def data_from_args(values: list[str] | None) -> Any:
    """``--data`` values: one path as it is; several (or NAME=PATH) as {input name: path}, unnamed under ''."""
    if not values:
        return None
    named: dict[str, Any] = {}
    unnamed = []
    for v in values:
        name, sep, path = v.partition("=")
        if sep and name and not os.path.exists(v):
            if name in named:
                raise UsageError(f"--data gives input '{name}' twice")
            named[name] = path
        else:
            unnamed.append(v)
    if not named and len(unnamed) == 1:
        return unnamed[0]
    return {**named, **({"": unnamed} if unnamed else {})}


def shapes_from_args(values: list[tuple[str, tuple[int, ...]]] | None) -> dict[str, tuple[int, ...]] | None:
    shapes: dict[str, tuple[int, ...]] = {}
    for name, dims in values or []:
        if name in shapes and shapes[name] != dims:
            raise UsageError(f"--input-shape gives input '{name}' twice ({list(shapes[name])} and {list(dims)})")
        shapes[name] = dims
    return shapes or None


def pairs_from_args(values: list[tuple[str, Any]] | None, flag: str) -> dict[str, Any] | None:
    """--input-layout / --input-value pairs as {input name: value}; one input given twice is refused."""
    out: dict[str, Any] = {}
    for name, value in values or []:
        if name in out and out[name] != value:
            raise UsageError(f"{flag} gives input '{name}' twice ({out[name]} and {value})")
        out[name] = value
    return out or None


# convert's int8-check flags: flag -> (threshold key, help)
CHECK_FLAGS = {"check-min-cosine": ("cosine", "the conversion's own int8 check: mean cosine per output"),
               "check-min-sqnr": ("sqnr_db", "the conversion's own int8 check: SQNR dB per output"),
               "check-min-qat-within-1-step": ("qat_within_1_step", "a QAT conversion's own check: for each of the "
                                               "first --check-qat-tensors fake-quantized tensors, the fraction of "
                                               "int8 values within one step of its QDQ simulation computed locally"),
               "check-qat-tensors": ("qat_tensors", "a QAT conversion's own check: how many fake-quantized tensors "
                                     "from the input are judged"),
               "check-qat-cosine-margin": ("qat_cosine_margin", "a QAT conversion's own check: how much lower "
                                           "int8's cosine with the float model may be than the simulation's"),
               "check-qat-top1-margin": ("qat_top1_margin_points", "a QAT conversion's own check: how many points "
                                         "lower int8's top-1 agreement with the float model may be than the "
                                         "simulation's")}


def convert(args: argparse.Namespace) -> int:
    result = convert_from_args(args)
    print(json.dumps(result.report, indent=2) if args.json else summaries.conversion_summary(result.report, args.out))
    return 0 if result.passed else 1


def demo(args: argparse.Namespace) -> int:
    result = run_demo(args.out, force=args.force, progress=args.progress)
    print(summaries.demo_summary(result))
    return 0 if result["verification"].passed else 1


def verify(args: argparse.Namespace) -> int:
    result = verify_from_args(args)
    print(json.dumps(result.report, indent=2, default=str) if args.json else summaries.verify_summary(result))
    return 0 if result.passed else 1


def convert_from_args(args: argparse.Namespace) -> ConversionResult:
    """convert's arguments -> the Python API's call (also what `batch` runs for each model)."""
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    recipe = Recipe(io_dtype=args.io_dtype, per_channel=not args.per_tensor, variants=variants, ranges=args.ranges)
    checks = {key: getattr(args, flag.replace("-", "_")) for flag, (key, _) in CHECK_FLAGS.items()
              if getattr(args, flag.replace("-", "_")) is not None}
    return run_convert(args.model, args.out, spec=spec_from_args(args), data=data_from_args(args.data),
                       weights=args.weights, trust_checkpoint=args.trust_checkpoint,
                       allow_partial_weights=args.allow_partial_weights, num_samples=args.num_samples,
                       views=args.views, seed=args.seed, recipe=recipe, task=args.task,
                       head_fix=not args.no_head_fix, decode=args.decode,
                       input_shapes=shapes_from_args(args.input_shape),
                       input_layouts=pairs_from_args(args.input_layout, "--input-layout"),
                       input_values=pairs_from_args(args.input_value, "--input-value"), force=args.force,
                       check_thresholds=checks, progress=args.progress)


def verify_from_args(args: argparse.Namespace) -> VerifyResult:
    """verify's arguments -> the Python API's call (also what `batch` runs for each model)."""
    if args.target is None and (args.tflite is None or args.reference is None):
        raise UsageError("give a conversion folder, or --tflite and --reference")
    limits = resolve_thresholds(args.thresholds)
    for flag, (key, _) in THRESHOLD_FLAGS.items():
        value = getattr(args, flag.replace("-", "_"))
        if value is not None:
            limits[key] = value
    report_dir = args.report_dir or (os.path.join(args.target, "verify") if args.target else "verify_report")
    return run_verify(args.target, tflite=args.tflite, reference=args.reference, spec=spec_from_args(args),
                      data=data_from_args(args.data), labels=args.labels, class_names=args.class_names,
                      views=args.views,
                      num_samples=args.num_samples, seed=args.seed, task=args.task, thresholds=limits,
                      workers=args.workers, layers=not args.no_layers, report_dir=report_dir, force=args.force,
                      blank=args.blank, mask_threshold=args.mask_threshold, progress=args.progress, ray=args.ray,
                      ray_timeout=args.ray_timeout)


def batch(args: argparse.Namespace) -> int:
    from .batch import run_batch  # here: batch parses with the parser, which names these handlers

    doc = run_batch(args.zoo, args.out, ray=args.ray, ray_timeout=args.ray_timeout, force=args.force,
                    progress=args.progress)
    print(json.dumps(doc, indent=2) if args.json else summaries.batch_summary(doc, args.out))
    return doc["exit_code"]


def inspect(args: argparse.Namespace) -> int:
    info = describe(args.model)
    other = describe(args.compare) if args.compare else None
    if args.json:
        print(json.dumps({"model": info, "other": other} if other else info, indent=2))
    elif other:
        print(summaries.compare_summary(info, other, compare(info, other)))
    else:
        print(summaries.inspect_summary(info))
    if args.require and info["verdict"] != args.require:
        where = f"; float ops: {counts_text(info['float_ops'])}" if info["float_ops"] else ""
        print(f"error: {args.model} is {info['verdict']}, not {args.require}{where}", file=sys.stderr)
        return 1
    return 0


def recover(args: argparse.Namespace) -> int:
    result = run_recover(args.model, args.out, spec=spec_from_args(args), data=data_from_args(args.data),
                         views=args.views, verify_data=data_from_args(args.verify_data),
                         verify_views=args.verify_views, seed=args.seed, task=args.task,
                         head_fix=not args.no_head_fix, decode=args.decode, blank=args.blank,
                         mask_threshold=args.mask_threshold, input_shapes=shapes_from_args(args.input_shape),
                         input_layouts=pairs_from_args(args.input_layout, "--input-layout"),
                         input_values=pairs_from_args(args.input_value, "--input-value"), thresholds=args.thresholds, allow_float_ops=args.allow_float_ops,
                         float_layers=args.float_layers, workers=args.workers,
                         max_latency_ratio=args.max_latency_ratio, force=args.force,
                         strategies=[n.strip() for n in args.strategies.split(",") if n.strip()] if args.strategies
                         else None, progress=args.progress, ray=args.ray, ray_timeout=args.ray_timeout,
                         rounding_iterations=args.rounding_iterations)
    print(summaries.recovery_summary(result))
    return 0 if result.passed else 1


def android_bundle(args: argparse.Namespace) -> int:
    limits = {k: v for k, v in (("max_step_diff", args.max_step_diff), ("min_cosine", args.min_cosine))
              if v is not None}
    manifest = android.bundle(args.target, args.out, spec=spec_from_args(args),
                              data=data_from_args(args.data), num_samples=args.num_samples, seed=args.seed,
                              thresholds=limits, runs=args.runs, force=args.force)
    print(f"bundle {args.out}: {manifest['model']['bytes']:,} B model, {len(manifest['samples'])} samples, "
          f"thresholds {manifest['thresholds']}")
    return 0


def android_arm64(args: argparse.Namespace) -> int:
    out = args.out or f"{args.bundle.rstrip('/')}.arm64-results.json"
    if os.path.exists(out) and not args.force:
        raise UsageError(f"{out} already exists; choose another path with -o or pass --force")
    doc, report = arm64_check(args.bundle, root=args.root, rebuild=args.rebuild, runs=args.runs,
                              progress=args.progress)
    android.write_report(doc, out, force=args.force)
    print(summaries.android_summary(report, results_path=out))
    return 0 if report["passed"] else 1


def android_compare(args: argparse.Namespace) -> int:
    return _device_report(args, android.compare(args.results, args.bundle))


def android_run(args: argparse.Namespace) -> int:
    report = android.run(args.bundle, serial=args.serial, adb=args.adb, xnnpack=not args.no_xnnpack,
                         progress=args.progress)
    return _device_report(args, report)


def _device_report(args: argparse.Namespace, report: dict[str, Any]) -> int:
    if args.out:
        android.write_report(report, args.out, force=args.force)
    print(summaries.android_summary(report))
    return 0 if report["passed"] else 1
