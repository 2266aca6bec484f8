"""Latency statistics, throughput and the run-to-run noise estimate on known samples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stylize_rt.benchmarks.stats import block_noise, summarize, throughput


def test_summary_of_1_to_100():
    s = summarize(list(range(1, 101)))
    assert s.n == 100
    assert (s.min_ms, s.max_ms) == (1.0, 100.0)
    assert s.mean_ms == pytest.approx(50.5)
    assert s.p50_ms == pytest.approx(50.5)
    assert s.p90_ms == pytest.approx(90.1)  # linear interpolation: 1 + 0.9 * 99
    assert s.p99_ms == pytest.approx(99.01)
    assert s.std_ms == pytest.approx(math.sqrt(sum((x - 50.5) ** 2 for x in range(1, 101)) / 99))


def test_percentiles_are_order_independent():
    rng = np.random.default_rng(1)
    x = rng.exponential(5.0, 1000)
    a, b = summarize(x), summarize(rng.permutation(x))
    assert (a.p50_ms, a.p90_ms, a.p99_ms) == (b.p50_ms, b.p90_ms, b.p99_ms)
    assert a.min_ms <= a.p50_ms <= a.p90_ms <= a.p99_ms <= a.max_ms


def test_noise_of_blocks_with_known_medians():
    # Blocks of 20: medians 10.5, 30.5, 50.5, 70.5, 90.5 -> std 31.62..., overall median 50.5.
    expected = np.std([10.5, 30.5, 50.5, 70.5, 90.5], ddof=1) / 50.5
    assert block_noise(list(range(1, 101))) == pytest.approx(expected)


def test_constant_samples_have_no_noise_and_no_spread():
    s = summarize([4.0] * 50)
    assert s.noise == 0.0 and s.std_ms == 0.0 and s.p99_ms == 4.0


def test_single_sample():
    s = summarize([3.0])
    assert (s.n, s.mean_ms, s.std_ms, s.noise) == (1, 3.0, 0.0, 0.0)


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [-1.0, 2.0], [[1.0, 2.0]]])
def test_bad_samples_are_rejected(bad):
    with pytest.raises(ValueError):
        summarize(bad)


def test_throughput():
    fps, mpix = throughput(mean_ms=20.0, batch=4, height=360, width=640)
    assert fps == pytest.approx(200.0)
    assert mpix == pytest.approx(200.0 * 640 * 360 / 1e6)
    with pytest.raises(ValueError):
        throughput(0.0, 1, 10, 10)


def test_few_samples_noise_is_robust_to_one_outlier():
    # Five samples, one preempted: the spread stays that of the other four.
    noise = block_noise([10.0, 10.2, 9.8, 10.1, 80.0])
    assert noise == pytest.approx(1.4826 * 0.1 / 10.1)  # median 10.1, MAD 0.1


def test_median_confidence_interval_is_distribution_free_and_narrows_with_samples():
    from stylize_rt.benchmarks.stats import median_ci

    assert median_ci([5.0]) == (5.0, 5.0)
    lo, hi = median_ci([1, 2, 3, 4, 5])
    assert (lo, hi) == (1.0, 5.0)  # five samples say little about the median
    rng = np.random.default_rng(0)
    few, many = rng.exponential(10, 30), rng.exponential(10, 3000)
    w_few = np.subtract(*median_ci(few)[::-1])
    w_many = np.subtract(*median_ci(many)[::-1])
    assert w_many < w_few / 4
    lo, hi = median_ci(many)
    assert lo <= np.median(many) <= hi and lo <= 10 * np.log(2) <= hi  # the exponential's true median
    stats = summarize(many)
    assert (stats.p50_ci_low_ms, stats.p50_ci_high_ms) == (lo, hi)
