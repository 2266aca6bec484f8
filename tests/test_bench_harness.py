"""The timing loop: budgets, turn-taking, and which clock a sample comes from."""

from __future__ import annotations

import time

import pytest

from stylize_rt.benchmarks.harness import MIN_TIMED_ITERS, Budget, time_steps


def test_fixed_count_gives_every_step_exactly_that_many_samples():
    calls = {"a": 0, "b": 0}

    def step(name):
        def run():
            calls[name] += 1
        return run

    timings = time_steps({"a": step("a"), "b": step("b")}, Budget(warmup=2, iters=7))
    assert [len(t.samples_ms) for t in timings.values()] == [7, 7]
    assert all(t.clock == "perf_counter" for t in timings.values())
    # 2 warm-ups + 7 timed + at most one untimed re-warm per turn.
    assert all(9 <= n <= 9 + 7 for n in calls.values())


def test_time_budget_runs_at_least_the_minimum_and_about_the_budget():
    def sleepy():
        time.sleep(0.002)

    start = time.perf_counter()
    [timing] = time_steps({"s": sleepy}, Budget(warmup=0, iters=None, seconds=0.05)).values()
    elapsed = time.perf_counter() - start
    assert len(timing.samples_ms) >= MIN_TIMED_ITERS
    assert 0.05 <= elapsed < 2.0
    assert min(timing.samples_ms) >= 2.0  # perf_counter around a 2 ms sleep


def test_device_event_timings_replace_the_host_clock():
    def gpu_like():  # what a backend's CUDA events report for one call
        return {"h2d_ms": 0.5, "compute_ms": 3.0, "d2h_ms": 0.25}

    [timing] = time_steps({"g": gpu_like}, Budget(warmup=1, iters=4)).values()
    assert timing.clock == "device_events"
    assert timing.samples_ms == pytest.approx([3.75] * 4)
    assert len(timing.splits) == 4


def test_pipeline_steps_report_wall_time_and_model_share():
    def pipeline_like():
        return {"wall_ms": 10.0, "infer_ms": 8.0}

    [timing] = time_steps({"p": pipeline_like}, Budget(warmup=0, iters=3)).values()
    assert timing.samples_ms == [10.0, 10.0, 10.0] and timing.clock == "perf_counter"
