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


def test_others_load_is_measured_per_block_and_busy_blocks_are_flagged():
    """A process burning a core beside the benchmark shows up as others' load; alone, it is near zero."""
    import subprocess
    import sys

    from stylize_rt.benchmarks import load

    def work():
        sum(i * i for i in range(20000))

    quiet = time_steps({"w": work}, Budget(warmup=1, iters=200)).popitem()[1]
    burner = subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<8: pass"])
    try:
        time.sleep(0.3)
        busy = time_steps({"w": work}, Budget(warmup=1, iters=200)).popitem()[1]
    finally:
        burner.kill()
        burner.wait()
    assert busy.loads and quiet.loads
    assert max(busy.loads) > load.BUSY_CORES  # the burner held most of a core
    assert sum(busy.loads) / len(busy.loads) > sum(quiet.loads) / len(quiet.loads)


def test_overhead_is_the_throughput_users_lose_and_contradictions_are_flagged():
    from stylize_rt.benchmarks.harness import BenchRecord, add_overheads

    def rec(mode, mean, lo, hi):
        return BenchRecord(backend="onnxruntime", device="cpu", precision="fp32", batch=1, height=8, width=8,
                           mode=mode, model="m", iters=30, warmup=1, clock="perf_counter", min_ms=mean, mean_ms=mean,
                           p50_ms=mean, p90_ms=mean, p99_ms=mean, max_ms=mean, std_ms=0, noise=0, fps=1000 / mean,
                           mpix_s=0, p50_ci_low_ms=lo, p50_ci_high_ms=hi)

    model, e2e = rec("model", 10.0, 9.8, 10.2), rec("pipeline", 12.5, 12.0, 13.0)
    add_overheads([model, e2e])
    assert e2e.overhead == pytest.approx(0.25) and e2e.flag is None
    model, fast = rec("model", 10.0, 9.8, 10.2), rec("pipeline", 8.0, 7.9, 8.1)
    add_overheads([model, fast])
    assert fast.flag and "beats model-only" in fast.flag


def test_budget_needs_thirty_iterations_and_the_seconds():
    assert not Budget(seconds=0.001).done(MIN_TIMED_ITERS - 1, 100.0)
    assert not Budget(seconds=10.0).done(500, 1.0)
    assert Budget(seconds=0.5).done(MIN_TIMED_ITERS, 0.6)
    assert MIN_TIMED_ITERS >= 30
