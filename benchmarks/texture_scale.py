"""What ``--texture-scale`` buys a video frame: the model on the shrunk frame plus the detail transfer.

``python -m stylize_rt.benchmarks.texture_scale [--model MODEL] [--sizes 1280x720] [--scales 1,2]
[--precision fp32,int8] [--frames 60] [--threads 2]``

A jittering camera's clip (``anchor_cost.clip``), frame by frame through the runtime path with the
grid anchor on, as ``stylize-rt run`` runs a video: ``open_backend`` + ``Stylizer`` with its
``texture_scale``, the anchor's offset for the frame (on ``Stylizer.anchor_grid``), then
``stylize_batch`` (pad, shrink, model, change put back on the full frame, crop;
``runtime.detail_transfer``). Every texture scale takes its turn on each frame, so machine drift
hits them alike. Each ``--precision`` opens the model's graph of that precision (``int8``: the
folder's INT8 graph), one after the other.

Reported per precision, size and scale: the frame the model sees (padded for the anchor), median
and p99 ms, frames/s from the median, and the median against the first scale's on the same
frames. Exit status: 0 measured; 2 bad input; 3 unwritable output.
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
import numpy as np

from stylize_rt.benchmarks.anchor_cost import clip
from stylize_rt.benchmarks.command import model_parser, probe_model, run_command
from stylize_rt.benchmarks.environment import collect
from stylize_rt.benchmarks.stats import summarize
from stylize_rt.errors import BadInputError
from stylize_rt.models import resolve_model
from stylize_rt.runtime.backends.registry import open_backend
from stylize_rt.runtime.grid_anchor import GridAnchor
from stylize_rt.runtime.stylizer import Stylizer
from stylize_rt.sizes import check_texture_scale, parse_size


def measure(stylizer: Stylizer, frames: np.ndarray, scales: list[float]) -> dict:
    """Each texture scale over ``frames``, in turns frame by frame; see the module docstring."""
    anchors = {}
    for scale in scales:
        stylizer.texture_scale = scale
        anchors[scale] = GridAnchor(stylizer.anchor_grid) if stylizer.anchor_grid else None
    times: dict[float, list[float]] = {s: [] for s in scales}
    for frame in frames:
        for scale in scales:
            stylizer.texture_scale = scale
            start = time.perf_counter()
            anchor = anchors[scale]
            offsets = None if anchor is None else [anchor.offset(frame)]
            stylizer.stylize_batch(frame[None], None, offsets)
            times[scale].append((time.perf_counter() - start) * 1e3)
    h, w = frames.shape[1:3]
    rows = {}
    for scale in scales:
        stylizer.texture_scale = scale
        s = summarize(times[scale])
        mw, mh = stylizer.anchored_model_size(w, h) if anchors[scale] else stylizer.model_size(w, h)
        rows[f"{scale:g}"] = {"model_size": f"{mw}x{mh}", "median_ms": round(s.p50_ms, 3), "p99_ms": round(s.p99_ms, 3),
                              "fps_median": round(1000.0 / s.p50_ms, 1)}
    base = rows[f"{scales[0]:g}"]["median_ms"]
    for row in rows.values():
        row["over_first"] = round(row["median_ms"] / base, 3)
    return {"frames": len(frames), "grid_anchor": stylizer.grid is not None, "scales": rows}


def table(results: dict) -> str:
    lines = ["| precision | size | texture scale | model sees | median ms | p99 ms | frames/s (median) "
             "| median / first scale's |", "|---|---|---:|---|---:|---:|---:|---:|"]
    for precision, sizes in results.items():
        for size, result in sizes.items():
            for scale, r in result["scales"].items():
                lines.append(f"| {precision} | {size} | {scale} | {r['model_size']} | {r['median_ms']:.2f} | "
                             f"{r['p99_ms']:.2f} | {r['fps_median']:.1f} | {r['over_first']:.3f} |")
    return "\n".join(lines)


def takes_any_size(model: str, backend: str = "onnxruntime") -> bool:
    """Whether ``model`` takes frames of any size (so a texture scale can shrink them)."""
    return probe_model(model, lambda opened: Stylizer(opened).convention.fixed_hw is None, backend)


def build_parser() -> argparse.ArgumentParser:
    p = model_parser("stylize_rt.benchmarks.texture_scale", __doc__)
    p.set_defaults(precision="fp32,int8")
    p.add_argument("--sizes", default="1280x720", help="comma-separated WxH (default 1280x720)")
    p.add_argument("--scales", default="1,2", help="comma-separated texture scales, the first the reference "
                   "(default 1,2)")
    p.add_argument("--frames", type=int, default=60, help="frames per size (default 60)")
    return p


def run(args: argparse.Namespace) -> dict:
    if args.frames < 2:
        raise BadInputError("--frames must be >= 2")
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    scales = [check_texture_scale(_number(s)) for s in args.scales.split(",") if s.strip()]
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    if not sizes or not scales or not precisions:
        raise BadInputError("--sizes, --scales and --precision each need at least one value")
    cv2.setNumThreads(1)  # the capture thread's share: one core beside the model's threads
    results: dict[str, dict] = {}
    for precision in precisions:
        backend = open_backend(resolve_model(args.model), args.backend, precision=precision, threads=args.threads)
        try:
            stylizer = Stylizer(backend)
            results[precision] = {}
            for width, height in sizes:
                for scale in scales:
                    stylizer.texture_scale = scale
                    stylizer.warm_up(width, height)
                results[precision][f"{width}x{height}"] = measure(stylizer, clip((width, height), args.frames), scales)
        finally:
            backend.close()
    return {"results": results,
            "settings": {"model": str(args.model), "backend": args.backend, "precisions": precisions,
                         "scales": scales, "frames": args.frames, "threads": args.threads},
            "environment": collect(args.threads,
                                   " ".join(["python -m stylize_rt.benchmarks.texture_scale", *sys.argv[1:]]))}


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise BadInputError(f"--scales takes numbers, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args), lambda result: table(result["results"]), args.json_out)


if __name__ == "__main__":
    sys.exit(main())
