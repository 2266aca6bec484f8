"""TensorRT as a dependency: importing it, whether it can run here, and what it runs on.

Engines are tied to the TensorRT version and GPU that built them, so both the builder
(engines/) and the runtime ask the same question the same way: :func:`running_environment`.
``tensorrt`` is imported inside functions; capability checks (``hasattr``) decide version
differences, never version strings.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

from stylize_rt.errors import MissingDependencyError, first_line
from stylize_rt.gpu import cuda

TRT_INSTALL_HINT = "pip install 'stylize-rt[gpu]' (tensorrt) on a machine with an NVIDIA GPU"


@dataclass(frozen=True)
class Environment:
    """What an engine is bound to: the TensorRT library and the GPU that built or runs it."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.9"

    def describe(self) -> str:
        return f"TensorRT {self.tensorrt_version} on {self.gpu_name} (compute {self.compute_capability})"


def import_tensorrt():
    """The ``tensorrt`` module; a one-line MissingDependencyError where absent."""
    try:
        import tensorrt as trt  # optional GPU dependency: only where an engine is built or run
    except ModuleNotFoundError:
        raise MissingDependencyError(f"TensorRT is not installed: {TRT_INSTALL_HINT}") from None
    except (ImportError, OSError) as exc:  # the wheel is there but its libraries (libnvinfer, CUDA) are not
        raise MissingDependencyError(
            f"TensorRT is installed but cannot load ({first_line(exc)}): {TRT_INSTALL_HINT}"
        ) from None
    return trt


def tensorrt_available() -> bool:
    """tensorrt and cuda-python importable and a GPU visible (cheap: nothing heavy is imported)."""
    return importlib.util.find_spec("tensorrt") is not None and cuda.gpu_count() > 0


def running_environment(device: int = 0) -> Environment:
    """The TensorRT version and GPU here, as sidecars and cache keys record them."""
    trt = import_tensorrt()
    name, capability = cuda.gpu_info(device)
    return Environment(str(trt.__version__), name, capability)


def numpy_dtype(trt, dtype) -> np.dtype:
    """The numpy dtype of a TensorRT ``DataType``."""
    return np.dtype(trt.nptype(dtype))


__all__ = ["TRT_INSTALL_HINT", "Environment", "import_tensorrt", "tensorrt_available", "running_environment",
           "numpy_dtype"]
