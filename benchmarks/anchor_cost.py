"""What the grid anchor costs a video frame: motion estimate + padded model run, against the plain run.

``python -m stylize_rt.benchmarks.anchor_cost [--model MODEL] [--sizes 640x360,1280x720] [--threads 2]``

A jittering camera's clip (a held-out photo, 1-2 px moves per frame, 2/255 sensor noise), run
frame by frame through the runtime path (``open_backend`` + ``Stylizer``) twice, alternating
frame by frame so machine drift hits both alike:

- plain: ``stylizer(frame)``;
- anchored: ``GridAnchor.offset(frame)`` (phase correlation on a half-size luma), then the
  model on the frame padded to the grid (``sizes.grid_padded_size``: up to ``grid - 1`` px more a side),
  cropped back; what ``stylize-rt run`` does for videos and cameras.

Reported per size: median and p99 ms of both, of the motion estimate alone, and the ratio of
the medians. Exit status: 0 measured; 2 bad input; 3 unwritable output.
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
import numpy as np

from stylize_rt.benchmarks.command import model_parser, probe_model, run_command
from stylize_rt.benchmarks.environment import collect
from stylize_rt.benchmarks.quality import jitter_offsets, jittered_frames
from stylize_rt.benchmarks.stats import summarize
from stylize_rt.errors import BadInputError
from stylize_rt.models import resolve_model
from stylize_rt.runtime.backends.registry import open_backend
from stylize_rt.runtime.grid_anchor import GridAnchor
from stylize_rt.runtime.stylizer import Stylizer
from stylize_rt.sizes import grid_padded_size, parse_size
from stylize_rt.training.data import held_out_photos


def clip(size: tuple[int, int], count: int, seed: int = 0) -> np.ndarray:
    """``count`` frames of size (W, H) from a camera jittering over a held-out photo."""
    width, height = size
    photo = cv2.resize(held_out_photos()["china"], (width + 4, height + 4), interpolation=cv2.INTER_AREA)
    return jittered_frames(photo, jitter_offsets(count, seed=seed), seed=seed + 1)


def _summary(ms: list[float]) -> dict:
    s = summarize(ms)
    return {"median_ms": round(s.p50_ms, 3), "p99_ms": round(s.p99_ms, 3)}


def measure(stylizer: Stylizer, frames: np.ndarray) -> dict:
    """Plain and anchored runs over ``frames``, alternating; see the module docstring."""
    if stylizer.grid is None:
        raise BadInputError("the model declares no sampling grid (stylize_rt.grid_px): nothing to anchor")
    anchor = GridAnchor(stylizer.anchor_grid)
    plain, anchored, estimate = [], [], []
    for frame in frames:
        start = time.perf_counter()
        stylizer(frame)
        plain.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        offset = anchor.offset(frame)
        mid = time.perf_counter()
        stylizer.stylize_batch(frame[None], None, [offset])
        end = time.perf_counter()
        estimate.append((mid - start) * 1e3)
        anchored.append((end - start) * 1e3)
    h, w = frames.shape[1:3]
    wp, hp = grid_padded_size(w, h, stylizer.grid)
    result = {"frames": len(frames), "padded_to": f"{wp}x{hp}", "plain": _summary(plain),
              "anchored": _summary(anchored), "motion_estimate": _summary(estimate)}
    result["anchored_over_plain_median"] = round(result["anchored"]["median_ms"] / result["plain"]["median_ms"], 3)
    return result


def table(results: dict) -> str:
    lines = ["| size (padded) | plain median / p99 ms | anchored median / p99 ms | motion estimate median ms "
             "| anchored / plain (median) |", "|---|---:|---:|---:|---:|"]
    for size, r in results.items():
        lines.append(f"| {size} ({r['padded_to']}) | {r['plain']['median_ms']:.2f} / {r['plain']['p99_ms']:.2f} | "
                     f"{r['anchored']['median_ms']:.2f} / {r['anchored']['p99_ms']:.2f} | "
                     f"{r['motion_estimate']['median_ms']:.2f} | {r['anchored_over_plain_median']:.3f} |")
    return "\n".join(lines)


def declares_grid(model: str, backend: str = "onnxruntime") -> bool:
    """Whether ``model`` declares its sampling grid (so the runtime anchors it)."""
    return probe_model(model, lambda opened: Stylizer(opened).grid is not None, backend)


def build_parser() -> argparse.ArgumentParser:
    p = model_parser("stylize_rt.benchmarks.anchor_cost", __doc__)
    p.add_argument("--sizes", default="640x360,1280x720", help="comma-separated WxH (default 640x360,1280x720)")
    p.add_argument("--frames", type=int, default=120, help="frames per size (default 120)")
    return p


def run(args: argparse.Namespace) -> dict:
    if args.frames < 2:
        raise BadInputError("--frames must be >= 2")
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    if not sizes:
        raise BadInputError("--sizes names no size")
    cv2.setNumThreads(1)  # the capture thread's share: one core beside the model's threads
    backend = open_backend(resolve_model(args.model), args.backend, precision=args.precision, threads=args.threads)
    results = {}
    try:
        stylizer = Stylizer(backend)
        for width, height in sizes:
            stylizer.warm_up(width, height)
            results[f"{width}x{height}"] = measure(stylizer, clip((width, height), args.frames))
    finally:
        backend.close()
    return {"sizes": results,
            "settings": {"model": str(args.model), "backend": args.backend, "precision": args.precision,
                         "frames": args.frames, "threads": args.threads},
            "environment": collect(args.threads, " ".join(["python -m stylize_rt.benchmarks.anchor_cost", *sys.argv[1:]]))}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args), lambda result: table(result["sizes"]), args.json_out)


if __name__ == "__main__":
    sys.exit(main())
