"""Images/s of ``stylize-rt batch``: here vs a local Ray with 1 and 2 actors, in one run.

``python -m stylize_rt.benchmarks.batch_scaling --images 48 --size 256 --repeats 3 --json out.json``

Every configuration stylizes the same generated photo-like frames (PNG files) into a fresh
folder, in turns, ``repeats`` times; the table gives medians and ratios to the one-thread local
job of the same run. Two rates: the whole job (the clock starts once Ray is up and stops when
the job returns, so it includes each worker starting and opening the model, and Ray's
scheduling: what a job costs), and the rate once running, from the outputs' own modification
times ((N - 1) / (last - first), independent of when results reach the driver). Threads: one
per worker (actors reserve one CPU each), so 2 actors use the cores a 2-thread local job uses.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from stylize_rt.benchmarks import environment
from stylize_rt.benchmarks.harness import make_frames
from stylize_rt.errors import run_reporting_errors
from stylize_rt.fileio import write_atomic
from stylize_rt.imageio import write_image
from stylize_rt.runtime.batch import BatchConfig, connect_ray, run_batch
from stylize_rt.runtime.session import ModelChoice
from stylize_rt.sizes import parse_size

# (label, ray?, actors, threads per worker)
CONFIGS = (("local, 1 thread", False, 1, 1), ("local, 2 threads", False, 1, 2),
           ("ray, 1 actor", True, 1, 1), ("ray, 2 actors", True, 2, 1))


def measure(images: int, size: tuple[int, int], repeats: int, batch: int, engine: str | None) -> dict:
    width, height = size
    results: dict[str, list[float]] = {label: [] for label, *_ in CONFIGS}
    steady: dict[str, list[float]] = {label: [] for label, *_ in CONFIGS}
    startup: dict[str, list[float]] = {label: [] for label, *_ in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="stylize-rt-batch-bench-") as work:
        inputs = Path(work) / "in"
        for i, frame in enumerate(make_frames(images, height, width, seed=1)):
            write_image(inputs / f"frame{i:04d}.png", frame)
        if any(use_ray for _, use_ray, *_ in CONFIGS):
            connect_ray("local")
        for repeat in range(repeats):
            for label, use_ray, actors, threads in CONFIGS:
                out = Path(work) / f"out_{repeat}_{label.replace(' ', '_').replace(',', '')}"
                config = BatchConfig(inputs=(str(inputs),), output=str(out), model=ModelChoice(engine, threads=threads),
                                     batch=batch, ray_address="local" if use_ray else None, actors=actors,
                                     progress=False)
                summary = run_batch(config)
                if summary.failed or summary.count("done") != images:
                    raise RuntimeError(f"{label}: {summary.lines()[0]}")
                results[label].append(summary.images_per_second)
                times = sorted(p.stat().st_mtime for p in out.glob("*.png"))
                running = (len(times) - 1) / (times[-1] - times[0]) if times[-1] > times[0] else float("nan")
                steady[label].append(running)
                startup[label].append(summary.seconds - (times[-1] - times[0]))
                print(f"  {label}: {summary.images_per_second:.2f} images/s, {running:.2f} once running",
                      file=sys.stderr, flush=True)
    base = statistics.median(results[CONFIGS[0][0]])
    base_steady = statistics.median(steady[CONFIGS[0][0]])
    rows = [{"config": label, "images_per_s_median": round(statistics.median(v), 3),
             "vs_local_1_thread": round(statistics.median(v) / base, 3),
             "steady_images_per_s_median": round(statistics.median(steady[label]), 3),
             "steady_vs_local_1_thread": round(statistics.median(steady[label]) / base_steady, 3),
             "outside_first_to_last_output_s_median": round(statistics.median(startup[label]), 3),
             "samples": [round(x, 3) for x in v]}
            for label, v in results.items()]
    return {"images": images, "size": f"{width}x{height}", "batch": batch, "repeats": repeats, "rows": rows}


def markdown(result: dict) -> str:
    lines = ["| configuration | job images/s | vs local, 1 thread | images/s once running | vs local, 1 thread "
             "| job time outside first..last output |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['images_per_s_median']:.2f} | {r['vs_local_1_thread']:.2f}x "
              f"| {r['steady_images_per_s_median']:.2f} | {r['steady_vs_local_1_thread']:.2f}x "
              f"| {r['outside_first_to_last_output_s_median']:.1f} s |" for r in result["rows"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stylize_rt.benchmarks.batch_scaling", description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--size", default="256", help="frame size (N, WxH or a preset; default 256)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4, help="images per worker call (default 4)")
    parser.add_argument("--engine", help="model (default: the embedded default)")
    parser.add_argument("--json", help="write the result with the environment")
    args = parser.parse_args(argv)

    def job() -> int:
        env = environment.collect(1)
        size = (int(args.size),) * 2 if args.size.isdigit() else parse_size(args.size)
        result = measure(args.images, size, args.repeats, args.batch, args.engine)
        env["load_average_end"] = environment.load_average()
        print(markdown(result))
        print(f"load average: {env['load_average_start']} -> {env['load_average_end']}")
        if args.json:
            write_atomic(args.json, json.dumps({"environment": env, **result}, indent=2) + "\n")
        return 0

    return run_reporting_errors(job)


if __name__ == "__main__":
    sys.exit(main())
