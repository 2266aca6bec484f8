"""Opening a model file with the right backend: by ``--backend`` name or by file suffix."""

from __future__ import annotations

import os
from pathlib import Path

from stylize_rt.errors import BadInputError
from stylize_rt.runtime.backends.base import Backend


def open_backend(model: str | os.PathLike[str], backend: str = "auto", **options) -> Backend:
    """Load ``model`` with ``backend`` (``auto`` picks by suffix); ``options`` go to the backend."""
    path = Path(model)
    if backend == "auto":
        backend = _backend_for_suffix(path)
    if backend == "onnxruntime":
        from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, **options)
    raise BadInputError(f"unknown backend {backend!r} (available: onnxruntime)")


def _backend_for_suffix(path: Path) -> str:
    if path.suffix == ".onnx":
        return "onnxruntime"
    raise BadInputError(f"cannot tell which backend runs {path.name!r}: expected a .onnx file")
