"""conversion.json: one record of a conversion, written stage by stage and read back typed.

Writers go through :func:`new_record` and the :func:`stage` timing context; every reader (verify, recover,
the Android bundle, the pytest plugin) goes through :func:`read_conversion`, which answers with a
:class:`Conversion`: paths, names, head, calibration, recipe and preprocessing, defaults applied once.
"""
from __future__ import annotations

import datetime
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..config.inputs import InputSpec, InputTable
from ..config.preprocess import PreprocessSpec
from ..config.recipe import FULL_INTEGER, VARIANTS, Recipe
from ..errors import InputError
from ..runtime.versions import __version__, versions

SCHEMA = 1
FILE = "conversion.json"


def new_record() -> dict[str, Any]:
    """The header every conversion.json starts with."""
    return {"schema": SCHEMA, "tool": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": versions(), "stages": {}, "adjustments": []}


@contextmanager
def stage(record: dict[str, Any], name: str) -> Iterator[dict[str, Any]]:
    """Time one stage; what the block puts in the yielded dict is stored beside ``seconds``."""
    entry: dict[str, Any] = {}
    t = time.perf_counter()
    yield entry
    record["stages"][name] = {"seconds": round(time.perf_counter() - t, 3), **entry}


@dataclass(frozen=True)
class Conversion:
    """A conversion output folder, as its conversion.json describes it."""

    out_dir: Path
    report: dict[str, Any]
    spec: PreprocessSpec  # the (first) image input's preprocessing; the default for a model without image inputs

    @property
    def files(self) -> dict[str, Path]:
        """Variant name -> path of every file the conversion wrote."""
        return {k: self.out_dir / v["file"] for k, v in self.report.get("files", {}).items() if "file" in v}

    @property
    def int8_path(self) -> Path:
        return self.files.get(FULL_INTEGER, self.out_dir / VARIANTS[FULL_INTEGER].file_name)

    def variant_path(self, name: str) -> Path | None:
        return self.files.get(name)

    @property
    def onnx_path(self) -> Path:
        return self.out_dir / self.report.get("onnx", {}).get("file", "model.onnx")

    @property
    def input_names(self) -> list[str] | None:
        return self.report.get("onnx", {}).get("inputs")

    @property
    def output_names(self) -> list[str] | None:
        return self.report.get("onnx", {}).get("outputs")

    @property
    def head(self) -> dict[str, Any]:
        return self.report.get("head") or {}

    @property
    def calibration(self) -> dict[str, Any] | None:
        return self.report.get("calibration") or None

    @property
    def source(self) -> dict[str, Any]:
        return self.report.get("source", {})

    @property
    def inputs(self) -> InputTable:
        """The model's inputs (``inputs``); a record written before there was one describes one image input."""
        if "inputs" in self.report:
            return InputTable.from_list(self.report["inputs"], source=str(self.out_dir / FILE))
        names = self.input_names or ["input"]
        shapes = self.report.get("onnx", {}).get("input_shapes") or [list(self.spec.input_shape())]
        return InputTable((InputSpec(names[0], tuple(shapes[0]), self.spec),))

    @property
    def renamed(self) -> dict[str, str]:
        """ONNX node names the ``names`` rewrite changed: new name -> the original one."""
        return (self.report.get("rewrites") or {}).get("renamed", {})

    @property
    def recipe(self) -> Recipe:
        return Recipe.from_dict(self.report.get("recipe", {}))


def read_conversion(out_dir: str | Path) -> Conversion:
    """The conversion in ``out_dir``; InputError naming the folder when it is not one."""
    out = Path(out_dir)
    path = out / FILE
    if not path.is_file():
        raise InputError(f"{out_dir} is not a conversion output (no {FILE})")
    try:
        report = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(report, dict):
        raise InputError(f"{path} is not a conversion record (a JSON object)")
    pre = report.get("preprocess", {})
    spec = PreprocessSpec.from_dict(pre, source=str(path)) if pre is not None else PreprocessSpec()
    return Conversion(out, report, spec)


def load_conversion(out_dir: str | Path) -> tuple[dict[str, Any], PreprocessSpec]:
    """A conversion's ``conversion.json`` and its preprocessing spec (the public, untyped form)."""
    conv = read_conversion(out_dir)
    return conv.report, conv.spec
