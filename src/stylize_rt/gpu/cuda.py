"""Small cuda-python helpers for the GPU backends: errors, streams, events, buffers, foreign arrays.

cuda-python (NVIDIA's own bindings, wheel-installable) is imported only inside these
functions. Everything that can be pure Python (reading ``__cuda_array_interface__``, stream
handles of torch/cupy/pycuda objects) is, so it is tested on machines without a GPU.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np

from stylize_rt.errors import MissingDependencyError, StylizeError

GPU_INSTALL_HINT = "pip install 'stylize-rt[gpu]' on a machine with an NVIDIA GPU and driver"


class CudaError(StylizeError):
    """A CUDA call failed at run time (out of memory, device lost...)."""


def import_cudart():
    """The cuda-python runtime module; a one-line MissingDependencyError where absent."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6 layout
    except ImportError:
        try:
            from cuda import cudart  # cuda-python 12.x before the cuda.bindings split
        except ImportError:
            raise MissingDependencyError(f"cuda-python is not installed: {GPU_INSTALL_HINT}") from None
    except OSError as exc:  # installed, but libcudart or the driver cannot be loaded
        raise MissingDependencyError(f"cuda-python cannot load the CUDA runtime ({exc}): {GPU_INSTALL_HINT}") from None
    return cudart


