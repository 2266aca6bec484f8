"""``Stylizer``: frames in, stylized frames out, whatever the model's IO convention.

Frames are numpy HWC uint8 RGB (or NHWC batches). The model's layout comes from the
metadata our exporter writes (``stylize_rt.io_layout``) and is otherwise inferred from
the input tensor's dtype: uint8 means NHWC frames in and out; float means NCHW in [0, 1].
"""

from __future__ import annotations

import numpy as np

from stylize_rt.errors import BadInputError
from stylize_rt.runtime.backends.base import Backend

LAYOUTS = ("uint8_nhwc", "float32_nchw")


def infer_io_layout(backend: Backend) -> str:
    layout = backend.metadata.get("stylize_rt.io_layout")
    if layout in LAYOUTS:
        return layout
    if len(backend.inputs) != 1 or len(backend.outputs) < 1:
        raise BadInputError(
            f"not an image-to-image model: {len(backend.inputs)} inputs, {len(backend.outputs)} outputs"
        )
    return "uint8_nhwc" if backend.inputs[0].dtype == np.uint8 else "float32_nchw"


class Stylizer:
    """Applies one loaded image-to-image model to frames of any size."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.layout = infer_io_layout(backend)
        self._input = backend.inputs[0]
        self._output = backend.outputs[0].name

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """One HWC uint8 RGB frame -> one HWC uint8 RGB frame of the same size."""
        return self.stylize_batch(frame[None])[0]

    def stylize_batch(self, frames: np.ndarray) -> np.ndarray:
        """NHWC uint8 RGB -> NHWC uint8 RGB."""
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise BadInputError(
                f"expected uint8 frames of shape (N, H, W, 3), got {frames.dtype} {tuple(frames.shape)}"
            )
        if self.layout == "uint8_nhwc":
            out = self.backend.infer({self._input.name: np.ascontiguousarray(frames)})[self._output]
            return out
        x = np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
        x = x.astype(self._input.dtype, copy=False)
        y = self.backend.infer({self._input.name: x})[self._output]
        y = np.clip(y.astype(np.float32, copy=False), 0.0, 1.0) * 255.0
        return np.rint(y).astype(np.uint8).transpose(0, 2, 3, 1)

    def close(self) -> None:
        self.backend.close()
