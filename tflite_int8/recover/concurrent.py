"""recover's strategies after the baseline, run by an executor: one after the other, or at once on Ray.

After the baseline, the strategies do not depend on each other: each starts from the baseline's folder and
makes its own attempt.  :func:`attempts_in_order` returns their rows in table order, up to and including the
first row that ``stop`` accepts (the winner rule stays with the caller):

- in this process (:class:`~tflite_int8.cluster.InOrder`) they run one after the other and the run stops
  there, exactly as a plain loop would;
- on Ray each is a task, all at once, in its own scratch folder inside the staging folder (the baseline
  linked in), so that attempts writing side files (rounded weights, say) never meet.  Once the rows up to the
  first accepted one are known, the later tasks are cancelled; the kept attempts' files are moved into the
  staging folder in table order (a file an earlier attempt already wrote is kept from it, as when they run
  in order) and every scratch folder is removed.  Rows, winner and files are those of the run in order.

The staging folder must be on a filesystem every Ray node sees (the same path), like the data.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..cluster import Executor, node_address
from ..errors import InputError
from ..progress import or_silent

Row = dict[str, Any] | None  # None: the strategy had nothing to try
TryOne = Callable[[Any, Any], Row]  # (strategy, context) -> row; picklable for Ray


def attempts_in_order(strategies: Sequence[Any], try_one: TryOne, ctx: Any, executor: Executor,
                      stop: Callable[[Row], bool]) -> list[Row]:
    """Rows of ``strategies`` in order, up to the first that ``stop`` accepts (see the module docstring)."""
    if not executor.remote:
        return executor.map(lambda s: try_one(s, ctx), strategies, stop=stop).results
    bar = or_silent(ctx.progress)(f"recover: {len(strategies)} strategies on Ray", len(strategies))
    remote = replace(ctx, progress=None, _samples=None)
    try:
        rows = executor.map(_in_scratch, strategies, shared=(try_one, remote), stop=stop,
                            done=lambda i, row: bar.update(1), labels=[f"strategy {s.name}" for s in strategies]).results
        for strategy in strategies[:len(rows)]:
            _keep(scratch(ctx.stage, strategy.name), ctx.stage)
    finally:
        bar.close()
        for strategy in strategies:
            shutil.rmtree(scratch(ctx.stage, strategy.name), ignore_errors=True)
    return rows


def scratch(stage: Path, name: str) -> Path:
    return stage / f".scratch-{name}"


def _in_scratch(shared: tuple[TryOne, Any], strategy: Any) -> Row:
    """One Ray task: the strategy's attempt, made in its scratch folder."""
    try_one, ctx = shared
    if not ctx.stage.is_dir():
        raise InputError(f"the staging folder {ctx.stage} is not visible on Ray node {node_address()}:"
                         f" recover --ray needs its output folder on a filesystem every node shares (same path)")
    folder = scratch(ctx.stage, strategy.name)
    shutil.rmtree(folder, ignore_errors=True)  # what an attempt on a lost worker left
    folder.mkdir()
    (folder / "baseline").symlink_to(ctx.stage / "baseline", target_is_directory=True)
    return try_one(strategy, replace(ctx, stage=folder))


def _keep(folder: Path, stage: Path) -> None:
    """Move what the attempt made into the staging folder; what is already there stays."""
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        if entry.name == "baseline" or (stage / entry.name).exists():
            continue
        os.replace(entry, stage / entry.name)
