"""Inference backends behind one protocol (see :mod:`.base`)."""

from stylize_rt.runtime.backends.base import Backend, TensorSpec
from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend

__all__ = ["Backend", "TensorSpec", "OnnxRuntimeBackend"]
