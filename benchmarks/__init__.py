"""Benchmarks: latency/throughput harness and quality measurements, as runnable modules."""

if __name__ != "stylize_rt.benchmarks":  # a checkout's root on sys.path would make this a second, separate package
    raise ImportError(f"import stylize_rt.benchmarks, not {__name__}: the stage folders are subpackages of stylize_rt")
