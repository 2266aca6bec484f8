"""Latency statistics from per-iteration samples, plus a run-to-run noise estimate.

Percentiles use linear interpolation between order statistics (numpy's default), so a
p99 from 50 samples is an interpolated value, not an invented one. ``noise`` is what
``compare`` needs to tell a regression from jitter: the samples are cut into consecutive
blocks, each block gets its median, and the relative spread of those block medians
(std / overall median) stands in for the run-to-run variation of the reported p50.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

NOISE_BLOCKS = 5


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one configuration's per-iteration latencies, in milliseconds."""

    n: int
    min_ms: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    std_ms: float
    noise: float  # relative run-to-run spread of the median (0.02 = 2%)
    p50_ci_low_ms: float = 0.0  # distribution-free 95% confidence interval of the median
    p50_ci_high_ms: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize(samples_ms: Sequence[float]) -> LatencyStats:
    """Statistics of ``samples_ms`` (at least one sample, all finite and non-negative)."""
    x = np.asarray(samples_ms, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("need at least one latency sample")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError("latency samples must be finite and non-negative")
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return LatencyStats(
        n=int(x.size),
        min_ms=float(x.min()),
        mean_ms=float(x.mean()),
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        max_ms=float(x.max()),
        std_ms=float(x.std(ddof=1)) if x.size > 1 else 0.0,
        noise=block_noise(x),
        **dict(zip(("p50_ci_low_ms", "p50_ci_high_ms"), median_ci(x))),
    )


def median_ci(samples_ms: Sequence[float], z: float = 1.96) -> tuple[float, float]:
    """A distribution-free ~95% confidence interval of the median: the order statistics at
    n/2 -/+ z*sqrt(n)/2 (the binomial(n, 1/2) quantiles), clipped to the sample range.

    With few samples it is wide (5 samples: min to max), which is the point: a median of 5
    iterations is not a precise number.
    """
    x = np.sort(np.asarray(samples_ms, dtype=np.float64))
    n = x.size
    if n == 0:
        raise ValueError("need at least one latency sample")
    half = z * np.sqrt(n) / 2.0
    lo = int(np.clip(np.floor(n / 2.0 - half), 0, n - 1))
    hi = int(np.clip(np.ceil(n / 2.0 + half) - 1, 0, n - 1))
    return float(x[lo]), float(x[hi])


def block_noise(samples_ms: Sequence[float], blocks: int = NOISE_BLOCKS) -> float:
    """Relative std of the medians of ``blocks`` consecutive blocks of samples.

    Consecutive blocks (not a shuffle) so slow drifts, such as another process taking a
    core for a while, show up as noise. With fewer than two samples per block the
    per-sample spread is used instead (1.4826 * MAD / median, a robust sigma, so one
    preempted iteration cannot make every later change look like noise); it is the
    spread of single samples, not of a median, so it overstates the noise: the safe
    direction for a regression check.
    """
    x = np.asarray(samples_ms, dtype=np.float64)
    median = float(np.median(x)) if x.size else 0.0
    if x.size < 2 or median <= 0:
        return 0.0
    if x.size < 2 * blocks:
        return float(1.4826 * np.median(np.abs(x - median)) / median)
    medians = [np.median(part) for part in np.array_split(x, blocks)]
    return float(np.std(medians, ddof=1) / median)


def throughput(mean_ms: float, batch: int, height: int, width: int) -> tuple[float, float]:
    """(frames/s, megapixels/s) for one batch of ``batch`` H x W frames per ``mean_ms``."""
    if mean_ms <= 0:
        raise ValueError("mean latency must be positive")
    fps = batch * 1000.0 / mean_ms
    return fps, fps * height * width / 1e6
