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
    """One loaded model on one engine. ``infer`` takes and returns host numpy arrays."""

    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    metadata: dict[str, str]

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...
