"""TensorRT backend: a serialized engine, one CUDA stream, preallocated buffers, CUDA graphs.

Written against the TensorRT 10 and 11 Python APIs (tensor-name IO, ``execute_async_v3``)
and cuda-python. Both are imported inside functions: importing this module costs nothing
on machines without them, and using it there fails with a one-line MissingDependencyError.

Per call, ``infer`` does no allocation on the GPU side: inputs are copied into page-locked
staging buffers, copied to the device asynchronously on the backend's stream, the engine
(or, once a shape has run plain, a captured CUDA graph of it: ``stylize_rt.gpu.graphs``) runs,
outputs come back the same way, and one stream synchronize ends the call. Buffers grow when a
larger shape arrives. ``infer_device`` skips the host entirely for pipelines that already hold
frames on the GPU, enqueued on the caller's stream; an event orders it against the backend's
own stream, since one execution context must never run on two streams at once.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, Mapping

import numpy as np

from stylize_rt.contract import TensorSpec
from stylize_rt.engines.build import BuildConfig
from stylize_rt.engines.cache import ensure_engine
from stylize_rt.engines.load import LoadedEngine, load_engine
from stylize_rt.engines.shapes import Profile, check_shape
from stylize_rt.errors import BadInputError
from stylize_rt.gpu import cuda
from stylize_rt.gpu.graphs import GraphCache
from stylize_rt.runtime.backends.base import Backend, BackendBase, check_feeds, check_tensor, image_input_shape
from stylize_rt.runtime.backends.onnxruntime import CUDA_EP, OnnxRuntimeBackend, usable_providers
from stylize_rt.runtime.backends.options import TensorrtOptions, make_options

MAX_GRAPHS = 8  # captured CUDA graphs kept (one per distinct input shape set)


def _dims(shape) -> str:
    return "x".join(str(d) for d in shape)


class ProfileFallback:
    """Feeds outside an engine's optimization profile go to another backend instead of failing.

    ``auto`` on an ``.onnx`` model builds an engine for the default profile; a frame the CPU
    path would take (a 4K still, a tiny thumbnail) must not become an error there. Such feeds
    run on ``open_fallback()`` (opened on first need), and each new shape is said once on stderr.
    """

    def __init__(self, profile: Profile, open_fallback: Callable[[], Backend], engine_label: str) -> None:
        self.profile = profile
        self._open = open_fallback
        self._backend: Backend | None = None
        self._said: set[tuple] = set()
        self.engine_label = engine_label
        self.calls = 0

    def outside(self, shapes: Mapping[str, tuple[int, ...]]) -> bool:
        for item in self.profile.inputs:
            shape = shapes.get(item.name)
            if shape is not None and not item.contains(shape):
                return True
        return False

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._backend is None:
            self._backend = self._open()
        key = tuple((name, tuple(a.shape)) for name, a in sorted(feeds.items()))
        if key not in self._said:
            self._said.add(key)
            item = self.profile.inputs[0]
            shape = dict(key).get(item.name, key[0][1])
            end = "--min" if any(d < lo for d, lo in zip(shape, item.min)) else "--max"
            where = getattr(self._backend, "providers", None)
            label = f"{self._backend.name} ({where[0]})" if where else self._backend.name
            print(f"stylize-rt: note: input {_dims(shape)} is outside the TensorRT engine's profile "
                  f"({_dims(item.min)} .. {_dims(item.max)}) of {self.engine_label}; running it on {label} "
                  f"(build an engine with {end} {_dims(shape)} to keep it on TensorRT)", file=sys.stderr)
        self.calls += 1
        return self._backend.infer(dict(feeds))

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


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
            engine, options.device, options.verify_hash, options.precision, allow_host_code=options.allow_host_code)
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
        self._graphs = GraphCache(self._capture, self._launch, self._destroy_graph,
                                  enabled=options.cuda_graph, max_graphs=MAX_GRAPHS)
        self._input_names = {s.name for s in self.inputs}
        self.cuda_graph = options.cuda_graph
        self.copy_outputs = options.copy_outputs
        self._timer = cuda.EventTimer() if options.timing else None
        # The stream of the last enqueue that nothing has waited for yet, and an event after it.
        self._pending_stream: int | None = None
        self._order_event = None
        self.fallback: ProfileFallback | None = None

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
            self._graphs.drop_all()
        self._graphs.switched()
        self._addresses_dirty = False

    def _rebind(self) -> None:
        for spec in self.inputs:
            self._context.set_input_shape(spec.name, self._host_views[spec.name].shape)
        for spec in self.inputs + self.outputs:
            self._context.set_tensor_address(spec.name, self._device_buffers[spec.name].ptr)
        self._graphs.switched()
        self._addresses_dirty = False

    def _order_after_pending(self, stream: int) -> None:
        """Make ``stream`` wait for work another stream enqueued on this context and left running."""
        if self._pending_stream is not None and self._pending_stream != stream:
            cuda.check(self._cudart.cudaStreamWaitEvent(stream, self._order_event, 0), "cudaStreamWaitEvent")
        self._pending_stream = None

    def _mark_pending(self, stream: int) -> None:
        if self._order_event is None:
            flags = self._cudart.cudaEventDisableTiming
            self._order_event = cuda.check(self._cudart.cudaEventCreateWithFlags(flags), "cudaEventCreateWithFlags")
        cuda.check(self._cudart.cudaEventRecord(self._order_event, stream), "cudaEventRecord")
        self._pending_stream = stream

    # -- running ---------------------------------------------------------------------------
    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = [feeds[spec.name] for spec in self.inputs]
        if self.fallback is not None and self.fallback.outside({s.name: a.shape for s, a in zip(self.inputs, arrays)}):
            return self.fallback.infer({s.name: a for s, a in zip(self.inputs, arrays)})
        key = tuple(a.shape for a in arrays)
        self._order_after_pending(self._stream.handle)
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
        """Run the engine: plain after a shape switch, then through a captured CUDA graph (GraphCache)."""
        self._graphs.run(key, lambda: self._enqueue(stream))

    def _enqueue(self, stream: int) -> None:
        if not self._context.execute_async_v3(stream):
            raise cuda.CudaError(f"TensorRT execution of {self.path.name} failed (see TensorRT's message above)")

    def _launch(self, entry) -> None:
        cuda.check(self._cudart.cudaGraphLaunch(entry[1], self._stream.handle), "cudaGraphLaunch")

    def _capture(self, key: tuple):
        """Capture ``execute_async_v3`` on the backend's stream as a graph, without running it.

        None when TensorRT (or the driver) refuses: the call then runs plain, and the shape is
        tried again later (GraphCache's back-off). The stream always leaves capture mode, and the
        error capture left behind is cleared so the next CUDA call does not report it.
        """
        cudart, stream = self._cudart, self._stream.handle
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        try:
            cuda.check(cudart.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")
        except cuda.CudaError:
            cudart.cudaGetLastError()
            return None
        ok = False
        try:
            ok = bool(self._context.execute_async_v3(stream))
        finally:
            err, graph = cudart.cudaStreamEndCapture(stream)  # always leave capture mode
        if not ok or int(getattr(err, "value", err)) != 0:
            if graph is not None and cuda.as_int(graph) != 0:
                cudart.cudaGraphDestroy(graph)
            cudart.cudaGetLastError()
            return None
        err, graph_exec = cudart.cudaGraphInstantiate(graph, 0)
        if int(getattr(err, "value", err)) != 0:
            cudart.cudaGraphDestroy(graph)
            cudart.cudaGetLastError()
            return None
        return graph, graph_exec

    @property
    def graph_stats(self) -> dict[str, int]:
        """How calls ran so far: plain, captured, replayed, capture_failed, dropped."""
        return self._graphs.stats.to_dict()

    def infer_device(
        self, inputs: Mapping[str, Any], outputs: Mapping[str, Any] | None = None, stream: Any = None
    ) -> dict[str, "cuda.DeviceArray"]:
        """Zero-copy: run on device memory another library owns, enqueued on the caller's stream.

        ``inputs``/``outputs`` map tensor names to torch CUDA tensors, cupy/numba/pycuda arrays
        (anything with ``__cuda_array_interface__``) or :class:`cuda.DeviceArray`. Without
        ``outputs`` the backend's own device buffers are used (valid until the next call).
        ``stream``: an int handle or a torch/cupy/pycuda stream; None is the default stream
        (handle 0), where torch and cupy put work unless told otherwise. The work goes on exactly
        that stream and nothing is synchronized: the caller orders later work on the same stream.
        """
        handle = cuda.stream_handle(stream)
        arrays = {name: cuda.DeviceArray.from_object(value) for name, value in inputs.items()}
        check_feeds(self.inputs, arrays)
        for spec in self.inputs:
            array = arrays[spec.name]
            check_shape(self.profile, spec.name, array.shape)
        self._order_after_pending(handle)
        for spec in self.inputs:
            array = arrays[spec.name]
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
                    self._graphs.drop_all()
                    self._key = None
                array = cuda.DeviceArray(buffer.ptr, dims, spec.dtype)
            self._context.set_tensor_address(spec.name, array.ptr)
            result[spec.name] = array
        self._addresses_dirty = True  # infer() must point the context back at its own buffers
        self._graphs.switched()
        if not self._context.execute_async_v3(handle):
            raise cuda.CudaError(f"TensorRT execution of {self.path.name} failed (see TensorRT's message above)")
        self._mark_pending(handle)
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

    def close(self) -> None:
        if getattr(self, "_context", None) is None:
            return
        if self._pending_stream is not None:
            cuda.check(self._cudart.cudaStreamSynchronize(self._pending_stream), "cudaStreamSynchronize")
        self._stream.synchronize()
        self._graphs.close()
        if self._order_event is not None:
            self._cudart.cudaEventDestroy(self._order_event)
            self._order_event = None
        if self._timer:
            self._timer.close()
        for buffer in (*self._device_buffers.values(), *self._host_buffers.values()):
            buffer.close()
        self._host_views.clear()
        self._stream.close()
        self._context = None
        self._engine = None
        self._loaded.release()
        if self.fallback is not None:
            self.fallback.close()

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
        backend = cls(engine, make_options(TensorrtOptions, options, cls.name, precision="auto", warmup=0))
        if options.fallback:
            backend.fallback = ProfileFallback(backend.profile, lambda: _open_onnxruntime(onnx_path, options),
                                               os.fspath(onnx_path))
        if options.warmup > 0:
            backend.warmup_seconds = backend._warm_up(options.warmup, options.warmup_shape)
        return backend


def _open_onnxruntime(onnx_path, options: TensorrtOptions) -> Backend:
    """The fallback for feeds outside the profile: ONNX Runtime on the same file (CUDA EP where it starts)."""
    providers = ["cuda"] if CUDA_EP in usable_providers() else ["cpu"]
    return OnnxRuntimeBackend(onnx_path, threads=options.threads, device=options.device, warmup=0, providers=providers)


__all__ = ["TensorrtBackend"]
