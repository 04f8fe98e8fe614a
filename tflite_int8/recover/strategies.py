"""Accuracy recovery: when the int8 model fails verification, try strategies from least to most cost.

:data:`STRATEGIES` is the ordered table.  Each strategy *prepares* an attempt (what to convert, how it
differs from the baseline); every attempt is a full conversion in its own sub-folder, verified on the
same held-out data, and the first that passes wins.  Strategies that change the float weights are
verified against the original weights (the baseline's exported ONNX), so what they cost is counted.

1. ``baseline``: convert with the defaults (MSE-optimal activation ranges);
2. ``calibration``: more calibration samples (4x the views of each photo), MSE-optimal activation ranges
   (:mod:`tflite_int8.convert.ranges`; the default, so only the data grows);
3. ``bias-correction``: empirical bias correction of every Conv/Gemm (:mod:`.bias_correction`) on the
   ONNX model, weights untouched, with MSE ranges: still full-integer int8;
4. ``weight-rounding``: every Conv/Gemm weight rounded on TFLite's own int8 grid to minimise the layer's
   output error on calibration data (GPTQ, :mod:`.weight_rounding`), then each bias corrected layer by layer
   for the mean shift left, with MSE ranges: still full-integer int8;
5. ``adaround``: every Conv/Gemm weight rounded on the int8 grid block by block so that each block, fed by the
   already rounded model with int8 activations and quantizing its own activations as TFLite will, gives the float
   block's output (AdaRound + QDrop, :mod:`.adaround`), with MSE ranges: still full-integer int8;
6. ``int16x8``: 16-bit activations, 8-bit weights (those of ``weight-rounding``) for the whole model:
   integer-only, but int16 I/O and no XNNPACK kernels: tens of times slower (MobileNetV2: about 50x), so over
   the default latency budget;
7. ``float-fallback`` (only with ``allow_float_ops``): the worst layers of the per-layer diagnosis kept in
   float inside the int8 model: **not** full-integer, and named so.

Every attempt is timed against the baseline int8 file in the same process (1 thread, XNNPACK, median of
interleaved runs: :mod:`tflite_int8.runtime.latency`).  A strategy whose file is slower than
``max_latency_ratio`` times the baseline cannot win (:func:`winner`): its row keeps the verify verdict in
``passed`` and says why in ``latency_note``, and the next strategy is tried.  So ``int16x8`` (no 16-bit kernels
in XNNPACK: tens of times slower) is shown with its cost but does not win by default.

Every attempt is converted for the same task as the baseline (``task``, ``head_fix``, ``decode``: a detector's
head split; the attempts that start from the baseline's head-split ONNX carry its head, ``convert(head_from=)``)
and verified as ``verify`` would (same task, thresholds, ``blank``, ``mask_threshold``): a row passes only if
its task metrics pass, and says which decided (``decided_by``, :mod:`.judging`).  With ``task="auto"`` an
output in a YOLO layout judged by tensor metrics alone fails the baseline, naming ``--task detect``.

A strategy that fails (an op the converter refuses, say) is a failed row with its error; the next one is
tried.  ``recovery.json`` in the output folder holds a row per strategy tried (accuracy, size, latency and
its ratio to the baseline) and the winner.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..cluster import RAY_TIMEOUT, check_ray, executor
from ..config.inputs import InputTable
from ..config.preprocess import PreprocessSpec
from ..config.recipe import MIXED_FLOAT, Recipe
from ..config.tasks import check_decode, check_task
from ..convert import converter
from ..convert.pipeline import convert
from ..convert.quantize import crash_naming_ops
from ..convert.record import Conversion, read_conversion
from ..convert.translate import translate
from ..data.files import check_destination, dump_json, staging
from ..data.readers import default_data_dir, open_reader
from ..errors import InputError, Int8Error
from ..progress import Progress, step
from ..runtime import child
from ..runtime.latency import conditions, median_latency_ms
from ..runtime.reference import declared_class_names
from ..verify.core import verify
from .adaround import ITERATIONS as ROUNDING_ITERATIONS, adaround
from .bias_correction import bias_correct
from .concurrent import attempts_in_order
from .judging import undecided, verdict
from .weight_rounding import round_weights

MSE = Recipe(ranges="mse")
QAT_STOP = ("the model is quantization-aware: it was converted with its own learned scales (baseline), and every "
            "other strategy would re-calibrate or re-round it, quantizing it twice; fine-tune it further, or recover "
            "from the float model it was trained from")
SAMPLES = 128  # calibration samples the float-weight transforms measure layer inputs on
MAX_LATENCY_RATIO = 1.5  # default budget: an attempt at most this many times slower than the baseline int8 file


@dataclass
class RecoveryResult:
    passed: bool
    winner: str | None
    attempts: list[dict[str, Any]]
    out_dir: Path
    max_latency_ratio: float | None = MAX_LATENCY_RATIO
    stopped: str | None = None  # why the strategies after the baseline were not tried


@dataclass
class Context:
    """What the strategies share: the user's request, the staging folder, the baseline once it exists."""

    model: Any
    stage: Path
    spec: PreprocessSpec | None
    data: Any
    views: int
    seed: int
    float_layers: int
    progress: Progress | None
    max_latency_ratio: float | None = MAX_LATENCY_RATIO
    input_shapes: Mapping[str, Any] | None = None
    rounding_iterations: int = ROUNDING_ITERATIONS
    task: str = "auto"  # convert's task, head_fix and decode: the same for every attempt
    head_fix: bool = True
    decode: str = "model"
    input_layouts: Mapping[str, str] | None = None  # convert's: every attempt
    input_values: Mapping[str, Any] | None = None  # convert's: the user's model only (the baseline's ONNX has them)
    baseline: Conversion | None = None
    baseline_layers: list[dict[str, Any]] = field(default_factory=list)
    _samples: list | None = None

    @property
    def base_spec(self) -> PreprocessSpec | None:
        """The baseline's image preprocessing (None for a model without image inputs)."""
        return self.baseline.inputs.first_preprocess if self.baseline else self.spec

    @property
    def feeding(self) -> Any:
        """The baseline's inputs (readers, translate and calibration take them)."""
        return self.baseline.inputs if self.baseline else self.spec

    def task_settings(self, from_baseline_onnx: bool) -> dict[str, Any]:
        """convert's task arguments; an ONNX file made from the baseline's head-split model.onnx carries its head."""
        settings: dict[str, Any] = dict(task=self.task, head_fix=self.head_fix, decode=self.decode)
        if from_baseline_onnx and self.baseline is not None and self.baseline.head.get("fix"):
            settings["head_from"] = self.original_onnx.parent  # on Ray, the link in the attempt's scratch folder
        return settings

    @property
    def original_onnx(self) -> Path:
        return self.stage / "baseline" / "model.onnx"

    def reader(self, num_samples: int | None = None) -> Any:
        source = self.data if self.data is not None else default_data_dir()
        return open_reader(source, self.feeding, views=self.views, seed=self.seed, num_samples=num_samples,
                           warn_few=False)

    def samples(self) -> list:
        """Calibration samples for the float-weight transforms: a random subset across all photos."""
        if self._samples is None:
            reader = self.reader()
            if len(reader) > SAMPLES:
                reader = self.reader(SAMPLES)
            names = self.baseline.inputs.names if self.baseline else ["input"]
            self._samples = [dict(zip(names, s.arrays(names))) for s in reader]
        return self._samples


