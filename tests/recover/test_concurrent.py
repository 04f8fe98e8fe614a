"""recover's strategies after the baseline on Ray: all at once, yet the rows and files of the run in order.

The attempts here are small functions that write files and return rows (their conversions are not what is
tested: the ordering, the stop, the cancellation and the merge of the staging folder are)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tflite_int8.cluster import InOrder, ray_session
from tflite_int8.recover.concurrent import attempts_in_order
from tflite_int8.recover.strategies import Context


@dataclass(frozen=True)
class Plan:
    name: str
    passes: bool | None  # None: nothing to try
    seconds: float = 0.0


def attempt(plan: Plan, ctx: Context) -> dict | None:
    """Writes its folder and a side file every attempt shares the name of, as weight-rounding and int16x8 do."""
    for _ in range(int(plan.seconds * 10)):  # Ray interrupts a cancelled task between Python steps
        time.sleep(0.1)
    if plan.passes is None:
        return None
    assert (ctx.stage / "baseline" / "model.onnx").read_text() == "baseline"
    (ctx.stage / plan.name).mkdir()
    (ctx.stage / plan.name / "model_int8.tflite").write_text(plan.name)
    side = ctx.stage / "weights_rounded.onnx"
    if not side.exists():
        side.write_text(plan.name)
    return {"strategy": plan.name, "passed": plan.passes}


PLANS = [Plan("slow-fail", False, 2.0), Plan("nothing", None), Plan("win", True, 0.5),
         Plan("never-needed", True, 60.0), Plan("late-fail", False)]


def _run(executor, stage: Path) -> list:
    (stage / "baseline").mkdir(parents=True)
    (stage / "baseline" / "model.onnx").write_text("baseline")
    ctx = Context(None, stage, None, None, 1, 0, 3, None)
    return attempts_in_order(PLANS, attempt, ctx, executor, stop=lambda row: bool(row and row["passed"]))


def _listing(stage: Path) -> dict[str, str]:
    return {str(p.relative_to(stage)): p.read_text() for p in sorted(stage.rglob("*")) if p.is_file()}


def test_on_ray_the_rows_and_files_are_those_of_the_run_in_order(ray_cluster, tmp_path):
    in_order = _run(InOrder(), tmp_path / "a")
    t = time.perf_counter()
    with ray_session("local") as ex:
        on_ray = _run(ex, tmp_path / "b")
    seconds = time.perf_counter() - t
    assert in_order == on_ray == [{"strategy": "slow-fail", "passed": False}, None,
                                  {"strategy": "win", "passed": True}]
    assert _listing(tmp_path / "a") == _listing(tmp_path / "b")
    assert _listing(tmp_path / "b")["weights_rounded.onnx"] == "slow-fail"  # the first attempt's, as in order
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["baseline", "slow-fail", "weights_rounded.onnx",
                                                                 "win"]  # no scratch folder left
    assert seconds < 40  # the 60 s attempt was cancelled once "win" was known to be the first that passes
