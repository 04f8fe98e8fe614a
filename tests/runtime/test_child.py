"""runtime.child: jobs run in a child process; a native crash there is a typed error here, and nothing is left."""
from __future__ import annotations

import tempfile

import pytest

from tests.child_jobs import AbortWhileCalibrating, Count, Refuses, Sleeps
from tflite_int8.errors import ConversionError, CrashError, UnsupportedOpError
from tflite_int8.runtime import child


class Recorder:
    """A Progress that remembers its bars."""

    def __init__(self) -> None:
        self.bars: list[list] = []

    def __call__(self, description, total):
        state = [description, total, 0, False]  # description, total, ticks, closed
        self.bars.append(state)

        class Bar:
            def update(self, n=1):
                state[2] += n

            def close(self):
                state[3] = True

        return Bar()


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Temporary folders of this test (and of its children) go to tmp_path/tmp, to prove none is left."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)
    return folder


def test_result_and_progress_come_back_and_the_temporary_folder_goes(private_tmp):
    progress = Recorder()
    out = child.call(Count(5), what="counting", stage="test", progress=progress)
    assert out["n"] == 5 and out["tmp"].startswith(str(private_tmp))
    assert progress.bars == [["counting", 5, 5, True]]
    assert list(private_tmp.iterdir()) == []  # the child's TMPDIR (with the file it left) is gone


def test_a_native_crash_is_a_typed_error_naming_stage_and_step_and_leaves_nothing(private_tmp):
    progress = Recorder()
    with pytest.raises(CrashError) as info:
        child.call(AbortWhileCalibrating(), what="the TF converter", stage="quantize", progress=progress)
    err = info.value
    assert str(err).startswith("[quantize] the TF converter crashed (SIGABRT) while calibrating")
    assert err.stage == "quantize" and err.signal == "SIGABRT" and err.exit_code == 2
    assert progress.bars[0][3] is True  # the bar open at the crash was closed
    assert list(private_tmp.iterdir()) == []


def test_the_jobs_own_errors_come_back_with_their_type_and_attributes():
    with pytest.raises(UnsupportedOpError, match=r"\[quantize\] no int8 kernel for FOO") as info:
        child.call(Refuses(), what="a job", stage="quantize")
    assert info.value.ops == ["FOO"] and info.value.stage == "quantize"


def test_a_worker_keeps_its_process_and_replaces_it_after_a_crash(private_tmp):
    with child.Worker() as worker:
        first = worker.call(Count(1), what="a job", stage="test")
        assert worker.call(Count(2), what="a job", stage="test")["pid"] == first["pid"]
        with pytest.raises(CrashError):
            worker.call(AbortWhileCalibrating(), what="a job", stage="test")
        assert worker.call(Count(1), what="a job", stage="test")["pid"] != first["pid"]
    assert list(private_tmp.iterdir()) == []


def test_a_job_past_its_timeout_is_stopped():
    with pytest.raises(ConversionError, match=r"\[test\] a job did not finish \(1 s\)"):
        child.call(Sleeps(), what="a job", stage="test", timeout=1)