@dataclass(frozen=True)
class Attempt:
    """One prepared try: ``make(folder)`` writes the attempt's conversion folder and returns the .tflite."""

    how: str
    make: Callable[[Path], Path]
    changes_weights: bool = False
    full_integer: bool = True


@dataclass(frozen=True)
class Strategy:
    name: str
    prepare: Callable[[Context], Attempt | None]  # None: nothing to try
    needs_consent: bool = False  # only with allow_float_ops (the result is not full-integer)
    by_default: bool = True  # False: tried only when named in ``strategies`` (too slow for every run)


def _converted(ctx: Context, source: Any, *, spec: PreprocessSpec | None = None, recipe: Recipe = Recipe(),
               views: int | None = None, tflite: str | None = None, from_baseline: bool = False
               ) -> Callable[[Path], Path]:
    """``make`` converting ``source``: the user's model, or (``from_baseline``) an ONNX file made from the
    baseline's model.onnx."""
    settings = ctx.task_settings(from_baseline_onnx=from_baseline)

    def make(folder: Path) -> Path:
        conv = convert(source, folder, spec=spec or ctx.spec, data=ctx.data,
                       views=ctx.views if views is None else views, seed=ctx.seed, recipe=recipe,
                       input_shapes=ctx.input_shapes, input_layouts=ctx.input_layouts,
                       input_values=None if from_baseline else ctx.input_values, progress=ctx.progress, **settings)
        return conv.out_dir / tflite if tflite else conv.int8_path
    return make


