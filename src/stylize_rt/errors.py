"""User-facing errors: one clear line, a documented exit code, never a traceback."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Callable


class StylizeError(Exception):
    """An error the user can act on; the CLI prints ``error: <message>`` and exits ``exit_code``."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class BadInputError(StylizeError):
    """Input data (image, video, model file, dataset, shape) is missing, corrupt or of the wrong kind."""

    exit_code = 2


class MissingDependencyError(StylizeError):
    """An optional dependency (torch, TensorRT, a GPU) is needed for this command but absent."""

    exit_code = 2


class OutputError(StylizeError):
    """An output could not be written (unwritable path, disk full)."""

    exit_code = 3


EXIT_INTERRUPTED = 130
# A batch (an image folder, several captions) finished, but some inputs were skipped; each skipped
# one was named on stderr, and the others were written.
EXIT_SKIPPED = 4


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none).

    Library errors (ONNX Runtime, TensorRT, protobuf) carry whole logs in their message; a
    one-line error quotes only the line that says what went wrong.
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run_reporting_errors(job: Callable[[], int | None], prog: str = "stylize-rt") -> int:
    """Run ``job`` as a command: a ``StylizeError`` becomes its one-line message and exit code,
    Ctrl-C exits 130. The CLI and the ``python -m`` scripts share this, so every entry point
    reports faults the same way."""
    try:
        return int(job() or 0)
    except StylizeError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        _ignore_further_interrupts()  # outputs are finalized by now; another press must not cut the exit
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _ignore_further_interrupts() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
