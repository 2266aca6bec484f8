"""ONNX Runtime backend (CPU here; CUDA/TensorRT execution providers where installed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from stylize_rt.errors import BadInputError
from stylize_rt.runtime.backends.base import TensorSpec

_ORT_DTYPES = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(bool)": np.dtype(np.bool_),
}


def _spec(arg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
    return TensorSpec(arg.name, _ORT_DTYPES.get(arg.type, np.dtype(object)), shape)


class OnnxRuntimeBackend:
    """Runs an ``.onnx`` file with ONNX Runtime.

    ``threads`` sets intra-op threads (0 = ORT's default, one per physical core).
    ``providers`` defaults to CPU only; the GPU providers come with the backend layer.
    """

    name = "onnxruntime"

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        threads: int = 0,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        import onnxruntime as ort

        path = Path(model_path)
        if not path.is_file():
            raise BadInputError(f"model file not found: {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), options, providers=list(providers))
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/... types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInputError(f"cannot load ONNX model {path}: {first}") from None
        self.path = path
        self.inputs = [_spec(a) for a in self._session.get_inputs()]
        self.outputs = [_spec(a) for a in self._session.get_outputs()]
        self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        self.providers = self._session.get_providers()

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self._session.run(None, feeds)
        return {spec.name: value for spec, value in zip(self.outputs, results)}

    def close(self) -> None:
        self._session = None