def _baseline(ctx: Context) -> Attempt:
    return Attempt("convert with defaults", _converted(ctx, ctx.model))


def _calibration(ctx: Context) -> Attempt:
    more = max(4, 4 * ctx.views)
    return Attempt(f"{more} views per calibration photo (was {ctx.views}), MSE-optimal activation ranges",
                   _converted(ctx, ctx.model, views=more, recipe=MSE))


def _bias_correction(ctx: Context) -> Attempt:
    corrected = ctx.stage / "bias_corrected.onnx"
    info = bias_correct(ctx.original_onnx, corrected, ctx.samples())
    return Attempt(f"empirical bias correction of {info['layers']} layers (largest shift "
                   f"{info['largest_shift']:.3g}) on the ONNX model, MSE ranges",
                   _converted(ctx, corrected, spec=ctx.base_spec, recipe=MSE, from_baseline=True),
                   changes_weights=True)


def _rounded_weights(ctx: Context) -> tuple[Path, dict[str, Any]]:
    rounded = ctx.stage / "weights_rounded.onnx"
    info = round_weights(ctx.original_onnx, rounded, ctx.samples(), progress=ctx.progress)
    return rounded, info


def _weight_rounding(ctx: Context) -> Attempt:
    rounded, info = _rounded_weights(ctx)
    return Attempt(f"GPTQ rounding of {info['layers']} layers on the int8 grid "
                   f"({info['weights_rounded_the_other_way']} weights rounded away from nearest, "
                   f"{info['channels']} channels), then sequential bias correction (largest shift "
                   f"{info['largest_bias_shift']:.3g}), MSE ranges",
                   _converted(ctx, rounded, spec=ctx.base_spec, recipe=MSE, from_baseline=True),
                   changes_weights=True)


def _adaround(ctx: Context) -> Attempt:
    rounded = ctx.stage / "weights_adarounded.onnx"
    info = adaround(ctx.original_onnx, rounded, ctx.samples(), iterations=ctx.rounding_iterations,
                    progress=ctx.progress)
    return Attempt(f"AdaRound block by block with int8 activations (QDrop) on the int8 grid: {info['layers']} layers "
                   f"in {info['blocks']} blocks, {info['iterations']} steps each "
                   f"({info['weights_rounded_the_other_way']} weights rounded away from nearest), MSE ranges",
                   _converted(ctx, rounded, spec=ctx.base_spec, recipe=MSE, from_baseline=True),
                   changes_weights=True)


