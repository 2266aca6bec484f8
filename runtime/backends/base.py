"""The backend contract: load a model, describe its tensors, infer on a batch, close.

Every engine kind (ONNX Runtime, TensorRT, PyTorch) is one class on :class:`BackendBase`, so
the runtime, the CLI and the benchmarks never branch on the engine underneath. As in
Polygraphy's runners, the public ``infer`` checks the feed once (names, dtypes, ranks,
fixed dimensions) and then calls the backend's own ``_infer``.
"""

from __future__ import annotations

import abc
import time
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from stylize_rt.contract import (
    CONTROL_INPUTS,
    INPUT_IMAGE,
    INPUT_PRESERVE_COLOR,
    INPUT_STRENGTH,
    INPUT_STYLE,
    TensorSpec,
)
from stylize_rt.errors import BadInputError, StylizeError, first_line


class InferenceError(StylizeError):
    """The engine could not run the model on a (well-formed) input: exit 1, one line."""


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


def check_tensor(spec: TensorSpec, dtype: Any, shape: tuple[int, ...], what: str = "input") -> None:
    """A one-line ``BadInputError`` unless (dtype, shape) fits ``spec``: same dtype and rank,
    and equal wherever the model fixes a dimension."""
    if np.dtype(dtype) != spec.dtype:
        raise BadInputError(f"{what} {spec.name!r} must be a {spec.dtype} array, got {np.dtype(dtype)}")
    if len(shape) != len(spec.shape) or any(d is not None and d != s for d, s in zip(spec.shape, shape)):
        dims = "x".join("?" if d is None else str(d) for d in spec.shape)
        raise BadInputError(f"{what} {spec.name!r} must have shape {dims}, got {'x'.join(map(str, shape))}")


def check_feeds(inputs: list[TensorSpec], feeds: dict[str, Any]) -> None:
    """Every input present and fitting its spec (host numpy arrays or device arrays alike)."""
    for spec in inputs:
        array = feeds.get(spec.name)
        if array is None:
            raise BadInputError(f"missing input {spec.name!r} (model inputs: {[s.name for s in inputs]})")
        check_tensor(spec, array.dtype, tuple(array.shape))
    image = feeds.get(INPUT_IMAGE)
    if image is not None and len(image.shape) >= 1:
        for spec in inputs:
            if spec.name in CONTROL_INPUTS and len(feeds[spec.name].shape) >= 1:
                check_rows(spec.name, feeds[spec.name].shape[0], image.shape[0])


def check_rows(name: str, rows: int, batch: int) -> None:
    """A control gives one row per frame, or one row for every frame (broadcast, as in the exported graph)."""
    if rows not in (1, batch):
        raise BadInputError(f"input {name!r} has {rows} rows for {batch} frames (give one per frame, or one for all)")


class BackendBase(abc.ABC):
    """What every backend here shares: the checked ``infer``, ``close`` and the context manager."""

    name: ClassVar[str] = ""
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    metadata: dict[str, str]
    warmup_seconds: float = 0.0

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on host arrays (checked against ``inputs`` first); returns host arrays.

        An engine library's own error (an ORT ``Fail``, a shape a graph cannot take) becomes a
        one-line ``InferenceError`` naming the backend and the shapes, never a traceback.
        """
        check_feeds(self.inputs, feeds)
        try:
            return self._infer(feeds)
        except StylizeError:
            raise
        except Exception as exc:
            shapes = ", ".join(f"{name} {'x'.join(map(str, a.shape))}" for name, a in feeds.items())
            raise InferenceError(f"{self.name} failed on {shapes}: {first_line(exc)}") from exc

    @abc.abstractmethod
    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The backend's own run on a checked feed."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the engine and its buffers; safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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


def _control_warm_up_feed(spec: TensorSpec, rows: int) -> np.ndarray | None:
    """A multi-style generator's control input for ``rows`` frames: the first style, full strength,
    colours not kept; None for an input that is not one of the contract's controls."""
    if spec.name == INPUT_STYLE and len(spec.shape) == 2 and isinstance(spec.shape[1], int):
        style = np.zeros((rows, spec.shape[1]), spec.dtype)
        style[:, 0] = 1
        return style
    if spec.name in (INPUT_STRENGTH, INPUT_PRESERVE_COLOR) and len(spec.shape) == 1:
        return np.full((rows,), 1 if spec.name == INPUT_STRENGTH else 0, spec.dtype)
    return None


def warm_up(backend: Backend, runs: int, height: int, width: int) -> float:
    """Run ``backend`` ``runs`` times on a blank frame; return the seconds spent.

    Image models are warmed up, multi-style generators with their first style's controls; other
    inputs (a captioner's tokens) have no meaningful blank value, so such models return 0.0 and
    warm up on their first real call.
    """
    if runs <= 0 or not backend.inputs:
        return 0.0
    spec, *controls = backend.inputs
    shape = image_input_shape(spec, height, width)
    if shape is None:
        return 0.0
    control_feeds = {c.name: _control_warm_up_feed(c, shape[0]) for c in controls}
    if any(v is None for v in control_feeds.values()):
        return 0.0
    feeds = {spec.name: np.zeros(shape, spec.dtype), **control_feeds}
    start = time.perf_counter()
    for _ in range(runs):
        backend.infer(feeds)
    return time.perf_counter() - start


__all__ = ["Backend", "BackendBase", "InferenceError", "TensorSpec", "check_feeds", "check_tensor", "image_input_shape", "warm_up"]
