"""Regression check: this run against a baseline result, beyond the measured noise.

A configuration regresses when its p50 latency grew by more than
``max(k * noise, floor)``, where ``noise`` combines both runs' run-to-run spread
(``LatencyStats.noise``, root-sum-square). The median rather than the mean, because
one preempted iteration on a shared machine moves the mean but not the median; the
floor, because a quiet run's noise estimate can be tiny and a 1% change is not a bug.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

from stylize_rt.benchmarks.harness import BenchRecord

DEFAULT_K = 3.0
DEFAULT_FLOOR = 0.05


@dataclass
class Comparison:
    key: tuple
    baseline_ms: float | None
    current_ms: float | None
    change: float | None  # current / baseline - 1
    threshold: float | None
    status: str  # regression | improvement | same | new | missing

    def to_dict(self) -> dict:
        return asdict(self)

    def label(self) -> str:
        network, backend, device, precision, batch, height, width, mode = self.key
        where = "" if network == "model" else f"{network} "
        return f"{where}{backend}/{device} {precision} b{batch} {width}x{height} {mode}"


def compare(baseline: Sequence[BenchRecord], current: Sequence[BenchRecord],
            k: float = DEFAULT_K, floor: float = DEFAULT_FLOOR) -> list[Comparison]:
    """One ``Comparison`` per configuration present in either run."""
    base = {r.key(): r for r in baseline}
    cur = {r.key(): r for r in current}
    out = []
    for key in list(cur) + [k_ for k_ in base if k_ not in cur]:
        b, c = base.get(key), cur.get(key)
        if b is None:
            out.append(Comparison(key, None, c.p50_ms, None, None, "new"))
            continue
        if c is None:
            out.append(Comparison(key, b.p50_ms, None, None, None, "missing"))
            continue
        noise = math.hypot(b.noise or 0.0, c.noise or 0.0)
        threshold = max(k * noise, floor)
        change = c.p50_ms / b.p50_ms - 1.0
        if change > threshold:
            status = "regression"
        elif change < -threshold:
            status = "improvement"
        else:
            status = "same"
        out.append(Comparison(key, b.p50_ms, c.p50_ms, change, threshold, status))
    return out


def regressions(comparisons: Sequence[Comparison]) -> list[Comparison]:
    return [c for c in comparisons if c.status == "regression"]


def comparison_table(comparisons: Sequence[Comparison]) -> str:
    """One row per configuration of this run; baseline configurations this run did not measure are counted."""
    rows = [("configuration", "baseline p50", "current p50", "change", "threshold", "status")]
    missing = [c for c in comparisons if c.status == "missing"]
    for c in comparisons:
        if c.status == "missing":
            continue
        rows.append((
            c.label(),
            "-" if c.baseline_ms is None else f"{c.baseline_ms:.2f} ms",
            "-" if c.current_ms is None else f"{c.current_ms:.2f} ms",
            "-" if c.change is None else f"{100 * c.change:+.1f}%",
            "-" if c.threshold is None else f"±{100 * c.threshold:.1f}%",
            c.status.upper() if c.status == "regression" else c.status,
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    if missing:
        lines.append(f"({len(missing)} baseline configuration(s) not measured in this run)")
    return "\n".join(lines)