def _int16x8(ctx: Context) -> Attempt:
    rounded = ctx.stage / "weights_rounded.onnx"
    if not rounded.is_file():  # weight-rounding failed before writing it
        rounded, _ = _rounded_weights(ctx)
    return Attempt("16-bit activations, 8-bit weights rounded as in weight-rounding (integer-only, int16 I/O)",
                   _converted(ctx, rounded, spec=ctx.base_spec, recipe=Recipe(variants=("int16x8",)),
                              tflite="model_int16x8.tflite", from_baseline=True), changes_weights=True)


@dataclass(frozen=True)
class FallbackJob:
    """int8 with the ``denylist`` tensors' layers in float (TF's QuantizationDebugger), written to ``path``;
    picklable, run in a child process (the calibrator can crash)."""

    saved_model: Path
    reader: Any
    spec: PreprocessSpec | InputTable
    denylist: tuple[str, ...]
    path: Path

    def __call__(self, progress: Progress) -> None:
        import tensorflow as tf

        dataset = converter.calibration_batches(self.reader, self.spec, progress)
        c = converter.build(self.saved_model, MIXED_FLOAT, Recipe(), dataset)
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(self.denylist))
        debugger = tf.lite.experimental.QuantizationDebugger(converter=c, debug_dataset=dataset,
                                                             debug_options=options)
        self.path.write_bytes(debugger.get_nondebug_quantized_model())


def _float_fallback(ctx: Context) -> Attempt | None:
    """The worst ``float_layers`` layers of the baseline's diagnosis left in float (QuantizationDebugger denylist)."""
    worst = [r["tensor"] for r in ctx.baseline_layers[:ctx.float_layers]]
    if not worst or ctx.baseline is None:
        return None

    def make(folder: Path) -> Path:
        shutil.copytree(ctx.baseline.out_dir, folder)
        reader = ctx.reader()
        names = ctx.feeding.names
        tr = translate(folder / "model.onnx", ctx.stage / ".work-fallback", ctx.feeding,
                       samples=[dict(zip(names, s.arrays(names))) for _, s in zip(range(20), reader)])
        path = folder / MIXED_FLOAT.file_name
        try:
            child.call(FallbackJob(tr.saved_model, reader, ctx.feeding, tuple(worst), path),
                       what="the TF converter (float fallback)", stage="float-fallback", progress=ctx.progress,
                       fail=crash_naming_ops(tr.float32_tflite, "float-fallback"))
        finally:
            shutil.rmtree(ctx.stage / ".work-fallback", ignore_errors=True)
        return path

    return Attempt(f"{len(worst)} worst layers kept in float: {', '.join(worst)} (NOT full-integer)", make,
                   full_integer=False)


STRATEGIES: tuple[Strategy, ...] = (
    Strategy("baseline", _baseline),
    Strategy("calibration", _calibration),
    Strategy("bias-correction", _bias_correction),
    Strategy("weight-rounding", _weight_rounding),
    # measured on MobileNetV2: 76.3 % top-1, as weight-rounding, at ~1 h of rounding on 2 cores: asked for by name
    Strategy("adaround", _adaround, by_default=False),
    Strategy("int16x8", _int16x8),
    Strategy("float-fallback", _float_fallback, needs_consent=True),
)


