"""`tflite-int8` command line: a thin layer over the Python API.

The only place that prints or exits.  Exit codes: 0 success, 1 failed
verification/parity, 2 user or input error (including an unconvertible model),
130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
import warnings
from typing import Any, Sequence

from .inspect import VERDICTS


class _Interrupts:
    """Ctrl-C, counted. Some libraries swallow a KeyboardInterrupt (onnxslim wraps ``import onnxruntime`` in a
    bare ``except:``); the count outlives that, and the next progress bar raises it again."""

    def __init__(self) -> None:
        self.count = 0
        self._old: Any = None

    def __enter__(self) -> "_Interrupts":
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.count:
            raise KeyboardInterrupt


class _TqdmProgress:
    """Progress bars on stderr for long stages (calibration); a swallowed Ctrl-C is raised again here."""

    def __init__(self, interrupts: _Interrupts | None = None) -> None:
        self._interrupts = interrupts
        # A stream on a duplicate of fd 2: the bars stay visible while native logs on fd 2 are captured.
        try:
            self._stream: Any = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
        except (OSError, ValueError, AttributeError):  # stderr is not a real file (captured)
            self._stream = sys.stderr

    def __call__(self, description: str, total: int | None) -> Any:
        from tqdm import tqdm

        if self._interrupts is not None:
            self._interrupts.check()

        return tqdm(total=total, desc=description, unit="sample", file=self._stream, leave=False,
                    disable=not self._stream.isatty())


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def _size(text: str) -> tuple[int, int]:
    try:
        vals = [int(v) for v in text.lower().replace("x", " ").replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or HxW, got {text!r}") from None
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"size must be N or HxW with positive numbers, got {text!r}")
    return (vals[0], vals[1])


def _add_preprocess_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("preprocessing (overrides the preset or --spec file)")
    g.add_argument("--preset", help="built-in spec: efficientnet-lite0, imagenet, mobilenet-v2, yolo")
    g.add_argument("--spec", help="preprocessing spec file (.toml or .json)")
    g.add_argument("--size", type=_size, help="input size: N or HxW")
    g.add_argument("--resize", choices=["center-crop", "letterbox", "stretch"])
    g.add_argument("--mean", type=_floats, help="per-channel mean in units of pixel/pixel-max, e.g. 0.485,0.456,0.406")
    g.add_argument("--std", type=_floats, help="per-channel std, e.g. 0.229,0.224,0.225")
    g.add_argument("--layout", choices=["NCHW", "NHWC"], help="layout of the model's float input (NCHW for PyTorch)")
    g.add_argument("--channels", choices=["RGB", "BGR", "L"])
    g.add_argument("--pixel-max", type=float, help="pixels are divided by this first (255: 0..1 input; 1: 0..255)")


def _spec_from_args(args: argparse.Namespace) -> Any:
    from .preprocess import PreprocessSpec, load_spec, preset

    if args.preset and args.spec:
        raise _UsageError("give either --preset or --spec, not both")
    base = preset(args.preset) if args.preset else load_spec(args.spec) if args.spec else None
    overrides = dict(size=args.size, resize=args.resize, mean=tuple(args.mean) if args.mean else None,
                     std=tuple(args.std) if args.std else None, layout=args.layout, channels=args.channels,
                     pixel_max=args.pixel_max)
    if base is None and not any(v is not None for v in overrides.values()):
        return None
    return (base or PreprocessSpec()).with_overrides(**overrides)


class _UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tflite-int8", description="PyTorch/ONNX -> full-integer TFLite, verified.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("convert", help="convert a model to full-integer TFLite")
    c.add_argument("model", help="'package.module:factory' returning an nn.Module, or a path to an .onnx file")
    c.add_argument("-o", "--out", required=True, help="output directory (must not exist unless --force)")
    c.add_argument("--weights", help="checkpoint (.pt/.pth) to load into the PyTorch model")
    c.add_argument("--trust-checkpoint", action="store_true",
                   help="allow checkpoints that contain pickled Python objects (runs code from the file)")
    c.add_argument("--allow-partial-weights", action="store_true",
                   help="convert even when conv/linear weights are missing from the checkpoint")
    c.add_argument("--data", help="calibration data: a folder of images or a .npy of preprocessed inputs "
                                  "(default: the bundled representative_data/)")
    c.add_argument("--num-samples", type=int, help="calibration samples to use (default: all)")
    c.add_argument("--views", type=int, default=1, help="deterministic crops/flips per photo (default 1)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--io-dtype", choices=["int8", "uint8"], default="int8", help="model input/output type")
    c.add_argument("--per-tensor", action="store_true", help="per-tensor weights (default per-channel)")
    c.add_argument("--ranges", choices=["minmax", "mse"], default="minmax",
                   help="activation ranges: the calibration's min/max (default) or MSE-optimal (clips rare extremes "
                        "for a finer int8 step; reads the calibration data twice)")
    c.add_argument("--variants", default="", help="extra files: float32,float16,dynamic-range,int16x8")
    c.add_argument("--task", choices=["auto", "classify", "raw", "detect"], default="auto",
                   help="detect: a YOLOv5/YOLOv8-layout detector; its head is split into boxes and scores")
    c.add_argument("--no-head-fix", action="store_true",
                   help="with --task detect: keep the exported head (boxes and scores share one int8 scale)")
    c.add_argument("--decode", choices=["model", "host"], default="model",
                   help="with --task detect: keep the grid/anchor decode in the model (default) or move it to the "
                        "host (decode.onnx; the int8 model outputs the split head convolutions): more accurate, as int8 "
                        "sigmoid and box tensors coarsen decoded boxes (reference detector: 0.7 vs 3.2 mAP50-95 "
                        "points lost)")
    c.add_argument("--force", action="store_true", help="replace an existing output directory")
    c.add_argument("--json", action="store_true", help="print conversion.json instead of the summary")
    _add_preprocess_args(c)

    d = sub.add_parser("demo", help="convert the embedded EfficientNet-Lite0 and report its int8 agreement")
    d.add_argument("-o", "--out", default="demo_output", help="output directory (default demo_output)")
    d.add_argument("--force", action="store_true", help="replace an existing output directory")

    v = sub.add_parser("verify", help="prove int8 parity: parity ladder, task metrics, per-layer diagnosis, reports")
    v.add_argument("target", nargs="?", help="a conversion output folder (from convert/demo)")
    v.add_argument("--tflite", help="the int8 .tflite to verify (default: the folder's full-integer model)")
    v.add_argument("--reference", help="float reference: 'package.module:factory', .onnx or float .tflite "
                                       "(needed without a conversion folder)")
    v.add_argument("--data", help="verification images folder or .npy (default: the bundled photos)")
    v.add_argument("--labels", help="labels: CSV 'file,label' or a folder with one sub-folder per class; "
                                    "for detection a COCO annotation JSON")
    v.add_argument("--class-names", help="text file, one class name per line (line i = class i)")
    v.add_argument("--views", type=int, default=1, help="deterministic crops/flips per photo (default 1)")
    v.add_argument("--num-samples", type=int, help="verify on this many samples (default: all)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--task", choices=["auto", "classify", "raw", "detect"], default="auto",
                   help="auto: detect for `convert --task detect` folders, classify for one (1, K) output, else raw")
    v.add_argument("--workers", type=int, default=1, help="processes, one interpreter each (default 1)")
    v.add_argument("--no-layers", action="store_true", help="skip the per-layer diagnosis")
    v.add_argument("--thresholds", help="thresholds file (.json/.toml) overriding the defaults")
    for key, helptext in (("min-cosine", "mean cosine per output"), ("min-sqnr", "mean SQNR dB per output"),
                          ("min-top1", "top-1 agreement"), ("min-top5", "top-5 agreement"),
                          ("max-accuracy-drop", "labelled accuracy drop, points"),
                          ("min-box-agreement", "detection: float/int8 box agreement"),
                          ("max-map-drop", "detection: labelled mAP50-95 drop, points")):
        v.add_argument(f"--{key}", type=float, help=helptext)
    v.add_argument("--report-dir", help="where report.json/report.html go (default TARGET/verify, or "
                                        "./verify_report without a conversion folder)")
    v.add_argument("--force", action="store_true", help="replace an existing report folder")
    v.add_argument("--json", action="store_true", help="print report.json instead of the summary")
    _add_preprocess_args(v)

    i = sub.add_parser("inspect", help="what a .tflite really is: I/O dtypes, quantization, verdict")
    i.add_argument("model")
    i.add_argument("--json", action="store_true", help="print the facts as JSON")
    i.add_argument("--compare", metavar="OTHER", help="a second .tflite, shown side by side with differences marked")
    i.add_argument("--require", choices=list(VERDICTS),
                   help="exit 1 unless the model's verdict is this one (for CI scripts)")
    r = sub.add_parser("recover", help="convert, verify, and on failure try accuracy-recovery strategies in order")
    r.add_argument("model", help="'package.module:factory' or an .onnx file")
    r.add_argument("-o", "--out", required=True, help="output directory: one sub-folder per strategy tried")
    r.add_argument("--data", help="calibration images or .npy (default: the bundled photos)")
    r.add_argument("--views", type=int, default=1, help="calibration views per photo (default 1)")
    r.add_argument("--verify-data", help="held-out verification images or .npy (default: the bundled photos)")
    r.add_argument("--verify-views", type=int, default=1)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--thresholds", help="thresholds file (.json/.toml) overriding the verify defaults")
    r.add_argument("--allow-float-ops", action="store_true",
                   help="last resort: keep the worst layers in float (the result is NOT full-integer)")
    r.add_argument("--float-layers", type=int, default=3, help="how many layers the float fallback keeps (3)")
    r.add_argument("--workers", type=int, default=1)
    r.add_argument("--force", action="store_true", help="replace an existing output directory")
    _add_preprocess_args(r)
    _add_android(sub)
    return parser


def _add_android(sub: Any) -> None:
    a = sub.add_parser("android", help="the on-device side: bundles, phone runs, ARM64 parity check")
    asub = a.add_subparsers(dest="android_command", required=True)
    b = asub.add_parser("bundle", help="write a bundle (model, quantized inputs, expected outputs, manifest)")
    b.add_argument("target", help="a conversion output folder, or an int8 .tflite (then give --preset/--spec)")
    b.add_argument("-o", "--out", required=True, help="bundle directory (must not exist unless --force)")
    b.add_argument("--data", help="images folder or .npy of float inputs (default: the bundled photos)")
    b.add_argument("--num-samples", type=int, default=8, help="verification inputs (default 8)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--max-step-diff", type=int, help="allowed output difference in int8 steps (default 1)")
    b.add_argument("--min-cosine", type=float, help="minimum cosine per output (default 0.999)")
    b.add_argument("--runs", type=int, default=20, help="timed runs on the device (default 20)")
    b.add_argument("--force", action="store_true", help="replace an existing bundle directory")
    _add_preprocess_args(b)
    r = asub.add_parser("run", help="push a bundle to a phone with adb, run the harness app, compare")
    r.add_argument("bundle")
    r.add_argument("--serial", help="adb serial of the phone (adb devices)")
    r.add_argument("--adb", default="adb", help="the adb executable (default: adb on PATH)")
    r.add_argument("--no-xnnpack", action="store_true", help="compare the builtin kernels' outputs instead")
    r.add_argument("-o", "--out", help="write the comparison report (JSON) here")
    r.add_argument("--force", action="store_true", help="replace an existing report file")
    c = asub.add_parser("compare", help="compare a device's results JSON with its bundle: pass/fail")
    c.add_argument("results")
    c.add_argument("bundle")
    c.add_argument("-o", "--out", help="write the comparison report (JSON) here")
    c.add_argument("--force", action="store_true", help="replace an existing report file")
    k = asub.add_parser("arm64-check", help="run the bundle on emulated aarch64 LiteRT (debootstrap + qemu; root)")
    k.add_argument("bundle")
    k.add_argument("--root", help="the arm64 root to build or reuse (default ~/.cache/tflite-int8/arm64-bookworm)")
    k.add_argument("--rebuild", action="store_true", help="build the arm64 root again")
    k.add_argument("--runs", type=int, default=5, help="timed runs per runtime (default 5; emulation is slow)")
    k.add_argument("-o", "--out", help="where the aarch64 results JSON goes (default BUNDLE.arm64-results.json)")
    k.add_argument("--force", action="store_true", help="replace an existing results file")


def _android(args: argparse.Namespace) -> int:
    from . import android
    from .report import android_summary

    cmd = args.android_command
    if cmd == "bundle":
        limits = {k: v for k, v in (("max_step_diff", args.max_step_diff), ("min_cosine", args.min_cosine))
                  if v is not None}
        manifest = android.bundle(args.target, args.out, spec=_spec_from_args(args), data=args.data,
                                  num_samples=args.num_samples, seed=args.seed, thresholds=limits, runs=args.runs,
                                  force=args.force)
        print(f"bundle {args.out}: {manifest['model']['bytes']:,} B model, {len(manifest['samples'])} samples, "
              f"thresholds {manifest['thresholds']}")
        return 0
    if cmd == "arm64-check":
        from .arm64 import arm64_check

        out = args.out or f"{args.bundle.rstrip('/')}.arm64-results.json"
        if os.path.exists(out) and not args.force:
            raise _UsageError(f"{out} already exists; choose another path with -o or pass --force")
        doc, report = arm64_check(args.bundle, root=args.root, rebuild=args.rebuild, runs=args.runs,
                                  progress=_TqdmProgress(args.interrupts))
        android.write_report(doc, out, force=args.force)
        print(android_summary(report, results_path=out))
        return 0 if report["passed"] else 1
    if cmd == "compare":
        report = android.compare(args.results, args.bundle)
    else:
        report = android.run(args.bundle, serial=args.serial, adb=args.adb, xnnpack=not args.no_xnnpack,
                             progress=_TqdmProgress(args.interrupts))
    if args.out:
        android.write_report(report, args.out, force=args.force)
    print(android_summary(report))
    return 0 if report["passed"] else 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "convert":
        from .pipeline import convert
        from .quantize import Recipe
        from .report import conversion_summary

        variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
        recipe = Recipe(io_dtype=args.io_dtype, per_channel=not args.per_tensor, variants=variants,
                        ranges=args.ranges)
        result = convert(args.model, args.out, spec=_spec_from_args(args), data=args.data, weights=args.weights,
                         trust_checkpoint=args.trust_checkpoint, allow_partial_weights=args.allow_partial_weights,
                         num_samples=args.num_samples, views=args.views, seed=args.seed, recipe=recipe,
                         task=args.task, head_fix=not args.no_head_fix, decode=args.decode, force=args.force,
                         progress=_TqdmProgress(args.interrupts))
        print(json.dumps(result.report, indent=2) if args.json else conversion_summary(result.report, args.out))
        return 0
    if args.command == "demo":
        from .demo import demo
        from .report import demo_summary

        result = demo(args.out, force=args.force, progress=_TqdmProgress(args.interrupts))
        print(demo_summary(result))
        return 0 if result["verification"].passed else 1
    if args.command == "verify":
        return _verify(args)
    if args.command == "inspect":
        return _inspect(args)
    if args.command == "android":
        return _android(args)
    if args.command == "recover":
        from .recover import recover
        from .report import recovery_summary

        result = recover(args.model, args.out, spec=_spec_from_args(args), data=args.data, views=args.views,
                         verify_data=args.verify_data, verify_views=args.verify_views, seed=args.seed,
                         thresholds=args.thresholds, allow_float_ops=args.allow_float_ops,
                         float_layers=args.float_layers, workers=args.workers, force=args.force,
                         progress=_TqdmProgress(args.interrupts))
        print(recovery_summary(result))
        return 0 if result.passed else 1
    raise _UsageError(f"unknown command {args.command}")


def _inspect(args: argparse.Namespace) -> int:
    from .inspect import compare, counts_text, describe
    from .report import compare_summary, inspect_summary

    info = describe(args.model)
    other = describe(args.compare) if args.compare else None
    if args.json:
        print(json.dumps({"model": info, "other": other} if other else info, indent=2))
    elif other:
        print(compare_summary(info, other, compare(info, other)))
    else:
        print(inspect_summary(info))
    if args.require and info["verdict"] != args.require:
        where = f"; float ops: {counts_text(info['float_ops'])}" if info["float_ops"] else ""
        print(f"error: {args.model} is {info['verdict']}, not {args.require}{where}", file=sys.stderr)
        return 1
    return 0


def _verify(args: argparse.Namespace) -> int:
    from .report import verify_summary
    from .thresholds import resolve_thresholds
    from .verify import verify

    if args.target is None and (args.tflite is None or args.reference is None):
        raise _UsageError("give a conversion folder, or --tflite and --reference")
    limits = resolve_thresholds(args.thresholds)
    flags = {"cosine": args.min_cosine, "sqnr_db": args.min_sqnr, "top1_agreement": args.min_top1,
             "top5_agreement": args.min_top5, "accuracy_drop_points": args.max_accuracy_drop,
             "box_agreement": args.min_box_agreement, "map50_95_drop_points": args.max_map_drop}
    limits.update({k: v for k, v in flags.items() if v is not None})
    report_dir = args.report_dir or (os.path.join(args.target, "verify") if args.target else "verify_report")
    result = verify(args.target, tflite=args.tflite, reference=args.reference, spec=_spec_from_args(args),
                    data=args.data, labels=args.labels, class_names=args.class_names, views=args.views,
                    num_samples=args.num_samples, seed=args.seed, task=args.task, thresholds=limits,
                    workers=args.workers, layers=not args.no_layers, report_dir=report_dir, force=args.force,
                    progress=_TqdmProgress(args.interrupts))
    print(json.dumps(result.report, indent=2, default=str) if args.json else verify_summary(result))
    return 0 if result.passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is first imported
    parser = build_parser()
    args = parser.parse_args(argv)
    from .errors import Int8Warning

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        if issubclass(category, Int8Warning):
            print(f"warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    with _Interrupts() as interrupts:
        args.interrupts = interrupts
        code = _guarded(args)
        if interrupts.count and code != 130:  # a library swallowed Ctrl-C and the work ran to its end
            print("interrupted; the work had already finished, so its output is complete and was kept",
                  file=sys.stderr)
            return 130
        return code


def _guarded(args: argparse.Namespace) -> int:
    from .errors import Int8Error

    try:
        return _run(args)
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Int8Error as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # disk full, file too large, permissions met while writing
        if args.debug:
            traceback.print_exc()
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"error: cannot read or write a file{where}: {exc.strerror or exc}; no partial output was left",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no partial output was left", file=sys.stderr)
        return 130


def entry() -> None:
    """Console-script and ``python -m tflite_int8`` entry point."""
    code = main()
    if code == 130:
        # Exit now, with 130: a KeyboardInterrupt that a library's embedded code swallowed (PyRun_String)
        # leaves CPython's "unhandled Ctrl-C" flag set, and under ``python -m`` it would then kill itself
        # with SIGINT at shutdown instead of returning our code. Everything was cleaned up already.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    raise SystemExit(code)
