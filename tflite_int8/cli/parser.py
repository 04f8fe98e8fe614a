"""The `tflite-int8` argument parser.  Choices and help come from the tables they validate against
(presets, tasks, variants, ranges, verdicts, thresholds); each sub-command names its handler
(``set_defaults(handler=...)``) in :mod:`.commands`."""
from __future__ import annotations

import argparse
from typing import Any

from ..cluster import RAY_TIMEOUT, check_address, check_timeout
from ..config.inputs import parse_input_layout, parse_input_shape, parse_input_value
from ..config.preprocess import CHANNEL_ORDERS, LAYOUTS, PRESETS, RESIZE_MODES
from ..config.recipe import EXTRA_VARIANTS, IO_DTYPES, RANGES, VARIANTS
from ..config.tasks import DECODES, TASKS
from ..config.thresholds import CHECK_DEFAULTS
from ..config.thresholds import DEFAULTS as THRESHOLDS
from ..errors import InputError
from ..recover.strategies import MAX_LATENCY_RATIO, ROUNDING_ITERATIONS
from ..runtime.describe import VERDICTS
from ..recover.strategies import STRATEGIES
from . import commands

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


def _ray_address(text: str) -> str:
    try:
        return check_address(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (a value right after --ray is taken as its address: put --ray "
                                         f"after the other arguments, or write --ray=local)") from None


def _seconds(text: str) -> float:
    try:
        return check_timeout(float(text))
    except (ValueError, InputError):
        raise argparse.ArgumentTypeError(f"a positive number of seconds, got {text!r}") from None


def _add_ray_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--ray", nargs="?", const="local", type=_ray_address, metavar="ADDRESS",
                   help=f"run {what} as Ray tasks: alone, on a new Ray instance on this machine (loopback only); "
                        "auto: the cluster started with `ray start --head`; HOST:PORT or ray://HOST:PORT: that "
                        "cluster. Needs the extra: pip install 'tflite-int8[ray]'")
    p.add_argument("--ray-timeout", type=_seconds, default=RAY_TIMEOUT, metavar="SECONDS",
                   help=f"how long an existing cluster (--ray ADDRESS or auto) has to answer before the command "
                        f"fails (default {RAY_TIMEOUT:g})")