def recover(model: Any, out_dir: str | Path, *, spec: PreprocessSpec | None = None, data: Any = None,
            verify_data: Any = None, views: int = 1, verify_views: int = 1, seed: int = 0,
            thresholds: Mapping[str, float] | str | Path | None = None, task: str = "auto",
            head_fix: bool = True, decode: str = "model", blank: int = 0, mask_threshold: float = 0.5,
            allow_float_ops: bool = False, float_layers: int = 3, workers: int = 1,
            max_latency_ratio: float | None = MAX_LATENCY_RATIO, force: bool = False,
            input_shapes: Mapping[str, Any] | None = None, input_layouts: Mapping[str, str] | None = None,
            input_values: Mapping[str, Any] | None = None, strategies: Sequence[str] | None = None,
            progress: Progress | None = None, ray: str | None = None, ray_timeout: float = RAY_TIMEOUT,
            rounding_iterations: int = ROUNDING_ITERATIONS) -> RecoveryResult:
    """Convert, verify, and on failure try the strategies in order until one passes within the latency budget.

    ``max_latency_ratio``: the slowest an attempt may be, as a multiple of the baseline int8 file's latency
    (None: no budget).  ``input_shapes``, ``input_layouts``, ``input_values``: as ``convert``'s.
    ``rounding_iterations``: optimisation steps per block of the ``adaround`` strategy (its run time grows with it).
    ``ray``: a Ray cluster (``local``, ``auto``, an address) runs the strategies after the baseline at once
    (:mod:`.concurrent`): same rows, winner and files as in order; the output folder must be on a filesystem every
    node shares; an existing cluster must answer within ``ray_timeout`` seconds.  ``strategies``: the names to
    try (in table order; ``baseline`` always runs first); default all of them.  ``task``, ``head_fix``, ``decode``:
    as ``convert``'s, for every attempt; ``task``, ``blank``, ``mask_threshold``: as ``verify``'s.  See the module
    docstring.
    """
    out = Path(out_dir)
    check_destination(out, force)
    check_task(task)
    check_decode(decode)
    if float_layers < 1:
        raise InputError(f"float_layers must be at least 1, got {float_layers}")
    chosen = _chosen(strategies)
    if rounding_iterations < 1:
        raise InputError(f"rounding_iterations must be at least 1, got {rounding_iterations}")
    if max_latency_ratio is not None and not max_latency_ratio >= 1.0:
        raise InputError(f"max_latency_ratio must be at least 1 (the baseline itself is 1x), got {max_latency_ratio}")
    # class names declared by the model (a zoo factory's ImageNet list): the later attempts start from ONNX files
    checks = dict(data=verify_data, views=verify_views, seed=seed + 1, thresholds=thresholds, workers=workers,
                  task=task, blank=blank, mask_threshold=mask_threshold, class_names=declared_class_names(model))
    if ray is not None:
        check_ray(ray, ray_timeout)
    with staging(out, force) as stage, executor(ray, ray_timeout) as ex:
        ctx = Context(model, stage, spec, data, views, seed, float_layers, progress, max_latency_ratio,
                      input_shapes, rounding_iterations, task, head_fix, decode, input_layouts, input_values)
        todo = [s for s in STRATEGIES if (allow_float_ops or not s.needs_consent) and s.name in chosen]
        rows = [_stepped(todo[0], ctx, checks, diagnose=allow_float_ops)]  # the baseline
        ctx.baseline = read_conversion(stage / "baseline")  # every later strategy starts from it
        stopped = undecided(ctx.baseline, task, rows[0]["task"])
        if stopped:  # a detector judged by tensor metrics: no verdict, and none for the other strategies
            rows[0].update(passed=False, failures=[f for f in rows[0]["failures"] if f != stopped] + [stopped],
                           decided_by="nothing: tensor metrics cannot judge a detector (give --task detect)")
        elif winner(rows) is None and ctx.baseline.report.get("quantization_source") == "qat":
            stopped = QAT_STOP  # every later strategy re-calibrates or re-rounds: not for a QAT model
        elif winner(rows) is None:  # the others do not depend on each other: with ray, at once
            rows += attempts_in_order(todo[1:], partial(_stepped, checks=checks, diagnose=False), ctx, ex,
                                      stop=lambda row: row is not None and winner([row]) is not None)
        attempts = [r for r in rows if r is not None]
        won = winner(attempts)
        (stage / "recovery.json").write_text(dump_json({
            "winner": won, "passed": won is not None, "full_integer": won not in (None, "float-fallback"),
            "max_latency_ratio": max_latency_ratio, "latency_conditions": conditions(), "attempts": attempts,
            "stopped": stopped}))
    return RecoveryResult(won is not None, won, attempts, out, max_latency_ratio, stopped)


