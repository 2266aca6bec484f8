"""Does a live style change stall? Per-frame latency when the controls change, against a steady run.

``python -m stylize_rt.benchmarks.switch_latency [--model MODEL] [--backend onnxruntime] [--size 640x360]``

What the window keys and ``--style-timeline`` do: the controls (style, a two-style mix,
strength, colour preservation) change between two frames, and the next frame must show
them without a slower frame. Two runs over the same frames, in turns of ``--every``
frames so machine drift hits both alike, through the runtime path (``open_backend`` +
``Stylizer``):

- steady: the model's first style throughout;
- switching: the controls change at the first frame of every turn, cycling through every
  style, a 50/50 mix of the first two, strength 0.5 and colour preservation.

Reported: per-frame latency (median, p99, max) of the frames that carry a change, of the
other switching frames and of the steady frames, and whether each change shows in the very
frame that asks for it (its output differs from the previous controls' output for that frame
by more than one level on average). Exit status: 0 measured; 2 bad input; 3 unwritable output.
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
import numpy as np

from stylize_rt.benchmarks.command import model_parser, probe_model, run_command
from stylize_rt.benchmarks.environment import collect
from stylize_rt.benchmarks.stats import summarize
from stylize_rt.errors import BadInputError
from stylize_rt.models import resolve_model
from stylize_rt.runtime.backends.registry import open_backend
from stylize_rt.runtime.style_controls import StyleControls, one_hot
from stylize_rt.runtime.stylizer import Stylizer, style_names
from stylize_rt.sizes import parse_size
from stylize_rt.training.data import held_out_photos

VISIBLE_LEVELS = 1.0  # mean |new - old| above this: the change shows


def control_cycle(styles: list[str]) -> list[tuple[str, StyleControls]]:
    """The changes the switching run makes, in order: every style, a mix, strength, colour."""
    if len(styles) < 2:
        raise BadInputError("a style switch needs a multi-style model (this one has one style)")
    # from the second style on: the run starts in the first, so the first change changes something
    steps = [(name, StyleControls(one_hot(styles, i))) for i, name in enumerate(styles)][1:]
    mix = tuple(0.5 if i < 2 else 0.0 for i in range(len(styles)))
    steps.append((f"{styles[0]}+{styles[1]} 50/50", StyleControls(mix)))
    steps.append((f"{styles[1]} strength 0.5", StyleControls(one_hot(styles, 1), strength=0.5)))
    steps.append((f"{styles[1]} preserve colour", StyleControls(one_hot(styles, 1), preserve_color=True)))
    steps.append((styles[0], StyleControls(one_hot(styles, 0))))
    return steps


def frames_for(size: tuple[int, int], count: int, seed: int = 0) -> np.ndarray:
    """A held-out photo at ``size`` (W, H) with fresh 2/255 sensor noise per frame."""
    photo = cv2.resize(held_out_photos()["china"], size, interpolation=cv2.INTER_AREA).astype(np.float32)
    noise = np.random.default_rng(seed).normal(0.0, 2.0, (count, *photo.shape)).astype(np.float32)
    return np.clip(np.rint(photo[None] + noise), 0, 255).astype(np.uint8)


def _summary(ms: list[float]) -> dict:
    s = summarize(ms)
    return {"frames": s.n, "median_ms": round(s.p50_ms, 3), "p99_ms": round(s.p99_ms, 3), "max_ms": round(s.max_ms, 3)}


def measure(stylizer: Stylizer, frames: np.ndarray, every: int) -> dict:
    """Steady and switching turns over ``frames``; see the module docstring."""
    styles = style_names(stylizer.backend, None)
    cycle = control_cycle(styles)
    steady_controls = StyleControls(one_hot(styles, 0))
    steady, changed, other, changes = [], [], [], []
    current = steady_controls
    for i, frame in enumerate(frames):
        start = time.perf_counter()
        stylizer(frame, steady_controls)
        steady.append((time.perf_counter() - start) * 1e3)
        if i % every == 0:
            name, nxt = cycle[(i // every) % len(cycle)]
            before = stylizer(frame, current)  # what the frame would show without the change
            start = time.perf_counter()
            out = stylizer(frame, nxt)
            changed.append((time.perf_counter() - start) * 1e3)
            shown = float(np.abs(out.astype(np.int16) - before).mean())
            changes.append({"frame": i, "to": name, "mean_change_levels": round(shown, 2),
                            "visible": shown > VISIBLE_LEVELS})
            current = nxt
        else:
            start = time.perf_counter()
            stylizer(frame, current)
            other.append((time.perf_counter() - start) * 1e3)
    result = {"changed_frames": _summary(changed), "other_switching_frames": _summary(other),
              "steady_frames": _summary(steady), "changes": changes}
    result["changed_over_steady_median"] = round(result["changed_frames"]["median_ms"]
                                                 / result["steady_frames"]["median_ms"], 3)
    result["every_change_visible"] = all(c["visible"] for c in changes)
    return result


def table(result: dict) -> str:
    rows = [("frames with a change", result["changed_frames"]), ("other switching frames", result["other_switching_frames"]),
            ("steady run", result["steady_frames"])]
    lines = ["| frames | count | median ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {name} | {s['frames']} | {s['median_ms']:.2f} | {s['p99_ms']:.2f} | {s['max_ms']:.2f} |"
              for name, s in rows]
    return "\n".join(lines)


def style_count(model: str, backend: str = "onnxruntime") -> int:
    """How many styles ``model`` draws (1 for a single-style model)."""
    return probe_model(model, lambda opened: len(style_names(opened, None)), backend)


def build_parser() -> argparse.ArgumentParser:
    p = model_parser("stylize_rt.benchmarks.switch_latency", __doc__, "multi-style model")
    p.add_argument("--size", default="640x360", help="frame size WxH (default 640x360)")
    p.add_argument("--frames", type=int, default=240, help="frames per run (default 240)")
    p.add_argument("--every", type=int, default=8, help="change the controls every N frames (default 8)")
    return p


def run(args: argparse.Namespace) -> dict:
    if args.frames < 2 * args.every or args.every < 2:
        raise BadInputError("--every must be >= 2 and --frames at least twice --every")
    width, height = parse_size(args.size)
    backend = open_backend(resolve_model(args.model), args.backend, precision=args.precision, threads=args.threads)
    try:
        stylizer = Stylizer(backend)
        stylizer.warm_up(width, height)
        result = measure(stylizer, frames_for((width, height), args.frames), args.every)
    finally:
        backend.close()
    result["settings"] = {"model": str(args.model), "backend": args.backend, "precision": args.precision,
                          "size": f"{width}x{height}", "frames": args.frames, "every": args.every,
                          "threads": args.threads}
    result["environment"] = collect(args.threads, " ".join(["python -m stylize_rt.benchmarks.switch_latency", *sys.argv[1:]]))
    return result


def report(result: dict) -> str:
    """The table and the one-line verdict the command prints."""
    seen = sum(c["visible"] for c in result["changes"])
    return (f"{table(result)}\n{seen} of {len(result['changes'])} changes visible in the frame that asked for them; "
            f"frames with a change took {result['changed_over_steady_median']:.3f}x the steady median")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args), report, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
