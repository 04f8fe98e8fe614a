"""Run native code that can crash in a child process: a crash there is a typed error here, and nothing is left.

TensorFlow's converter and calibrator, onnx2tf and the TFLite interpreter are C++ that can segfault or abort on
a model they do not expect.  :func:`call` runs a *job* (a picklable callable taking a
:class:`~tflite_int8.progress.Progress`) in ``python -m tflite_int8.runtime.child``:

* the job's return value comes back (pickled); an :class:`~tflite_int8.errors.Int8Error` it raises is raised
  here again, with its type and attributes; any other exception, ``sys.exit`` or a crash (a signal such as
  SIGSEGV or SIGABRT) becomes the error ``fail`` builds from a :class:`Failure` (a ConversionError by default);
* the job's progress bars are forwarded to the caller's ``progress``; the bar open at a crash says what the
  job was doing (``"calibrating"``);
* the child's stdout/stderr go to a log (``log``, or a private file whose tail is kept in the Failure); its
  temporary files go to a private folder (``TMPDIR``), removed afterwards even when the child crashed;
* the child never opens a network connection and ignores Ctrl-C (the caller stops it).

A :class:`Worker` keeps one child for several jobs (a conversion's translation and quantization share one
TensorFlow import); after a crash the next job starts a new child.

A plain subprocess (not ``multiprocessing``): it never re-imports the caller's ``__main__`` script, so a user's
script without an ``if __name__ == "__main__"`` guard still works.
"""
from __future__ import annotations

import os
import pickle
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import ConversionError, CrashError, Int8Error
from ..progress import Progress, or_silent

LOG_TAIL = 8000


@dataclass
class Failure:
    """Why a child did not return: ``kind`` is crash, error or timeout."""

    kind: str
    what: str
    message: str
    step: str | None = None  # the progress bar open when it failed (e.g. "calibrating")
    signal: str | None = None
    log: str = ""  # the tail of the child's output (native messages, a crash's Python stack)
    steps: list[str] = field(default_factory=list)  # every bar the job opened, in order

    def describe(self) -> str:
        """One phrase: 'crashed (SIGSEGV) while calibrating', 'failed: RuntimeError: ...'."""
        where = f" while {self.step}" if self.step else ""
        if self.kind == "crash":
            return f"crashed ({self.signal or self.message}){where}"
        if self.kind == "timeout":
            return f"did not finish ({self.message}){where}"
        return f"failed{where}: {self.message}"


def default_fail(stage: str) -> Callable[[Failure], Int8Error]:
    """A CrashError for a crash, a ConversionError for anything else, naming ``stage``."""
    def fail(f: Failure) -> Int8Error:
        if f.kind == "crash":
            return CrashError(f"{f.what} {f.describe()}", stage=stage, signal=f.signal)
        return ConversionError(f"{f.what} {f.describe()}", stage=stage)
    return fail


def call(job: Callable[[Progress], Any], *, what: str, stage: str, progress: Progress | None = None,
         fail: Callable[[Failure], Int8Error] | None = None, timeout: float | None = None,
         log: str | Path | None = None) -> Any:
    """``job(progress)`` run in a new child process; its result, or the typed error of its failure (module doc)."""
    with Worker(log=log) as worker:
        return worker.call(job, what=what, stage=stage, progress=progress, fail=fail, timeout=timeout)