def winner(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """The winning strategy: the first row, in table order, that passed verification within the latency budget."""
    return next((r["strategy"] for r in rows if r["passed"] and r.get("within_budget", False)), None)


def _stepped(strategy: Strategy, ctx: Context, checks: dict[str, Any], diagnose: bool) -> dict[str, Any] | None:
    with step(ctx.progress, f"recover: {strategy.name}"):
        return _try(strategy, ctx, checks, diagnose)


def _chosen(names: Sequence[str] | None) -> set[str]:
    known = [s.name for s in STRATEGIES]
    if names is None:
        return {s.name for s in STRATEGIES if s.by_default}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"unknown recovery strateg{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
                         f"choose from {', '.join(known)}")
    return set(names) | {"baseline"}


def _try(strategy: Strategy, ctx: Context, checks: dict[str, Any], diagnose: bool) -> dict[str, Any] | None:
    """Prepare, make and verify one attempt; its row (a failed row with the error if any step failed)."""
    t = time.perf_counter()
    attempt: Attempt | None = None
    try:
        attempt = strategy.prepare(ctx)
        if attempt is None:
            return None
        model = attempt.make(ctx.stage / strategy.name)
        # A strategy that changed the float weights is judged against the original ones (the baseline's
        # exported ONNX), never against its own changed float model.
        original = ctx.original_onnx if attempt.changes_weights else None
        res = verify(ctx.stage / strategy.name, tflite=model, reference=original, layers=diagnose,
                     progress=ctx.progress, **checks)
    except Exception as exc:  # any failure of a later strategy is its row; the ladder goes on
        if strategy.name == "baseline" or not isinstance(exc, (Int8Error, ValueError, RuntimeError)):
            raise  # nothing to recover from (the model does not convert or verify at all), or a bug to show
        error = str(exc) if isinstance(exc, Int8Error) else f"{type(exc).__name__}: {exc}"
        return {"strategy": strategy.name, "how": attempt.how if attempt else "", "passed": False,
                "full_integer": attempt.full_integer if attempt else None, "error": error,
                "failures": [error], "seconds": round(time.perf_counter() - t, 1)}
    row = {"strategy": strategy.name, "how": attempt.how, "full_integer": attempt.full_integer,
           **verdict(res.report, res.passed, res.failures, model), "seconds": round(time.perf_counter() - t, 1)}
    row.update(_latency(ctx, model))
    row["file"] = f"{strategy.name}/{model.name}"
    row["reference"] = "the original model" if original is None else "baseline/model.onnx (original weights)"
    if original is not None:  # what the weight change alone costs, float against float
        changed = next(st for st in res.report["stages"] if st["step"] == "onnxruntime")["outputs"]
        row["float_change_sqnr_db"] = min(o["sqnr_db"] for o in changed.values())
    if diagnose:
        ctx.baseline_layers = list(res.report.get("layers", []))
    return row


def _latency(ctx: Context, model: Path) -> dict[str, Any]:
    """The attempt's latency, timed interleaved with the baseline int8 file, and whether it is within budget."""
    if ctx.baseline is None:  # this is the baseline
        ms = base_ms = median_latency_ms([model])[0]
    else:
        base_ms, ms = median_latency_ms([ctx.baseline.int8_path, model])
    ratio = ms / base_ms if base_ms > 0 else 1.0
    limit = ctx.max_latency_ratio
    within = limit is None or ratio <= limit
    budget = "no latency budget" if limit is None else f"limit {limit:g}x"
    note = (f"over latency budget: {ratio:.1f}x the baseline int8 ({budget})" if not within else
            "the baseline int8 file (1x by definition)" if ctx.baseline is None else
            f"{ratio:.2f}x the baseline int8 ({budget})")
    return {"latency_ms_1_thread": ms, "baseline_latency_ms": base_ms, "latency_ratio": round(ratio, 3),
            "within_budget": within, "latency_note": note}
