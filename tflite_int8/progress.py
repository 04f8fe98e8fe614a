"""Progress on long work: one small protocol, a silent default, and a context for one long step.

Library code never prints: it asks a :class:`Progress` for a bar (``progress("calibrating", 120)``), ticks
it and closes it.  The CLI passes a tqdm-backed one (:mod:`tflite_int8.cli.commands.terminal`); everyone else gets
:data:`SILENT`.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Protocol


class Bar(Protocol):
    def update(self, n: int = 1) -> object: ...

    def close(self) -> object: ...


class Progress(Protocol):
    def __call__(self, description: str, total: int | None) -> Bar: ...


class _Silent:
    """A progress that shows nothing (and its own bar)."""

    def __call__(self, description: str, total: int | None) -> "_Silent":
        return self

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


SILENT: Progress = _Silent()


def or_silent(progress: Progress | None) -> Progress:
    return SILENT if progress is None else progress


@contextmanager
def step(progress: Progress | None, what: str) -> Iterator[None]:
    """A progress line for one long step with no count (adb push, debootstrap, an emulated run)."""
    bar = or_silent(progress)(what, None)
    try:
        yield
    finally:
        bar.close()