class Worker:
    """A child process that runs jobs one after the other (one TensorFlow import for a whole conversion).

    Use as a context manager; :meth:`call` starts the process when needed (again after a crash).  Closing it
    ends the process and removes its private temporary folder.  ``log`` receives the child's output (kept);
    without it the output goes to a file in that folder.
    """

    def __init__(self, log: str | Path | None = None) -> None:
        self._scratch = Path(tempfile.mkdtemp(prefix="tflite-int8-child-"))
        (self._scratch / "tmp").mkdir()
        self.log = Path(log) if log is not None else self._scratch / "child.log"
        self._proc: subprocess.Popen | None = None
        self._jobs: Any = None  # the pipe jobs go down
        self._answers: Any = None  # the pipe answers come up

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._stop()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def call(self, job: Callable[[Progress], Any], *, what: str, stage: str, progress: Progress | None = None,
             fail: Callable[[Failure], Int8Error] | None = None, timeout: float | None = None) -> Any:
        fail = fail or default_fail(stage)
        bars: dict[int, Any] = {}  # open bars: key -> (description, bar)
        opened: list[str] = []
        try:
            self._start()
            start = self.log.stat().st_size if self.log.exists() else 0
            try:
                _write(self._jobs, pickle.dumps(job))
                outcome = _receive(self._answers, self._proc, or_silent(progress), bars, opened, timeout)
            except BrokenPipeError:  # it died before reading the job
                outcome = None
            step = list(bars.values())[-1][0] if bars else None
            if outcome is not None and outcome[0] == "result":
                return outcome[1]
            if outcome is not None and outcome[0] == "int8":
                raise _rebuild(outcome[1])
            if outcome is None:
                f = _dead(what, self._stop(), step)
            elif outcome[0] == "timeout":
                self._stop()
                f = Failure("timeout", what, f"{timeout:.0f} s", step)
            else:
                f = Failure("error", what, outcome[1], step)
            f.log = _tail(self.log, start)
            f.steps = list(opened)
            raise fail(f)
        except BaseException:
            if not isinstance(sys.exc_info()[1], Int8Error):  # Ctrl-C or a failure of ours: the child goes too
                self._stop()
            raise
        finally:
            for _, bar in bars.values():
                bar.close()

    def _start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self._stop()
        job_read, job_write = os.pipe()
        answer_read, answer_write = os.pipe()
        env = dict(os.environ, TMPDIR=str(self._scratch / "tmp"), TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1",
                   CUDA_VISIBLE_DEVICES="-1", PYTHONFAULTHANDLER="1")
        try:
            with open(self.log, "ab") as logf:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "tflite_int8.runtime.child", str(job_read), str(answer_write)],
                    stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=env,
                    pass_fds=(job_read, answer_write))
        finally:
            os.close(job_read)
            os.close(answer_write)
        self._jobs = os.fdopen(job_write, "wb", buffering=0)
        self._answers = os.fdopen(answer_read, "rb", buffering=0)

    def _stop(self) -> int:
        """End the process (closing its job pipe lets a healthy one exit); its exit code."""
        code = 0
        for f in (self._jobs, self._answers):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        self._jobs = self._answers = None
        if self._proc is not None:
            try:
                code = self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                code = self._proc.wait()
            self._proc = None
        return code


