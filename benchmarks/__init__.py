"""Benchmarks: latency/throughput harness and quality measurements, as runnable modules."""
