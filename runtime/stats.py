"""Per-stage timing for ``--stats``: where a frame's time goes, and how many frames were dropped.

Each pipeline thread records into its own stage, so no locks are needed beyond the GIL;
samples are kept in bounded deques so a camera left running for hours uses fixed memory.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

MAX_SAMPLES = 100_000


@dataclass
class StageStats:
    name: str
    samples: deque = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    total_s: float = 0.0
    count: int = 0

    def add(self, seconds: float, items: int = 1) -> None:
        """One timing; ``items`` > 1 for a batch (the per-item time is recorded)."""
        self.total_s += seconds
        self.count += items
        per_item = seconds / max(items, 1)
        for _ in range(items):
            self.samples.append(per_item)

    def summary(self) -> dict:
        if not self.samples:
            return {"stage": self.name, "count": 0}
        ms = np.asarray(self.samples) * 1000.0
        return {
            "stage": self.name,
            "count": self.count,
            "mean_ms": float(ms.mean()),
            "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)),
            "max_ms": float(ms.max()),
        }


STAGES = ("capture", "resize", "model", "output", "latency")


class RunStats:
    """Timings of one run: capture, resize, model (per frame), output, capture-to-output latency."""

    def __init__(self) -> None:
        self.stages = {name: StageStats(name) for name in STAGES}
        self.frames_in = 0
        self.frames_out = 0
        self.dropped_capture = 0  # live: frames replaced by a newer one before the model took them
        self.dropped_output = 0  # live: results replaced before the sink took them
        self.skipped: list[str] = []  # frames the model refused (image folders go on without them)
        self.started_at = time.perf_counter()
        self.first_output_at: float | None = None
        self.finished_at: float | None = None
        self.live = False
        self.source_fps: float | None = None  # live: the frame interval is part of the latency budget

    def stage(self, name: str) -> StageStats:
        return self.stages[name]

    @property
    def wall_s(self) -> float:
        end = self.finished_at or time.perf_counter()
        return end - self.started_at

    @property
    def fps(self) -> float:
        """End-to-end frames per second, from start to the last frame written."""
        return self.frames_out / self.wall_s if self.wall_s > 0 and self.frames_out else 0.0

    @property
    def model_fps(self) -> float:
        """Frames per second of the model alone (sum of inference time)."""
        model = self.stages["model"]
        return model.count / model.total_s if model.total_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "dropped_stale_capture": self.dropped_capture,
            "dropped_stale_output": self.dropped_output,
            "wall_s": self.wall_s,
            "fps": self.fps,
            "model_fps": self.model_fps,
            "live_latency_budget_ms": self.live_latency_budget_ms(),
            "stages": [s.summary() for s in self.stages.values()],
        }

    def report(self) -> str:
        """A short table for stderr."""
        lines = [
            f"frames: {self.frames_in} read, {self.frames_out} written, "
            f"{self.dropped_capture} stale dropped at capture, {self.dropped_output} at output",
            f"throughput: {self.fps:.1f} frames/s end to end over {self.wall_s:.2f} s; "
            f"model alone {self.model_fps:.1f} frames/s",
            f"{'stage':<10}{'count':>8}{'mean ms':>10}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}",
        ]
        for stage in self.stages.values():
            s = stage.summary()
            if not s["count"]:
                continue
            lines.append(
                f"{s['stage']:<10}{s['count']:>8}{s['mean_ms']:>10.2f}{s['p50_ms']:>10.2f}"
                f"{s['p95_ms']:>10.2f}{s['max_ms']:>10.2f}"
            )
        lines.append("latency = capture to output written")
        budget = self.live_latency_budget_ms()
        if budget is not None:
            measured = self.stages["latency"].summary().get("p50_ms", 0.0)
            lines.append(f"live latency budget (model p50 + one frame interval): {budget:.1f} ms; "
                         f"measured p50 {measured:.1f} ms")
        return "\n".join(lines)

    def live_latency_budget_ms(self) -> float | None:
        """Model time plus one frame interval: what a live run's latency should stay under."""
        model = self.stages["model"].summary()
        if not self.live or not self.source_fps or not model["count"]:
            return None
        return model["p50_ms"] + 1000.0 / self.source_fps