def _receive(channel: Any, proc: subprocess.Popen, progress: Progress, bars: dict, opened: list,
             timeout: float | None) -> tuple | None:
    """Forward progress messages until the child reports its outcome; None when it died first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
        ready, _, _ = select.select([channel], [], [], wait)
        if not ready:
            if deadline is not None and time.monotonic() >= deadline:
                proc.kill()
                return ("timeout",)
            continue
        message = _read(channel)
        if message is None:
            return None
        kind = message[0]
        if kind == "bar":
            _, key, description, total = message
            bars[key] = (description, progress(description, total))
            opened.append(description)
        elif kind == "tick" and message[1] in bars:
            bars[message[1]][1].update(message[2])
        elif kind == "close" and message[1] in bars:
            bars.pop(message[1])[1].close()
        elif kind in ("result", "int8", "error"):
            return message


def _read(channel: Any) -> tuple | None:
    body = _read_bytes(channel)
    return None if body is None else pickle.loads(body)


def _read_bytes(channel: Any) -> bytes | None:
    head = _exactly(channel, 4)
    return None if head is None else _exactly(channel, struct.unpack("<I", head)[0])


def _write(channel: Any, body: bytes) -> None:
    channel.write(struct.pack("<I", len(body)) + body)


def _exactly(channel: Any, n: int) -> bytes | None:
    """``n`` bytes from the unbuffered pipe (a read may return fewer); None at the end of the stream."""
    chunks, left = [], n
    while left:
        chunk = channel.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _dead(what: str, code: int, step: str | None) -> Failure:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return Failure("crash", what, f"killed by {name}", step, signal=name)
    return Failure("crash", what, f"the process ended with exit code {code} without an answer", step)


def _tail(path: Path, start: int = 0) -> str:
    """The end of the log written since ``start`` (this job's part)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(start, f.tell() - LOG_TAIL))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _rebuild(info: dict) -> Int8Error:
    """The child's Int8Error, same class and attributes (its own __init__ is not called again)."""
    import importlib

    cls = getattr(importlib.import_module(info["module"]), info["name"], None)
    if not (isinstance(cls, type) and issubclass(cls, Int8Error)):
        cls = ConversionError
    exc = cls.__new__(cls)
    Exception.__init__(exc, info["message"])
    exc.__dict__.update(info["attrs"])
    return exc


# ---- the child side -------------------------------------------------------------------------------------------

class _Channel:
    def __init__(self, fd: int) -> None:
        self._f = os.fdopen(fd, "wb", buffering=0)

    def send(self, message: tuple) -> None:
        _write(self._f, pickle.dumps(message))


class _Bar:
    def __init__(self, channel: _Channel, key: int) -> None:
        self._channel, self._key = channel, key

    def update(self, n: int = 1) -> None:
        self._channel.send(("tick", self._key, n))

    def close(self) -> None:
        self._channel.send(("close", self._key))


class _ChildProgress:
    """The Progress a job gets in the child: every bar is shown by the caller's progress."""

    def __init__(self, channel: _Channel) -> None:
        self._channel, self._next = channel, 0

    def __call__(self, description: str, total: int | None) -> _Bar:
        self._next += 1
        self._channel.send(("bar", self._next, description, total))
        return _Bar(self._channel, self._next)


def _refuse_network() -> None:
    import socket

    real_connect = socket.socket.connect

    def connect(self, address):  # type: ignore[no-untyped-def]
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise ConnectionRefusedError(f"tflite-int8 never uses the network (blocked connect to {address})")
        return real_connect(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = lambda self, address: 111  # type: ignore[method-assign]


def _main(jobs_fd: int, answers_fd: int) -> None:
    """Run the jobs that come down the pipe until it closes; each outcome goes up the other pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us; a Ctrl-C must not look like a failure
    _refuse_network()
    channel = _Channel(answers_fd)
    jobs = os.fdopen(jobs_fd, "rb", buffering=0)
    cwd = os.getcwd()
    while True:
        body = _read_bytes(jobs)
        if body is None:
            return
        try:
            os.chdir(cwd)
            job = pickle.loads(body)
            result = job(_ChildProgress(channel))
            message: tuple = ("result", result)
        except Int8Error as exc:
            message = ("int8", {"module": type(exc).__module__, "name": type(exc).__name__, "message": str(exc),
                                "attrs": _picklable(exc.__dict__)})
        except SystemExit as exc:  # a library that calls sys.exit (onnx2tf does)
            message = ("error", f"stopped with sys.exit({exc.code})")
        except BaseException as exc:  # everything else is reported, never lost
            traceback.print_exc()
            message = ("error", f"{type(exc).__name__}: {str(exc).strip()[:2000]}")
        sys.stdout.flush()
        sys.stderr.flush()
        channel.send(message)


def _picklable(attrs: dict) -> dict:
    out = {}
    for k, v in attrs.items():
        try:
            pickle.dumps(v)
            out[k] = v
        except Exception:  # noqa: BLE001 - an attribute that cannot travel is left out
            out[k] = repr(v)
    return out


if __name__ == "__main__":
    _main(int(sys.argv[1]), int(sys.argv[2]))