def check(result: Any, what: str = "CUDA call") -> Any:
    """Unpack cuda-python's ``(err, *values)``; raise ``CudaError`` naming the failed call."""
    if isinstance(result, tuple):
        err, values = result[0], result[1:]
    else:
        err, values = result, ()
    if int(getattr(err, "value", err)) != 0:
        raise CudaError(f"{what} failed: {_error_name(err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _error_name(err: Any) -> str:
    try:
        cudart = import_cudart()
        name = cudart.cudaGetErrorName(err)[1]
        text = cudart.cudaGetErrorString(err)[1]
        decode = lambda b: b.decode() if isinstance(b, bytes) else str(b)  # noqa: E731
        return f"{decode(name)} ({decode(text)})"
    except Exception:  # noqa: BLE001 - the error path must not raise a second error
        return str(err)


def as_int(handle: Any) -> int:
    """The address inside a cuda-python handle (``cudaStream_t``, ``cudaGraph_t``...) as an int."""
    try:
        return int(handle)
    except TypeError:
        return int(handle.getPtr())


@dataclass(frozen=True)
class CudaStatus:
    """What cuda-python says about this machine, without raising: device count, or why there is none.

    ``error``: the CUDA error name when counting devices failed (``cudaErrorInsufficientDriver``,
    ``cudaErrorNoDevice``...), or ``"cuda-python is not installed"``/``"...cannot load..."``.
    ``driver_cuda``/``runtime_cuda``: CUDA versions as ``12040`` (12.4); 0 = no driver.
    """

    count: int
    error: str | None = None
    driver_cuda: int | None = None
    runtime_cuda: int | None = None

    def problem(self, device: int = 0) -> str | None:
        """One line saying why CUDA device ``device`` cannot be used, or None when it can."""
        if self.error is None and 0 <= device < self.count:
            return None
        if self.error is None:
            if self.count == 0:
                return "no CUDA GPU is visible (CUDA_VISIBLE_DEVICES hides them, or none is attached)"
            return f"CUDA device {device} does not exist ({self.count} visible)"
        if self.error.startswith("cuda-python"):
            return f"{self.error}: {GPU_INSTALL_HINT}"
        if self.driver_cuda == 0:
            return "no NVIDIA driver is loaded (libcuda): no CUDA GPU can be used on this machine"
        if self.error == "cudaErrorInsufficientDriver":
            driver, runtime = cuda_version_text(self.driver_cuda), cuda_version_text(self.runtime_cuda)
            major = (self.driver_cuda or 0) // 1000
            bindings = _bindings_version()
            return (
                f"the NVIDIA driver supports CUDA {driver}, older than the CUDA {runtime} that cuda-python "
                f"{bindings} brings: update the driver, or install a cuda-python of the driver's CUDA major "
                f"(pip install 'cuda-python>={major},<{major + 1}')"
            )
        if self.error == "cudaErrorNoDevice":
            return "no CUDA GPU is visible: the driver is loaded but reports no device (CUDA_VISIBLE_DEVICES?)"
        return f"CUDA cannot start: {self.error}"


def cuda_version_text(version: int | None) -> str:
    """``12040`` -> ``"12.4"``; unknown -> ``"?"``."""
    if not version:
        return "?"
    return f"{version // 1000}.{(version % 1000) // 10}"


def _bindings_version() -> str:
    from importlib import metadata

    for name in ("cuda-bindings", "cuda-python"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "(unknown version)"


def cuda_status() -> CudaStatus:
    """Count devices and keep the reason when that fails (never raises)."""
    try:
        cudart = import_cudart()
    except MissingDependencyError as exc:
        return CudaStatus(0, str(exc).split(":", 1)[0])
    try:
        err, count = cudart.cudaGetDeviceCount()
    except Exception as exc:  # noqa: BLE001 - a broken install reads as no GPU, with its reason
        return CudaStatus(0, f"cudaGetDeviceCount raised {type(exc).__name__}")
    driver = _version_call(cudart, "cudaDriverGetVersion")
    runtime = _version_call(cudart, "cudaRuntimeGetVersion")
    if _code(err) != 0:
        return CudaStatus(0, _error_enum_name(cudart, err), driver, runtime)
    return CudaStatus(int(count), None, driver, runtime)


def _code(err: Any) -> int:
    return int(getattr(err, "value", err))


def _error_enum_name(cudart, err: Any) -> str:
    name = getattr(err, "name", None)
    if isinstance(name, str):
        return name
    try:
        raw = cudart.cudaGetErrorName(err)[1]
        return raw.decode() if isinstance(raw, bytes) else str(raw)
    except Exception:  # noqa: BLE001 - the error path must not raise a second error
        return f"CUDA error {_code(err)}"


def _version_call(cudart, name: str) -> int | None:
    try:
        err, version = getattr(cudart, name)()
    except Exception:  # noqa: BLE001 - informational only
        return None
    return int(version) if _code(err) == 0 else None


def gpu_count() -> int:
    """Visible CUDA devices; 0 without cuda-python, a driver or a GPU (never raises)."""
    return cuda_status().count


def require_gpu(device: int = 0) -> None:
    """Raise a one-line MissingDependencyError unless CUDA device ``device`` is usable, saying why not."""
    import_cudart()
    problem = cuda_status().problem(device)
    if problem:
        raise MissingDependencyError(problem)


def gpu_info(device: int = 0) -> tuple[str, str]:
    """(name, compute capability ``"major.minor"``) of a CUDA device."""
    cudart = import_cudart()
    require_gpu(device)
    props = check(cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = props.name
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).split(b"\0", 1)[0].decode(errors="replace")
    return str(name).strip(), f"{int(props.major)}.{int(props.minor)}"


class Stream:
    """One CUDA stream owned by a backend; ``handle`` is the int other libraries and TensorRT take."""

    def __init__(self) -> None:
        self._cudart = import_cudart()
        self._stream = check(self._cudart.cudaStreamCreate(), "cudaStreamCreate")
        self.handle = as_int(self._stream)

    def synchronize(self) -> None:
        check(self._cudart.cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def close(self) -> None:
        if self._stream is not None:
            self._cudart.cudaStreamDestroy(self._stream)
            self._stream, self.handle = None, 0


class EventTimer:
    """CUDA events around the H2D copy, the compute and the D2H copy of one call.

    Recording events costs a few microseconds; reading the times waits for the stream, so
    :meth:`split_ms` is only called when someone asks (the benchmarks), not in ``infer``.
    """

    NAMES = ("start", "h2d", "compute", "d2h")

    def __init__(self) -> None:
        self._cudart = import_cudart()
        self._events = [check(self._cudart.cudaEventCreate(), "cudaEventCreate") for _ in self.NAMES]
        self.recorded = False

    def record(self, index: int, stream: int) -> None:
        check(self._cudart.cudaEventRecord(self._events[index], stream), "cudaEventRecord")
        self.recorded = True

    def split_ms(self) -> dict[str, float]:
        if not self.recorded:
            return {}
        check(self._cudart.cudaEventSynchronize(self._events[-1]), "cudaEventSynchronize")
        times = [
            float(check(self._cudart.cudaEventElapsedTime(a, b), "cudaEventElapsedTime"))
            for a, b in zip(self._events, self._events[1:])
        ]
        return {"h2d_ms": times[0], "compute_ms": times[1], "d2h_ms": times[2]}

    def close(self) -> None:
        for event in self._events:
            self._cudart.cudaEventDestroy(event)
        self._events = []


class _GrowingBuffer:
    """A CUDA allocation that grows (never shrinks) to the largest size asked for.

    Subclasses name the allocator pair: device memory or page-locked host memory.
    """

    _alloc = ""
    _free = ""

    def __init__(self) -> None:
        self._cudart = import_cudart()
        self.ptr = 0
        self.nbytes = 0

    def ensure(self, nbytes: int) -> bool:
        """Make room for ``nbytes``; True when the address changed (bindings must be updated)."""
        if nbytes <= self.nbytes:
            return False
        self.close()
        allocate = getattr(self._cudart, self._alloc)
        self.ptr = int(check(allocate(max(nbytes, 1)), f"{self._alloc}({nbytes} bytes)"))
        self.nbytes = nbytes
        return True

    def close(self) -> None:
        if self.ptr:
            getattr(self._cudart, self._free)(self.ptr)
        self.ptr, self.nbytes = 0, 0


class DeviceBuffer(_GrowingBuffer):
    """Device memory for engine inputs/outputs."""

    _alloc, _free = "cudaMalloc", "cudaFree"


class PinnedBuffer(_GrowingBuffer):
    """Page-locked host memory (fast, truly async copies) viewed as numpy arrays."""

    _alloc, _free = "cudaMallocHost", "cudaFreeHost"

    def view(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return host_array(self.ptr, shape, dtype)


def host_array(ptr: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A numpy view of host memory at ``ptr`` (no copy; the caller keeps the memory alive)."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    raw = (ctypes.c_ubyte * (count * dtype.itemsize)).from_address(ptr)
    return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)


def memcpy_async(dst: int, src: int, nbytes: int, kind: str, stream: int) -> None:
    """``kind``: "h2d", "d2h" or "d2d"."""
    cudart = import_cudart()
    kinds = {
        "h2d": cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
        "d2h": cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
        "d2d": cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice,
    }
    check(cudart.cudaMemcpyAsync(dst, src, nbytes, kinds[kind], stream), f"cudaMemcpyAsync {kind}")


@dataclass(frozen=True)
class DeviceArray:
    """A device pointer with its shape and dtype: what zero-copy calls take and return."""

    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        """Version 3 of the interface: torch.as_tensor, cupy.asarray and numba take a DeviceArray as it is."""
        return {"shape": tuple(self.shape), "typestr": np.dtype(self.dtype).str, "data": (int(self.ptr), False),
                "strides": None, "version": 3}

    @classmethod
    def from_object(cls, obj: Any) -> "DeviceArray":
        """Read a torch tensor, cupy/numba/pycuda array (``__cuda_array_interface__``) or a DeviceArray."""
        if isinstance(obj, DeviceArray):
            return obj
        interface = getattr(obj, "__cuda_array_interface__", None)
        if interface is None:
            raise TypeError(
                f"{type(obj).__name__} is not a CUDA array: pass a DeviceArray(ptr, shape, dtype) or an object "
                "with __cuda_array_interface__ (torch CUDA tensors, cupy, numba, pycuda GPUArray)"
            )
        shape = tuple(int(d) for d in interface["shape"])
        dtype = np.dtype(interface["typestr"])
        strides = interface.get("strides")
        if strides is not None and tuple(strides) != _c_strides(shape, dtype.itemsize):
            raise ValueError(f"CUDA array of shape {shape} is not C-contiguous; make it contiguous first")
        return cls(int(interface["data"][0]), shape, dtype)


def _c_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    strides, step = [], itemsize
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))


def stream_handle(stream: Any) -> int:
    """The raw ``cudaStream_t`` of an int, torch.cuda.Stream, cupy Stream or pycuda Stream."""
    if stream is None:
        return 0
    if isinstance(stream, int):
        return stream
    for attr in ("cuda_stream", "ptr", "handle"):  # torch, cupy, pycuda
        value = getattr(stream, attr, None)
        if isinstance(value, int):
            return value
    try:
        return as_int(stream)  # cuda-python's cudaStream_t / CUstream
    except (TypeError, ValueError, AttributeError):
        raise TypeError(f"cannot get a CUDA stream handle from {type(stream).__name__}") from None


__all__ = [
    "CudaError",
    "import_cudart",
    "check",
    "as_int",
    "CudaStatus",
    "cuda_status",
    "cuda_version_text",
    "gpu_count",
    "require_gpu",
    "gpu_info",
    "Stream",
    "EventTimer",
    "DeviceBuffer",
    "PinnedBuffer",
    "host_array",
    "memcpy_async",
    "DeviceArray",
    "stream_handle",
]
