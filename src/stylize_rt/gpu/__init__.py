"""The GPU layer: CUDA helpers (cuda-python) and TensorRT import, availability and environment.

Part of the ground floor: engines/ and runtime/ both build on it, and nothing here imports
a stage. Every NVIDIA library is imported inside a function, so this package imports on
machines without a GPU (and its pure-Python parts are tested there).
"""
