"""The backend protocol: load a model, describe its tensors, infer on a batch, close.

Every engine kind (ONNX Runtime, TensorRT, PyTorch) is one class implementing this, so
the runtime, the CLI and the benchmarks never branch on the engine underneath.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype and shape of a model input/output; dynamic dimensions are ``None``."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]


@runtime_checkable
class Backend(Protocol):
    """One loaded model on one engine. ``infer`` takes and returns host numpy arrays.

    Beyond the protocol, every backend here also has ``warmup_seconds`` (the one-time cost of
    the runs done at open: first-call latency spikes are the most common complaint, so it is
    paid and reported up front) and ``__enter__``/``__exit__``; GPU backends add
    ``infer_device`` (zero-copy on device memory) and, where timed, ``last_timings``.
    These are not protocol members so that third-party backends without them still match.
    """

    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    metadata: dict[str, str]

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


def image_input_shape(spec: TensorSpec, height: int, width: int, batch: int = 1) -> tuple[int, ...] | None:
    """A concrete shape for an image input (NHWC or NCHW with 3 channels), or None if it is not one.

    Used to warm a backend up on a frame of a chosen size without knowing its layout.
    """
    shape = spec.shape
    if len(shape) != 4:
        return None
    if shape[3] == 3:
        wanted = (batch, height, width, 3)
    elif shape[1] == 3:
        wanted = (batch, 3, height, width)
    else:
        return None
    if any(d is not None and d != w for d, w in zip(shape, wanted)):
        wanted = tuple(w if d is None else d for d, w in zip(shape, wanted))
    return wanted


def warm_up(backend: Backend, runs: int, height: int, width: int) -> float:
    """Run ``backend`` ``runs`` times on a blank frame; return the seconds spent.

    Only single-input image models are warmed up (a captioner's token inputs have no
    meaningful blank value); others return 0.0 and warm up on their first real call.
    """
    import time

    if runs <= 0 or len(backend.inputs) != 1:
        return 0.0
    spec = backend.inputs[0]
    shape = image_input_shape(spec, height, width)
    if shape is None:
        return 0.0
    feeds = {spec.name: np.zeros(shape, spec.dtype)}
    start = time.perf_counter()
    for _ in range(runs):
        backend.infer(feeds)
    return time.perf_counter() - start
