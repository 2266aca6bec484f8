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

import os
import time
from collections import OrderedDict
from typing import Any, Mapping

import numpy as np

from stylize_rt.contract import TensorSpec
from stylize_rt.engines.build import BuildConfig
from stylize_rt.engines.cache import ensure_engine
from stylize_rt.engines.load import LoadedEngine, load_engine
from stylize_rt.engines.shapes import check_shape
from stylize_rt.errors import BadInputError
from stylize_rt.gpu import cuda
from stylize_rt.runtime.backends.base import BackendBase, check_feeds, check_tensor, image_input_shape
from stylize_rt.runtime.backends.options import TensorrtOptions, make_options

MAX_GRAPHS = 8  # captured CUDA graphs kept (one per distinct input shape set)


class TensorrtBackend(BackendBase):
    """Runs a ``.plan``/``.engine`` built by ``stylize-rt build-engine`` (or trtexec).

    Options: :class:`TensorrtOptions`. ``warmup`` runs at the profile's opt shape or
    ``warmup_shape``; ``threads`` is unused (the GPU does the work). Loading (sidecar checks,
    deserializing) is ``engines.load``'s; this class runs what it loaded.
    """

    name = "tensorrt"

    def __init__(self, engine: str | os.PathLike[str] | LoadedEngine, options: TensorrtOptions | None = None,
                 **fields: Any) -> None:
        options = make_options(TensorrtOptions, options, self.name, **fields)
        loaded = engine if isinstance(engine, LoadedEngine) else load_engine(
            engine, options.device, options.verify_hash, options.precision)
        self._loaded = loaded
        self._trt = loaded.trt
        self._cudart = cuda.import_cudart()
        self._engine = loaded.engine
        self.path, self.device = loaded.path, options.device
        self.options = options
        self.sidecar = loaded.sidecar
        self.warnings = loaded.warnings
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise cuda.CudaError(f"cannot create a TensorRT execution context for {self.path.name} (GPU out of memory?)")
        self.inputs = loaded.inputs
        self.outputs = loaded.outputs
        self.profile = loaded.profile
        self.metadata = loaded.metadata
        names = [spec.name for spec in self.inputs + self.outputs]

        self._stream = cuda.Stream()
        self._device_buffers = {n: cuda.DeviceBuffer() for n in names}
        self._host_buffers = {n: cuda.PinnedBuffer() for n in names}
        self._host_views: dict[str, np.ndarray] = {}
        self._key: tuple | None = None  # input shapes the context and buffers are set for
        self._addresses_dirty = False
        self._graphs: OrderedDict[tuple, Any] = OrderedDict()  # key -> (graph, graph_exec), None: can't
        self._seen: set[tuple] = set()  # keys run once uncaptured (CUDA graphs are captured after that)
        self._input_names = {s.name for s in self.inputs}
        self.cuda_graph = options.cuda_graph
        self.copy_outputs = options.copy_outputs
        self._timer = cuda.EventTimer() if options.timing else None

        self.warmup_seconds = 0.0
        if options.warmup > 0:
            self.warmup_seconds = self._warm_up(options.warmup, options.warmup_shape)

    def _warm_up(self, runs: int, shape: tuple[int, ...] | None) -> float:
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
    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = [feeds[spec.name] for spec in self.inputs]
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
        arrays = {name: cuda.DeviceArray.from_object(value) for name, value in inputs.items()}
        check_feeds(self.inputs, arrays)
        for spec in self.inputs:
            array = arrays[spec.name]
            check_shape(self.profile, spec.name, array.shape)
            if not self._context.set_input_shape(spec.name, array.shape):
                raise BadInputError(f"engine {self.path.name} rejects input {spec.name!r} of shape {array.shape}")
            self._context.set_tensor_address(spec.name, array.ptr)
        result = {}
        for spec in self.outputs:
            dims = tuple(int(d) for d in self._context.get_tensor_shape(spec.name))
            if outputs and spec.name in outputs:
                array = cuda.DeviceArray.from_object(outputs[spec.name])
                check_tensor(TensorSpec(spec.name, spec.dtype, dims), array.dtype, array.shape, what="output")
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
        """TensorRT's per-layer information of the running engine (see ``LoadedEngine``)."""
        return self._loaded.layer_information()

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
        self._loaded.release()

    @classmethod
    def from_onnx(cls, onnx_path: str | os.PathLike[str], options: TensorrtOptions | None = None,
                  **fields: Any) -> "TensorrtBackend":
        """Build (once, through the engine cache) and open an engine for ``onnx_path``.

        The build follows ``options.build`` (an ``engines.build.BuildConfig``), else
        ``options.precision`` and ``options.shapes``; the engine's precision is then the build's.
        """
        options = make_options(TensorrtOptions, options, cls.name, **fields)
        build = options.build or BuildConfig(precision=options.precision, shapes=list(options.shapes))
        engine = ensure_engine(onnx_path, build, root=options.cache_dir, device=options.device)
        return cls(engine, make_options(TensorrtOptions, options, cls.name, precision="auto"))


__all__ = ["TensorrtBackend"]
