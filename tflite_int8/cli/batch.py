"""`tflite-int8 batch ZOO.toml -o OUT`: convert and verify many models, each described by the CLI's own options.

ZOO.toml::

    [defaults]              # convert options every model shares: convert's long flags, without the dashes
    data = "calibration/"
    preset = "imagenet"
    [defaults.verify]       # verify options every model shares: verify's long flags
    data = "validation/"
    no-layers = true

    [models.mobilenet]      # one model: convert's positional `model`, and convert options
    model = "torchvision_models:mobilenet_v2"
    [models.mobilenet.verify]
    min-top1 = 0.95

A model's options become the argument list of ``convert`` (``-o OUT/NAME``) and of ``verify OUT/NAME``, parsed
by the CLI's own parser: the accepted keys, types, choices and messages are the commands' own.  Every model is
parsed before anything runs, so a typo fails at once (exit 2, nothing written).  The models run one after the
other, or as Ray tasks (``--ray``); a model that fails never stops the others.  OUT holds one folder per model
(its conversion and ``verify/`` reports; none when it did not convert) and ``batch.json``.  Exit code: the worst
model's: 2 if any model had bad input or did not convert, else 1 if any failed a check, else 0.
"""
from __future__ import annotations

import argparse
import io
import re
import time
import tomllib
import warnings
from contextlib import redirect_stderr
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..cluster import RAY_TIMEOUT, check_ray, executor
from ..data.files import check_destination, dump_json, staging
from ..errors import ConversionError, InputError, Int8Error, Int8Warning
from ..progress import Progress, or_silent
from .commands import UsageError, convert_from_args, verify_from_args
from .parser import build_parser

# Options `batch` sets itself for every model (its folder, its reports) or that only make sense once per run.
SET_BY_BATCH = {"convert": ("out", "force", "json"),
                "verify": ("target", "report-dir", "force", "json", "ray", "ray-timeout")}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
STATUS = {0: "passed", 1: "check failed"}  # exit code 2: "bad input" or "unconvertible" (see _failed)


@dataclass(frozen=True)
class ModelJob:
    """One model: its parsed convert and verify arguments (their folders set at run time)."""

    name: str
    convert: argparse.Namespace
    verify: argparse.Namespace


