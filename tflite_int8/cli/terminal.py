"""The terminal side of the CLI: progress bars on stderr, Ctrl-C that survives libraries, warnings shown."""
from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

from ..errors import Int8Warning


class Interrupts:
    """Ctrl-C, counted. Some libraries swallow a KeyboardInterrupt (onnxslim wraps ``import onnxruntime`` in a
    bare ``except:``); the count outlives that, and the next progress bar raises it again."""

    def __init__(self) -> None:
        self.count = 0
        self._old: Any = None

    def __enter__(self) -> "Interrupts":
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


class TqdmProgress:
    """Progress bars on stderr for long stages (calibration); a swallowed Ctrl-C is raised again here."""

    def __init__(self, interrupts: Interrupts | None = None) -> None:
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


def show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    """``warnings.showwarning`` for the CLI: our warnings as one ``warning:`` line each, the rest hidden."""
    if issubclass(category, Int8Warning):
        print(f"warning: {message}", file=sys.stderr)