def _input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    try:
        return parse_input_shape(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _input_layout(text: str) -> tuple[str, str]:
    try:
        return parse_input_layout(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _input_value(text: str) -> tuple[str, int | float]:
    try:
        return parse_input_value(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


DATA_HELP = ("a folder of images (image inputs), a .npy of preprocessed inputs (one input; (N, *input shape), or "
             "(N, *shape[1:]) when the first dimension is 1), a .npz with one array per input name; repeatable, "
             "NAME=PATH gives one input's data")
LAYOUT_HELP = ("NAME:NHWC or NAME:NCHW declares a 4-D input's layout in the source model when the graph does not "
               "show it (it is read from the graph otherwise); repeatable")
VALUE_HELP = ("NAME=VALUE fixes an ONNX input to a constant (e.g. a sample rate sr=16000), folded into the model; "
              "repeatable. A scalar (rank-0) input needs one")
SHAPE_HELP = ("NAME:D1,D2,... fixes an input's shape (dynamic dimensions of an ONNX file; a PyTorch input's "
              "shape); repeatable. Default: the model's own static shape (image inputs: --size)")


def _choices(table: Any) -> str:
    return ", ".join(table)


def _add_preprocess_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("preprocessing (overrides the preset or --spec file)")
    g.add_argument("--preset", help=f"built-in spec: {_choices(PRESETS)}")
    g.add_argument("--spec", help="preprocessing spec file (.toml or .json)")
    g.add_argument("--size", type=_size, help="image input size: N or HxW (default: the model's own)")
    g.add_argument("--resize", choices=RESIZE_MODES)
    g.add_argument("--mean", type=_floats, help="per-channel mean in units of pixel/pixel-max, e.g. 0.485,0.456,0.406")
    g.add_argument("--std", type=_floats, help="per-channel std, e.g. 0.229,0.224,0.225")
    g.add_argument("--layout", choices=LAYOUTS, help="layout of the model's float input (NCHW for PyTorch)")
    g.add_argument("--channels", choices=CHANNEL_ORDERS)
    g.add_argument("--pixel-max", type=float, help="pixels are divided by this first (255: 0..1 input; 1: 0..255)")


def _task_help(names: tuple[str, ...]) -> str:
    return "; ".join(f"{n}: {TASKS[n]}" for n in names)


def _add_task_args(p: argparse.ArgumentParser, task_help: str, *, head: bool, judge: bool) -> None:
    """--task (the TASKS table); ``head``: convert's detector flags; ``judge``: verify's task options."""
    p.add_argument("--task", choices=list(TASKS), default="auto", help=task_help)
    if head:
        p.add_argument("--no-head-fix", action="store_true",
                       help="with --task detect: keep the exported head (boxes and scores share one int8 scale)")
        p.add_argument("--decode", choices=list(DECODES), default="model",
                       help="with --task detect: where the grid/anchor decode runs: " +
                            "; ".join(f"{k}: {v}" for k, v in DECODES.items()))
    if judge:
        p.add_argument("--blank", type=int, default=0, help="ctc: the blank class index (default 0)")
        p.add_argument("--mask-threshold", type=float, default=0.5,
                       help="mask: probability above which a pixel is in the mask (default 0.5)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tflite-int8", description="PyTorch/ONNX -> full-integer TFLite, verified.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_convert(sub)
    d = sub.add_parser("demo", help="convert the embedded EfficientNet-Lite0 and report its int8 agreement")
    d.add_argument("-o", "--out", default="demo_output", help="output directory (default demo_output)")
    d.add_argument("--force", action="store_true", help="replace an existing output directory")
    d.set_defaults(handler=commands.demo)
    _add_verify(sub)
    i = sub.add_parser("inspect", help="what a .tflite really is: I/O dtypes, quantization, verdict")
    i.add_argument("model")
    i.add_argument("--json", action="store_true", help="print the facts as JSON")
    i.add_argument("--compare", metavar="OTHER", help="a second .tflite, shown side by side with differences marked")
    i.add_argument("--require", choices=list(VERDICTS),
                   help="exit 1 unless the model's verdict is this one (for CI scripts)")
    i.set_defaults(handler=commands.inspect)
    _add_recover(sub)
    _add_batch(sub)
    _add_android(sub)
    parser.commands = sub.choices  # type: ignore[attr-defined]  # name -> sub-parser (batch reads their options)
    return parser


def _add_convert(sub: Any) -> None:
    c = sub.add_parser("convert", help="convert a model to full-integer TFLite")
    c.add_argument("model", help="'package.module:factory' returning an nn.Module, or a path to an .onnx file")
    c.add_argument("-o", "--out", required=True, help="output directory (must not exist unless --force)")
    c.add_argument("--weights", help="checkpoint (.pt/.pth) to load into the PyTorch model")
    c.add_argument("--trust-checkpoint", action="store_true",
                   help="allow checkpoints that contain pickled Python objects (runs code from the file)")
    c.add_argument("--allow-partial-weights", action="store_true",
                   help="convert even when conv/linear weights are missing from the checkpoint")
    c.add_argument("--data", action="append", metavar="[NAME=]PATH",
                   help=f"calibration data: {DATA_HELP} (default: the bundled representative_data/)")
    c.add_argument("--input-shape", action="append", type=_input_shape, metavar="NAME:DIMS", help=SHAPE_HELP)
    c.add_argument("--input-layout", action="append", type=_input_layout, metavar="NAME:LAYOUT", help=LAYOUT_HELP)
    c.add_argument("--input-value", action="append", type=_input_value, metavar="NAME=VALUE", help=VALUE_HELP)
    c.add_argument("--num-samples", type=int, help="calibration samples to use (default: all)")
    c.add_argument("--views", type=int, default=1, help="deterministic crops/flips per photo (default 1)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--io-dtype", choices=IO_DTYPES, default="int8", help="model input/output type")
    c.add_argument("--per-tensor", action="store_true", help="per-tensor weights (default per-channel)")
    c.add_argument("--ranges", choices=list(RANGES),
                   help="activation ranges: " + "; ".join(f"{k}: {v}" for k, v in RANGES.items()) +
                        "; a quantization-aware model keeps its own learned ranges and refuses this option")
    c.add_argument("--variants", default="", help="extra files, comma-separated: " +
                   "; ".join(f"{v} ({VARIANTS[v].help})" for v in EXTRA_VARIANTS))
    _add_task_args(c, _task_help(("auto", "detect")) + "; classify, segment, ctc, mask: recorded, so `verify` "
                   "judges the model by that task", head=True, judge=False)
    for flag, (key, helptext) in commands.CHECK_FLAGS.items():
        c.add_argument(f"--{flag}", type=float, help=f"{helptext} (default {CHECK_DEFAULTS[key]}); a failed check "
                                                     f"keeps the files and exits 1")
    c.add_argument("--force", action="store_true", help="replace an existing output directory")
    c.add_argument("--json", action="store_true", help="print conversion.json instead of the summary")
    _add_preprocess_args(c)
    c.set_defaults(handler=commands.convert)


def _add_verify(sub: Any) -> None:
    v = sub.add_parser("verify", help="prove int8 parity: parity ladder, task metrics, per-layer diagnosis, reports")
    v.add_argument("target", nargs="?", help="a conversion output folder (from convert/demo)")
    v.add_argument("--tflite", help="the int8 .tflite to verify (default: the folder's full-integer model)")
    v.add_argument("--reference", help="float reference: 'package.module:factory', .onnx or float .tflite "
                                       "(needed without a conversion folder)")
    v.add_argument("--data", action="append", metavar="[NAME=]PATH",
                   help=f"verification data: {DATA_HELP} (default: the bundled photos)")
    v.add_argument("--labels", help="labels: CSV 'file,label' or a folder with one sub-folder per class; "
                                    "for detection a COCO annotation JSON")
    v.add_argument("--class-names", help="text file, one class name per line (line i = class i)")
    v.add_argument("--views", type=int, default=1, help="deterministic crops/flips per photo (default 1)")
    v.add_argument("--num-samples", type=int, help="verify on this many samples (default: all)")
    v.add_argument("--seed", type=int, default=0)
    _add_task_args(v, _task_help(tuple(TASKS)), head=False, judge=True)
    v.add_argument("--workers", type=int, default=1, help="processes, one interpreter each (default 1)")
    _add_ray_arg(v, "the samples (shards of them)")
    v.add_argument("--no-layers", action="store_true", help="skip the per-layer diagnosis")
    v.add_argument("--thresholds", help="thresholds file (.json/.toml) overriding the defaults")
    for flag, (key, helptext) in commands.THRESHOLD_FLAGS.items():
        v.add_argument(f"--{flag}", type=float, help=f"{helptext} (default {THRESHOLDS[key]})")
    v.add_argument("--report-dir", help="where report.json/report.html go (default TARGET/verify, or "
                                        "./verify_report without a conversion folder)")
    v.add_argument("--force", action="store_true", help="replace an existing report folder")
    v.add_argument("--json", action="store_true", help="print report.json instead of the summary")
    _add_preprocess_args(v)
    v.set_defaults(handler=commands.verify)


def _add_recover(sub: Any) -> None:
    r = sub.add_parser("recover", help="convert, verify, and on failure try accuracy-recovery strategies in order")
    r.add_argument("model", help="'package.module:factory' or an .onnx file")
    r.add_argument("-o", "--out", required=True, help="output directory: one sub-folder per strategy tried")
    r.add_argument("--data", action="append", metavar="[NAME=]PATH",
                   help=f"calibration data: {DATA_HELP} (default: the bundled photos)")
    r.add_argument("--input-shape", action="append", type=_input_shape, metavar="NAME:DIMS", help=SHAPE_HELP)
    r.add_argument("--input-layout", action="append", type=_input_layout, metavar="NAME:LAYOUT", help=LAYOUT_HELP)
    r.add_argument("--input-value", action="append", type=_input_value, metavar="NAME=VALUE", help=VALUE_HELP)
    r.add_argument("--views", type=int, default=1, help="calibration views per photo (default 1)")
    r.add_argument("--verify-data", action="append", metavar="[NAME=]PATH",
                   help="held-out verification data, as --data (default: the bundled photos)")
    r.add_argument("--verify-views", type=int, default=1)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--thresholds", help="thresholds file (.json/.toml) overriding the verify defaults")
    _add_task_args(r, "every attempt converted and verified for this task, as convert --task and verify --task "
                      "would: " + _task_help(tuple(TASKS)) + ". With auto, an output in a YOLO layout is not judged "
                      "by tensor metrics: the baseline fails naming --task detect", head=True, judge=True)
    r.add_argument("--allow-float-ops", action="store_true",
                   help="last resort: keep the worst layers in float (the result is NOT full-integer)")
    r.add_argument("--float-layers", type=int, default=3, help="how many layers the float fallback keeps (3)")
    r.add_argument("--strategies", help="comma-separated strategies to try, in this order: " +
                                        ", ".join(s.name for s in STRATEGIES) + " (default: all but " +
                                        ", ".join(s.name for s in STRATEGIES if not s.by_default) +
                                        "; baseline always)")
    r.add_argument("--workers", type=int, default=1)
    r.add_argument("--max-latency-ratio", type=float, default=MAX_LATENCY_RATIO, metavar="R",
                   help=f"a strategy whose file is more than R times slower than the baseline int8 file (1 thread, "
                        f"XNNPACK, timed in the same run) cannot win; it is still shown with its cost (default "
                        f"{MAX_LATENCY_RATIO:g}: int16x8, tens of times slower, does not win)")
    r.add_argument("--rounding-iterations", type=int, default=ROUNDING_ITERATIONS, metavar="N",
                   help=f"optimisation steps per block of the adaround strategy (default {ROUNDING_ITERATIONS}; "
                        f"its time grows with N)")
    _add_ray_arg(r, "the strategies that follow the baseline (concurrently; same winner as without)")
    r.add_argument("--force", action="store_true", help="replace an existing output directory")
    _add_preprocess_args(r)
    r.set_defaults(handler=commands.recover)


def _add_batch(sub: Any) -> None:
    b = sub.add_parser("batch", help="convert and verify every model of a zoo file (TOML): one folder each, one table")
    b.add_argument("zoo", help="ZOO.toml: [defaults] and [models.NAME] tables whose keys are convert's options, "
                               "each with a .verify table of verify's options (see the README)")
    b.add_argument("-o", "--out", required=True, help="output directory: one folder per model, batch.json")
    b.add_argument("--force", action="store_true", help="replace an existing output directory")
    b.add_argument("--json", action="store_true", help="print batch.json instead of the table")
    _add_ray_arg(b, "the models (one task each)")
    b.set_defaults(handler=commands.batch)


def _add_android(sub: Any) -> None:
    a = sub.add_parser("android", help="the on-device side: bundles, phone runs, ARM64 parity check")
    asub = a.add_subparsers(dest="android_command", required=True)
    b = asub.add_parser("bundle", help="write a bundle (model, quantized inputs, expected outputs, manifest)")
    b.add_argument("target", help="a conversion output folder, or an int8 .tflite (then give --preset/--spec)")
    b.add_argument("-o", "--out", required=True, help="bundle directory (must not exist unless --force)")
    b.add_argument("--data", action="append", metavar="[NAME=]PATH",
                   help=f"inputs to bundle: {DATA_HELP} (default: the bundled photos)")
    b.add_argument("--num-samples", type=int, default=8, help="verification inputs (default 8)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--max-step-diff", type=int, help="allowed output difference in int8 steps (default 1)")
    b.add_argument("--min-cosine", type=float, help="minimum cosine per output (default 0.999)")
    b.add_argument("--runs", type=int, default=20, help="timed runs on the device (default 20)")
    b.add_argument("--force", action="store_true", help="replace an existing bundle directory")
    _add_preprocess_args(b)
    b.set_defaults(handler=commands.android_bundle)
    r = asub.add_parser("run", help="push a bundle to a phone with adb, run the harness app, compare")
    r.add_argument("bundle")
    r.add_argument("--serial", help="adb serial of the phone (adb devices)")
    r.add_argument("--adb", default="adb", help="the adb executable (default: adb on PATH)")
    r.add_argument("--no-xnnpack", action="store_true", help="compare the builtin kernels' outputs instead")
    r.add_argument("-o", "--out", help="write the comparison report (JSON) here")
    r.add_argument("--force", action="store_true", help="replace an existing report file")
    r.set_defaults(handler=commands.android_run)
    c = asub.add_parser("compare", help="compare a device's results JSON with its bundle: pass/fail")
    c.add_argument("results")
    c.add_argument("bundle")
    c.add_argument("-o", "--out", help="write the comparison report (JSON) here")
    c.add_argument("--force", action="store_true", help="replace an existing report file")
    c.set_defaults(handler=commands.android_compare)
    k = asub.add_parser("arm64-check", help="run the bundle on emulated aarch64 LiteRT (debootstrap + qemu; root)")
    k.add_argument("bundle")
    k.add_argument("--root", help="the arm64 root to build or reuse (default ~/.cache/tflite-int8/arm64-bookworm)")
    k.add_argument("--rebuild", action="store_true", help="build the arm64 root again")
    k.add_argument("--runs", type=int, default=5, help="timed runs per runtime (default 5; emulation is slow)")
    k.add_argument("-o", "--out", help="where the aarch64 results JSON goes (default BUNDLE.arm64-results.json)")
    k.add_argument("--force", action="store_true", help="replace an existing results file")
    k.set_defaults(handler=commands.android_arm64)
