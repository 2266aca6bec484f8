"""Finalizing an output must not be cut short by the next Ctrl-C.

The first Ctrl-C (or SIGTERM, which ``run`` maps to it) ends a run and starts finalizing
its outputs; an impatient second press 20 ms later used to land in the middle of that and
abandon the file. Inside :func:`deferred_signals` both signals are only recorded; when the
block ends the handlers are restored and the caller acts on what came (see below), so a
finished file is never the casualty.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator

_SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)


@contextlib.contextmanager
def deferred_signals() -> Iterator[list[int]]:
    """Hold SIGINT/SIGTERM until the block is done; yields the list of signals that came.

    The caller decides what a held signal means once its work is safe (a sink raises
    ``KeyboardInterrupt`` after finalizing; a run that is already ending just ends). Only
    the main thread can set handlers; elsewhere this is a no-op.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def hold(signum, _frame) -> None:
        if not received:
            print("stylize-rt: finishing the output first; it will be complete", file=sys.stderr)
        received.append(signum)

    previous = {}
    for signum in _SIGNALS:
        with contextlib.suppress(ValueError, OSError):  # not settable here (embedded interpreters)
            previous[signum] = signal.signal(signum, hold)
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


__all__ = ["deferred_signals"]
