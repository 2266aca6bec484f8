"""How much of the machine other processes used while a block of iterations ran.

A benchmark on a shared machine measures the neighbours too. Linux's ``/proc/stat`` counts
the busy time of all cores; this process's own CPU time (every thread: backend pools,
pipeline threads) is ``time.process_time``; the difference over a block, divided by the
block's wall time, is how many cores *others* kept busy. Blocks where others used more than
``BUSY_CORES`` are flagged, and a published matrix comes only from runs without them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

BUSY_CORES = 0.25  # others using more than a quarter of a core during a block flags it
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (not idle, not iowait)


def _busy_seconds(path: str = "/proc/stat") -> float | None:
    try:
        with open(path) as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    return sum(values[i] for i in _BUSY_FIELDS if i < len(values)) / os.sysconf("SC_CLK_TCK")


@dataclass
class LoadMark:
    wall: float
    own_cpu: float
    machine_busy: float | None


def mark() -> LoadMark:
    return LoadMark(time.perf_counter(), time.process_time(), _busy_seconds())


def others_cores(start: LoadMark, end: LoadMark) -> float | None:
    """Cores other processes kept busy between two marks (None where /proc/stat is not there)."""
    wall = end.wall - start.wall
    if start.machine_busy is None or end.machine_busy is None or wall <= 0:
        return None
    others = (end.machine_busy - start.machine_busy) - (end.own_cpu - start.own_cpu)
    return max(0.0, others / wall)


__all__ = ["BUSY_CORES", "LoadMark", "mark", "others_cores"]
