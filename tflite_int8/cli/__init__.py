"""`tflite-int8` command line: a thin layer over the Python API, the only place that prints or exits.

:mod:`.parser` builds the arguments (choices from the config tables), :mod:`.commands` holds one handler
per sub-command, :mod:`.summaries` the text they print, :mod:`.terminal` progress bars and Ctrl-C.
Exit codes: 0 success, 1 failed verification/parity, 2 user or input error (including an unconvertible
model), 130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from typing import Sequence

from ..errors import Int8Error
from .commands import UsageError
from .parser import build_parser
from .terminal import Interrupts, TqdmProgress, show_warning

__all__ = ["build_parser", "entry", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is first imported
    args = build_parser().parse_args(argv)
    warnings.showwarning = show_warning
    with Interrupts() as interrupts:
        args.progress = TqdmProgress(interrupts)
        code = _guarded(args)
        if interrupts.count and code != 130:  # a library swallowed Ctrl-C and the work ran to its end
            print("interrupted; the work had already finished, so its output is complete and was kept",
                  file=sys.stderr)
            return 130
        return code


def _guarded(args: argparse.Namespace) -> int:
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Int8Error as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # disk full, file too large, permissions met while writing
        if args.debug:
            traceback.print_exc()
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"error: cannot read or write a file{where}: {exc.strerror or exc}; no partial output was left",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no partial output was left", file=sys.stderr)
        return 130


def entry() -> None:
    """Console-script and ``python -m tflite_int8`` entry point."""
    code = main()
    if code == 130:
        # Exit now, with 130: a KeyboardInterrupt that a library's embedded code swallowed (PyRun_String)
        # leaves CPython's "unhandled Ctrl-C" flag set, and under ``python -m`` it would then kill itself
        # with SIGINT at shutdown instead of returning our code. Everything was cleaned up already.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    raise SystemExit(code)
