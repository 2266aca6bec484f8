"""Inference backends behind one protocol (see :mod:`.base`); :func:`open_backend` picks one.

Importing this package imports neither torch nor tensorrt: each backend imports its engine
library when it is constructed.
"""

from stylize_rt.runtime.backends.base import Backend, BackendBase, TensorSpec
from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend
from stylize_rt.runtime.backends.options import BackendOptions, OnnxRuntimeOptions, TensorrtOptions, TorchOptions
from stylize_rt.runtime.backends.registry import BACKENDS, BackendSpec, available_backends, open_backend
from stylize_rt.runtime.backends.tensorrt import TensorrtBackend
from stylize_rt.runtime.backends.torch_backend import TorchBackend

__all__ = [
    "Backend",
    "BackendBase",
    "BackendOptions",
    "OnnxRuntimeOptions",
    "TensorrtOptions",
    "TorchOptions",
    "BackendSpec",
    "BACKENDS",
    "TensorSpec",
    "OnnxRuntimeBackend",
    "TensorrtBackend",
    "TorchBackend",
    "open_backend",
    "available_backends",
]
