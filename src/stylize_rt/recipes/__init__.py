"""Recipes that drive several stages: ``make models`` (train -> export -> ship) and the CPU
benchmark matrix (bench runs -> docs/BENCHMARKS.md). They sit above every stage."""