def run_batch(zoo: str | Path, out: str | Path, *, ray: str | None = None, ray_timeout: float = RAY_TIMEOUT,
              force: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Convert and verify every model of ``zoo`` into ``out``; the batch.json document (rows, exit code)."""
    out = Path(out)
    if ray is not None:
        check_ray(ray, ray_timeout)
    check_destination(out, force)
    jobs = read_zoo(zoo)
    t = time.perf_counter()
    with staging(out, force) as stage, executor(ray, ray_timeout) as ex:
        bar = or_silent(progress)(f"batch: {len(jobs)} models", len(jobs))
        try:
            run = partial(run_model, progress=None if ex.remote else progress)
            rows = ex.map(run, jobs, shared=str(stage), done=lambda i, row: bar.update(1),
                          labels=[f"model {j.name}" for j in jobs]).results
        finally:
            bar.close()
        doc = {"zoo": str(Path(zoo).resolve()), "models": rows, "exit_code": max(r["exit_code"] for r in rows),
               "executor": ex.where, "seconds": round(time.perf_counter() - t, 1)}
        (stage / "batch.json").write_text(dump_json(doc))
    return doc


def read_zoo(zoo: str | Path) -> list[ModelJob]:
    """Every model of the zoo file, parsed by the CLI's parser (an InputError names the file, model and key)."""
    path = Path(zoo)
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the zoo file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML: {exc}") from None
    extra = set(doc) - {"defaults", "models"}
    if extra:
        raise InputError(f"{path}: unknown table(s) {sorted(extra)}; a zoo file has [defaults] and [models.NAME]")
    defaults, models = doc.get("defaults", {}), doc.get("models", {})
    if not models or not all(isinstance(m, dict) for m in models.values()):
        raise InputError(f"{path}: no models; describe each in a [models.NAME] table (model = ..., and convert options)")
    jobs = []
    for name, table in models.items():
        where = f"{path} [models.{name}]"
        if not NAME.match(name):
            raise InputError(f"{where}: the name is also the output folder: letters, digits, '.', '_', '-' only")
        conv = {k: v for k, v in {**defaults, **table}.items() if k != "verify"}
        model = conv.pop("model", None)
        if not isinstance(model, str):
            raise InputError(f"{where}: model = 'package.module:factory' or 'path/to/model.onnx' is required")
        checks = {**defaults.get("verify", {}), **table.get("verify", {})}
        jobs.append(ModelJob(name, _parse("convert", where, conv, [model, "-o", name]),
                             _parse("verify", f"{where}.verify", checks, [name])))
    return jobs


def _parse(command: str, where: str, table: dict[str, Any], head: list[str]) -> argparse.Namespace:
    """``table`` as ``command``'s argument list, through the CLI's parser."""
    parser = build_parser()
    options = _options(parser.commands[command])
    argv = [command, *head]
    for key, value in table.items():
        flag = str(key).replace("_", "-")
        if flag not in options or flag in SET_BY_BATCH[command]:
            allowed = ", ".join(k for k in options if k not in SET_BY_BATCH[command])
            raise InputError(f"{where}: unknown key '{key}'; the keys are {command}'s options: {allowed}")
        argv += _flag(flag, value, options[flag], where)
    err = io.StringIO()
    try:
        with redirect_stderr(err):
            return parser.parse_args(argv)
    except SystemExit:
        message = (err.getvalue().strip().splitlines() or ["invalid options"])[-1]
        raise InputError(f"{where}: {message.split('error: ', 1)[-1]}") from None


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """A command's long options, without the dashes (argparse lists its actions only in ``_actions``)."""
    return {s[2:]: a for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"}


def _flag(flag: str, value: Any, action: argparse.Action, where: str) -> list[str]:
    if action.nargs == 0:  # an on/off switch
        if not isinstance(value, bool):
            raise InputError(f"{where}: {flag} is a switch: true or false, got {value!r}")
        return [f"--{flag}"] if value else []
    if isinstance(value, bool) or isinstance(value, dict):
        raise InputError(f"{where}: {flag} takes a value, got {value!r}")
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    return [f"--{flag}={value}"]


def run_model(stage: str, job: ModelJob, progress: Progress | None = None) -> dict[str, Any]:
    """Convert and verify one model into ``stage``/NAME; its row (never raises for the model's own failure)."""
    t = time.perf_counter()
    folder = str(Path(stage) / job.name)
    conv = argparse.Namespace(**{**vars(job.convert), "out": folder, "progress": progress})
    checks = argparse.Namespace(**{**vars(job.verify), "target": folder, "progress": progress})
    row: dict[str, Any] = {"model": job.name, "source": conv.model}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", Int8Warning)
        _convert_verify(stage, folder, conv, checks, row)
    row["warnings"] = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, Int8Warning)))
    row["folder"] = job.name if (Path(folder) / "conversion.json").is_file() else None
    row["seconds"] = round(time.perf_counter() - t, 1)
    return row


def _convert_verify(stage: str, folder: str, conv: argparse.Namespace, checks: argparse.Namespace,
                    row: dict[str, Any]) -> None:
    """Fill ``row`` with the model's figures, or with its failure (and the step that failed)."""
    step = "convert"
    try:
        if not Path(stage).is_dir():
            raise InputError(f"the output folder {stage} is not visible where this model ran: batch --ray needs it "
                             f"on a filesystem every Ray node shares (same path)")
        result = convert_from_args(conv)
        row["int8_bytes"] = result.int8_path.stat().st_size
        step = "verify"
        verdict = verify_from_args(checks)
        passed = verdict.passed and result.passed  # convert's own int8 check counts too
        row.update(_measures(verdict.report), exit_code=0 if passed else 1, failures=result.failures + verdict.failures)
        row["status"] = STATUS[row["exit_code"]]
    except (Int8Error, UsageError, OSError) as exc:
        row.update(_failed(exc, step))
    except Exception as exc:  # a bug met by one model must not stop the others; it is reported as an error
        row.update(status="error", exit_code=2, stage=step, error=f"{type(exc).__name__}: {exc}")


def _failed(exc: BaseException, step: str) -> dict[str, Any]:
    code = getattr(exc, "exit_code", 2)
    status = STATUS[1] if code == 1 else "unconvertible" if isinstance(exc, ConversionError) else "bad input"
    return {"status": status, "exit_code": code, "stage": step, "error": str(exc)}


def _measures(report: dict[str, Any]) -> dict[str, Any]:
    """The figures of the summary table: worst output's cosine and SQNR, and the task's agreement."""
    outs = report["outputs"].values()
    task = report.get(report.get("task", ""), {}) or {}
    return {"cosine": min(o["cosine"] for o in outs), "sqnr_db": min(o["sqnr_db"] for o in outs),
            "top1_agreement": task.get("top1_agreement"), "box_agreement": task.get("box_agreement")}
