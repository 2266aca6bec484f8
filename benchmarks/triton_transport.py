"""What the transport to a Triton server costs: gRPC vs HTTP, frames in the request vs shared memory.

``python -m stylize_rt.benchmarks.triton_transport triton://127.0.0.1:8001/mosaic
triton+http://127.0.0.1:8000/mosaic --sizes 640x360,1080p --iters 20``

For each size, one backend per (URL, shared memory on/off) is opened and all are timed in
turns, one call each per round, so load changes hit every configuration alike; the table gives
p50 latencies and each one's ratio to gRPC without shared memory of the same run. Shared
memory needs the server on this host (a loopback URL).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from stylize_rt.benchmarks import environment
from stylize_rt.benchmarks.cli import parse_sizes
from stylize_rt.benchmarks.harness import make_frames
from stylize_rt.errors import run_reporting_errors
from stylize_rt.runtime.backends.registry import open_backend


def measure(urls: list[str], sizes: list[tuple[int, int]], iters: int, warmup: int = 2) -> list[dict]:
    rows = []
    for height, width in sizes:
        backends = {(url, mode): open_backend(url, shared_memory=mode, warmup=0) for url in urls for mode in ("off", "on")}
        try:
            name = next(iter(backends.values())).inputs[0].name
            feeds = {name: make_frames(1, height, width)}
            times: dict[tuple[str, str], list[float]] = {key: [] for key in backends}
            for round_ in range(warmup + iters):
                for key, backend in backends.items():
                    start = time.perf_counter()
                    backend.infer(feeds)
                    if round_ >= warmup:
                        times[key].append((time.perf_counter() - start) * 1000.0)
        finally:
            for backend in backends.values():
                backend.close()
        base = statistics.median(times[(urls[0], "off")])
        for (url, mode), values in times.items():
            p50 = statistics.median(values)
            rows.append({"size": f"{width}x{height}", "url": url, "shared_memory": mode, "p50_ms": round(p50, 2),
                         "vs_first_url_no_shm": round(p50 / base, 3)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stylize_rt.benchmarks.triton_transport",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("urls", nargs="+", metavar="URL", help="triton:// and/or triton+http:// URLs of one model")
    parser.add_argument("--sizes", default="640x360,1080p")
    parser.add_argument("--iters", type=int, default=20)

    def job() -> int:
        load = environment.load_average()
        rows = measure(args.urls, parse_sizes(args.sizes), args.iters)
        print("| size | URL | shared memory | p50 ms | vs first URL, no shared memory |\n|---|---|---|---:|---:|")
        for r in rows:
            print(f"| {r['size']} | {r['url']} | {r['shared_memory']} | {r['p50_ms']:.1f} | {r['vs_first_url_no_shm']:.2f}x |")
        print(f"load average: {load} -> {environment.load_average()}")
        return 0

    args = parser.parse_args(argv)
    return run_reporting_errors(job)


if __name__ == "__main__":
    sys.exit(main())
