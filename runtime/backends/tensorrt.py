"""TensorRT backend: a serialized engine, one CUDA stream, preallocated buffers, CUDA graphs.

Written against the TensorRT 10 and 11 Python APIs (tensor-name IO, ``execute_async_v3``)
and cuda-python. Both are imported inside functions: importing this module costs nothing
on machines without them, and using it there fails with a one-line MissingDependencyError.

Per call, ``infer`` does no allocation on the GPU side: inputs are copied into page-locked
staging buffers, copied to the device asynchronously on the backend's stream, the engine
(or, for a shape seen before, a captured CUDA graph of it) runs, outputs come back the same
way, and one stream synchronize ends the call. Buffers grow when a larger shape arrives.
``infer_device`` skips the host entirely for pipelines that already hold frames on the GPU.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from stylize_rt.errors import BadInputError, MissingDependencyError
from stylize_rt.runtime.backends import cuda
from stylize_rt.runtime.backends.base import TensorSpec

TRT_INSTALL_HINT = "pip install 'stylize-rt[gpu]' (tensorrt) on a machine with an NVIDIA GPU"
MAX_GRAPHS = 8  # captured CUDA graphs kept (one per distinct input shape set)


def import_tensorrt():
    """The ``tensorrt`` module; a one-line MissingDependencyError where absent."""
    try:
        import tensorrt as trt
    except ModuleNotFoundError:
        raise MissingDependencyError(f"TensorRT is not installed: {TRT_INSTALL_HINT}") from None
    except (ImportError, OSError) as exc:  # the wheel is there but its libraries (libnvinfer, CUDA) are not
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MissingDependencyError(f"TensorRT is installed but cannot load ({detail}): {TRT_INSTALL_HINT}") from None
    return trt


def tensorrt_available() -> bool:
    """tensorrt and cuda-python importable and a GPU visible (cheap: nothing heavy is imported)."""
    return importlib.util.find_spec("tensorrt") is not None and cuda.gpu_count() > 0


def running_environment(device: int = 0):
    """The TensorRT version and GPU here, as the sidecar records them."""
    from stylize_rt.engines.sidecar import Environment

    trt = import_tensorrt()
    name, capability = cuda.gpu_info(device)
    return Environment(str(trt.__version__), name, capability)


def numpy_dtype(trt, dtype) -> np.dtype:
    return np.dtype(trt.nptype(dtype))


class TensorrtBackend:
    """Runs a ``.plan``/``.engine`` built by ``stylize-rt build-engine`` (or trtexec).

    Options: ``device`` (CUDA ordinal), ``cuda_graph`` (capture each repeated input shape once
    and replay it: fewer launch overheads for small models), ``warmup`` (runs at open, at the
    profile's opt shape or ``warmup_shape``; the cost is in ``warmup_seconds``), ``timing``
    (CUDA events per call; read ``last_timings``), ``copy_outputs`` (False returns views into
    the pinned output buffer, valid until the next call), ``verify_hash`` (SHA-256 of the
    engine against its sidecar). ``threads`` is accepted for a uniform interface and unused;
    ``precision``, when given, must be the one the engine was built with (an engine's precision
    is fixed at build time: asking for another is an error, not a silent fallback).
    """

    name = "tensorrt"

    def __init__(
        self,
        engine_path: str | os.PathLike[str],
        device: int = 0,
        cuda_graph: bool = True,
        warmup: int = 2,
        warmup_shape: tuple[int, ...] | None = None,  # (H, W) or a full input shape; default: profile opt
        timing: bool = False,
        copy_outputs: bool = True,
        verify_hash: bool = True,
        threads: int = 0,
        precision: str | None = None,
    ) -> None:
        from stylize_rt.engines.sidecar import check_compatible, check_engine_file, read_sidecar, sidecar_path

        path = Path(engine_path)
        if not path.is_file():
            raise BadInputError(f"engine file not found: {path}")
        trt = import_tensorrt()
        cudart = cuda.import_cudart()
        cuda.require_gpu(device)
        cuda.check(cudart.cudaSetDevice(device), "cudaSetDevice")
        self.path, self.device = path, device
        self.warnings: list[str] = []
        self.sidecar = None
        if sidecar_path(path).is_file():
            self.sidecar = read_sidecar(path)
            self.warnings += check_compatible(self.sidecar, running_environment(device), path.name)
            check_engine_file(path, self.sidecar, verify_hash=verify_hash)
            if precision and precision not in ("auto", self.sidecar.precision):
                raise BadInputError(
                    f"{path.name} is a {self.sidecar.precision} engine; for {precision}, build one with "
                    f"stylize-rt build-engine --precision {precision}"
                )
        else:
            self.warnings.append(f"{path.name} has no sidecar: its TensorRT version and GPU cannot be checked")
        for message in self.warnings:
            print(f"stylize-rt: warning: {message}", file=sys.stderr)

        self._trt = trt
        self._cudart = cudart
        self._runtime, self._engine = self._deserialize(trt, path)
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise cuda.CudaError(f"cannot create a TensorRT execution context for {path.name} (GPU out of memory?)")

        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_input = {n: self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self._dtypes = {n: numpy_dtype(trt, self._engine.get_tensor_dtype(n)) for n in names}

        def spec(n: str) -> TensorSpec:
            dims = tuple(int(d) for d in self._engine.get_tensor_shape(n))
            return TensorSpec(n, self._dtypes[n], tuple(None if d < 0 else d for d in dims))

        self.inputs = [spec(n) for n in names if is_input[n]]
        self.outputs = [spec(n) for n in names if not is_input[n]]
        self.profile = self._read_profile()
        self.metadata = dict(self.sidecar.metadata) if self.sidecar else {}
        if self.sidecar:
            self.metadata.setdefault("stylize_rt.engine.precision", self.sidecar.precision)

        self._stream = cuda.Stream()
        self._device_buffers = {n: cuda.DeviceBuffer() for n in names}
        self._host_buffers = {n: cuda.PinnedBuffer() for n in names}
        self._host_views: dict[str, np.ndarray] = {}
        self._key: tuple | None = None  # input shapes the context and buffers are set for
        self._addresses_dirty = False
        self._graphs: OrderedDict[tuple, Any] = OrderedDict()  # key -> (graph, graph_exec), None: can't
        self._seen: set[tuple] = set()  # keys run once uncaptured (CUDA graphs are captured after that)
        self._input_names = {s.name for s in self.inputs}
        self.cuda_graph = cuda_graph
        self.copy_outputs = copy_outputs
        self._timer = cuda.EventTimer() if timing else None

        self.warmup_seconds = 0.0
        if warmup > 0:
            self.warmup_seconds = self._warm_up(warmup, warmup_shape)

    # -- loading ---------------------------------------------------------------------------
    @staticmethod
    def _deserialize(trt, path: Path):
        plan = path.read_bytes()
        if not plan:
            raise BadInputError(f"engine file {path} is empty")
        logger = trt.Logger(trt.Logger.ERROR)
        runtime = trt.Runtime(logger)
        try:
            engine = runtime.deserialize_cuda_engine(plan)
        except Exception as exc:  # some versions raise instead of returning None
            engine, detail = None, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        else:
            detail = "see TensorRT's message above"
        if engine is None:
            raise BadInputError(
                f"TensorRT {trt.__version__} cannot load {path.name} ({detail}): the file is corrupt, truncated, "
                "or was built for another TensorRT version or GPU; rebuild it with stylize-rt build-engine"
            )
        return (logger, runtime), engine  # kept: an engine must not outlive its runtime and logger

    def _read_profile(self):
        """Profile 0 as the engine itself reports it (the sidecar is informative; the engine decides)."""
        from stylize_rt.engines.shapes import InputProfile, Profile

        items = []
        for spec in self.inputs:
            if None in spec.shape:
                lo, opt, hi = (tuple(int(d) for d in s) for s in self._engine.get_tensor_profile_shape(spec.name, 0))
                items.append(InputProfile(spec.name, lo, opt, hi))
        return Profile(tuple(items))

    def _warm_up(self, runs: int, shape: tuple[int, ...] | None) -> float:
        from stylize_rt.runtime.backends.base import image_input_shape

        feeds = {}
        for spec in self.inputs:
            if shape is not None and len(self.inputs) == 1:
                dims = tuple(shape) if len(shape) == len(spec.shape) else image_input_shape(spec, *shape)
                if dims is None:
                    raise BadInputError(f"warmup_shape {shape} does not fit input {spec.name!r} {spec.shape}")
            elif None in spec.shape:
                dims = self.profile[spec.name].opt
            else:
                dims = tuple(spec.shape)
            feeds[spec.name] = np.zeros(dims, spec.dtype)
        start = time.perf_counter()
        for _ in range(runs):
            self.infer(feeds)
        return time.perf_counter() - start

    # -- shapes and buffers ----------------------------------------------------------------
    def _set_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        from stylize_rt.engines.shapes import check_shape

        for spec in self.inputs:
            shape = shapes[spec.name]
            check_shape(self.profile, spec.name, shape)
            if not self._context.set_input_shape(spec.name, shape):
                raise BadInputError(f"engine {self.path.name} rejects input {spec.name!r} of shape {shape}")
        moved = False
        for spec in self.inputs + self.outputs:
            dims = shapes[spec.name] if spec.name in self._input_names else tuple(self._context.get_tensor_shape(spec.name))
            dims = tuple(int(d) for d in dims)
            if any(d < 0 for d in dims):
                raise BadInputError(
                    f"{self.path.name}: output {spec.name!r} has a data-dependent shape {dims}; not supported here"
                )
            nbytes = int(np.prod(dims, dtype=np.int64)) * spec.dtype.itemsize
            moved |= self._device_buffers[spec.name].ensure(nbytes)
            self._host_buffers[spec.name].ensure(nbytes)
            self._host_views[spec.name] = self._host_buffers[spec.name].view(dims, spec.dtype)
            self._context.set_tensor_address(spec.name, self._device_buffers[spec.name].ptr)
        if moved:  # graphs hold the old addresses
            self._drop_graphs()
        self._addresses_dirty = False

    def _rebind(self) -> None:
        for spec in self.inputs:
            self._context.set_input_shape(spec.name, self._host_views[spec.name].shape)
        for spec in self.inputs + self.outputs:
            self._context.set_tensor_address(spec.name, self._device_buffers[spec.name].ptr)
        self._addresses_dirty = False

    # -- running ---------------------------------------------------------------------------
    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = []
        for spec in self.inputs:
            array = feeds.get(spec.name)
            if array is None:
                raise BadInputError(f"missing input {spec.name!r} (engine inputs: {[s.name for s in self.inputs]})")
            if array.dtype != spec.dtype:
                raise BadInputError(f"input {spec.name!r} must be {spec.dtype}, got {array.dtype}")
            arrays.append(array)
        key = tuple(a.shape for a in arrays)
        if key != self._key:
            self._set_shapes({s.name: a.shape for s, a in zip(self.inputs, arrays)})
            self._key = key
        elif self._addresses_dirty:
            self._rebind()
        stream, timer = self._stream.handle, self._timer
        if timer:
            timer.record(0, stream)
        for spec, array in zip(self.inputs, arrays):
            np.copyto(self._host_views[spec.name], array)
            nbytes = array.nbytes
            cuda.memcpy_async(self._device_buffers[spec.name].ptr, self._host_buffers[spec.name].ptr, nbytes, "h2d", stream)
        if timer:
            timer.record(1, stream)
        self._execute(key, stream)
        if timer:
            timer.record(2, stream)
        for spec in self.outputs:
            view = self._host_views[spec.name]
            cuda.memcpy_async(self._host_buffers[spec.name].ptr, self._device_buffers[spec.name].ptr, view.nbytes, "d2h", stream)
        if timer:
            timer.record(3, stream)
        self._stream.synchronize()
        if self.copy_outputs:
            return {spec.name: self._host_views[spec.name].copy() for spec in self.outputs}
        return {spec.name: self._host_views[spec.name] for spec in self.outputs}

    def _execute(self, key: tuple, stream: int) -> None:
        """Run the engine; from the second call at a shape on, through a captured CUDA graph."""
        cudart = self._cudart
        if self.cuda_graph:
            entry = self._graphs.get(key)
            if entry is None and key not in self._graphs and key in self._seen:
                entry = self._graphs[key] = self._capture(stream)  # None: this engine can't be captured
                while len(self._graphs) > MAX_GRAPHS:
                    self._destroy_graph(self._graphs.popitem(last=False)[1])
            if entry:
                self._graphs.move_to_end(key)
                cuda.check(cudart.cudaGraphLaunch(entry[1], stream), "cudaGraphLaunch")
                return
        if not self._context.execute_async_v3(stream):
            raise cuda.CudaError(f"TensorRT execution of {self.path.name} failed (see TensorRT's message above)")
        self._seen.add(key)

    def _capture(self, stream: int):
        """Capture ``execute_async_v3`` as a graph; None (run uncaptured from now on) if TensorRT can't."""
        cudart = self._cudart
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        try:
            cuda.check(cudart.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")
        except cuda.CudaError:
            return None
        ok = False
        try:
            ok = bool(self._context.execute_async_v3(stream))
        finally:
            err, graph = cudart.cudaStreamEndCapture(stream)  # always leave capture mode
        if not ok or int(getattr(err, "value", err)) != 0:
            if graph is not None and cuda.as_int(graph) != 0:
                cudart.cudaGraphDestroy(graph)
            return None
        err, graph_exec = cudart.cudaGraphInstantiate(graph, 0)
        if int(getattr(err, "value", err)) != 0:
            cudart.cudaGraphDestroy(graph)
            return None
        return graph, graph_exec

    def infer_device(
        self, inputs: Mapping[str, Any], outputs: Mapping[str, Any] | None = None, stream: Any = None
    ) -> dict[str, "cuda.DeviceArray"]:
        """Zero-copy: run on device memory another library owns, enqueued on its stream.

        ``inputs``/``outputs`` map tensor names to torch CUDA tensors, cupy/numba/pycuda arrays
        (anything with ``__cuda_array_interface__``) or :class:`cuda.DeviceArray`. Without
        ``outputs`` the backend's own device buffers are used (valid until the next call).
        ``stream``: an int handle or a torch/cupy/pycuda stream; default the backend's stream.
        Nothing is synchronized: the caller orders later work on the same stream.
        """
        handle = cuda.stream_handle(stream) or self._stream.handle
        from stylize_rt.engines.shapes import check_shape

        for spec in self.inputs:
            if spec.name not in inputs:
                raise BadInputError(f"missing input {spec.name!r}")
            array = cuda.DeviceArray.from_object(inputs[spec.name])
            if np.dtype(array.dtype) != spec.dtype:
                raise BadInputError(f"input {spec.name!r} must be {spec.dtype}, got {array.dtype}")
            check_shape(self.profile, spec.name, array.shape)
            if not self._context.set_input_shape(spec.name, array.shape):
                raise BadInputError(f"engine {self.path.name} rejects input {spec.name!r} of shape {array.shape}")
            self._context.set_tensor_address(spec.name, array.ptr)
        result = {}
        for spec in self.outputs:
            dims = tuple(int(d) for d in self._context.get_tensor_shape(spec.name))
            if outputs and spec.name in outputs:
                array = cuda.DeviceArray.from_object(outputs[spec.name])
                if tuple(array.shape) != dims or np.dtype(array.dtype) != spec.dtype:
                    raise BadInputError(
                        f"output {spec.name!r} needs a {spec.dtype} buffer of shape {dims}, got {array.dtype} {array.shape}"
                    )
            else:
                buffer = self._device_buffers[spec.name]
                if buffer.ensure(int(np.prod(dims, dtype=np.int64)) * spec.dtype.itemsize):
                    self._drop_graphs()
                    self._key = None
                array = cuda.DeviceArray(buffer.ptr, dims, spec.dtype)
            self._context.set_tensor_address(spec.name, array.ptr)
            result[spec.name] = array
        self._addresses_dirty = True  # infer() must point the context back at its own buffers
        if not self._context.execute_async_v3(handle):
            raise cuda.CudaError(f"TensorRT execution of {self.path.name} failed (see TensorRT's message above)")
        return result

    def layer_information(self) -> str:
        """TensorRT's engine inspector JSON: each layer's kernel and precision (FP32 islands show here).

        Names only, unless the engine was built with ``--detailed-profiling``.
        """
        inspector = self._engine.create_engine_inspector()
        return inspector.get_engine_information(self._trt.LayerInformationFormat.JSON)

    @property
    def last_timings(self) -> dict[str, float]:
        """H2D / compute / D2H milliseconds of the last ``infer`` (needs ``timing=True``)."""
        return self._timer.split_ms() if self._timer else {}

    # -- cleanup ---------------------------------------------------------------------------
    def _destroy_graph(self, entry) -> None:
        if entry:
            self._cudart.cudaGraphExecDestroy(entry[1])
            self._cudart.cudaGraphDestroy(entry[0])

    def _drop_graphs(self) -> None:
        for entry in self._graphs.values():
            self._destroy_graph(entry)
        self._graphs.clear()
        self._seen.clear()

    def close(self) -> None:
        if getattr(self, "_context", None) is None:
            return
        self._stream.synchronize()
        self._drop_graphs()
        if self._timer:
            self._timer.close()
        for buffer in (*self._device_buffers.values(), *self._host_buffers.values()):
            buffer.close()
        self._host_views.clear()
        self._stream.close()
        self._context = None
        self._engine = None
        self._runtime = None

    def __enter__(self) -> "TensorrtBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @classmethod
    def from_onnx(cls, onnx_path: str | os.PathLike[str], build_config=None, cache_dir=None, **options) -> "TensorrtBackend":
        """Build (once, through the engine cache) and open an engine for ``onnx_path``."""
        from stylize_rt.engines.cache import ensure_engine

        engine = ensure_engine(onnx_path, build_config, root=cache_dir, device=options.get("device", 0))
        options.pop("precision", None)  # decided by build_config
        return cls(engine, **options)


__all__ = ["TensorrtBackend", "import_tensorrt", "tensorrt_available", "running_environment"]
