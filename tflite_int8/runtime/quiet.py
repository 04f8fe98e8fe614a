"""Keep native (C++) log lines of TensorFlow/LiteRT off the user's terminal."""
from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def native_stderr_captured() -> Iterator[list[str]]:
    """Redirect file descriptor 2 to a temp file for the block; the yielded list receives its text afterwards.

    Python-level writes to ``sys.stderr`` made on purpose (progress bars) should use
    a stream opened on a duplicate of fd 2 before the block (see cli._TqdmProgress).
    """
    captured: list[str] = []
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured by a test runner)
        yield captured
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            captured.append(tmp.read().decode("utf-8", errors="replace"))
