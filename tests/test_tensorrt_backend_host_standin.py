"""``TensorrtBackend``'s host logic on the CPU: a stand-in cudart whose "device" memory is host memory.

What this checks is plumbing, in CI, where no GPU ever is: which stream each call is enqueued
on (the caller's for ``infer_device``, the default stream included, the backend's own for
``infer``), that the backend's stream waits for work left on a caller's stream, plain run ->
capture -> replay with fresh inputs, buffer growth dropping graphs, and a failed capture being
retried. The stand-in cudart runs "kernels" captured into a "graph" as Python closures; CUDA's
own behaviour is the GPU stand-in's business (test_tensorrt_backend_standin.py, ``make gpu-check``).
"""

from __future__ import annotations

import ctypes
import types
from pathlib import Path

import numpy as np
import pytest

from stylize_rt.contract import TensorSpec
from stylize_rt.engines.load import LoadedEngine
from stylize_rt.engines.shapes import InputInfo, resolve_profile
from stylize_rt.gpu import cuda

PROFILE = resolve_profile([InputInfo("input", "uint8", (None, None, None, 3))], min_shape="16x16",
                          opt_shape="64x64", max_shape="256x256", batch="1:1:4")
OK = 0


class StandInHostCudart:
    """cuda-python's runtime calls the backend makes, on host memory; captures record closures."""

    cudaEventDisableTiming = 2

    class cudaStreamCaptureMode:  # cuda-python's name
        cudaStreamCaptureModeThreadLocal = 1

    class cudaMemcpyKind:  # cuda-python's name
        cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice = 1, 2, 3

    def __init__(self) -> None:
        self.memory, self.capturing, self.log, self.next = {}, {}, [], 100

    def _handle(self):
        self.next += 1
        return self.next

    def cudaStreamCreate(self):  # cuda-python's names from here on
        return OK, self._handle()

    def cudaStreamSynchronize(self, stream):
        return (OK,)

    def cudaStreamDestroy(self, stream):
        return (OK,)

    def cudaMalloc(self, nbytes):
        buffer = ctypes.create_string_buffer(nbytes)
        self.memory[ctypes.addressof(buffer)] = buffer
        return OK, ctypes.addressof(buffer)

    cudaMallocHost = cudaMalloc

    def cudaFree(self, ptr):
        self.memory.pop(ptr, None)
        return (OK,)

    cudaFreeHost = cudaFree

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        assert stream not in self.capturing, "a copy inside a captured graph"
        ctypes.memmove(dst, src, nbytes)
        return (OK,)

    def cudaEventCreate(self):
        return OK, self._handle()

    def cudaEventCreateWithFlags(self, flags):
        return OK, self._handle()

    def cudaEventRecord(self, event, stream):
        self.log.append(("record", stream))
        return (OK,)

    def cudaEventSynchronize(self, event):
        return (OK,)

    def cudaEventElapsedTime(self, a, b):
        return OK, 0.25

    def cudaEventDestroy(self, event):
        return (OK,)

    def cudaStreamWaitEvent(self, stream, event, flags):
        self.log.append(("wait", stream))
        return (OK,)

    def cudaStreamBeginCapture(self, stream, mode):
        self.capturing[stream] = []
        return (OK,)

    def cudaStreamEndCapture(self, stream):
        return OK, types.SimpleNamespace(kernels=self.capturing.pop(stream), getPtr=lambda: 1)

    def cudaGraphInstantiate(self, graph, flags):
        return OK, graph.kernels

    def cudaGraphLaunch(self, kernels, stream):
        for kernel in kernels:
            kernel()
        self.log.append(("launch", stream))
        return (OK,)

    def cudaGraphDestroy(self, graph):
        return (OK,)

    cudaGraphExecDestroy = cudaGraphDestroy

    def cudaGetLastError(self):
        return (OK,)


class StandInHostContext:
    """An execution context whose engine inverts uint8 pixels (a "kernel" run now, or captured)."""

    def __init__(self, cudart: StandInHostCudart) -> None:
        self.cudart, self.shapes, self.addresses, self.calls, self.fail_captures = cudart, {}, {}, [], 0

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        return self.shapes["input"]

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, stream):
        capturing = stream in self.cudart.capturing
        self.calls.append((stream, capturing))
        if capturing and self.fail_captures:
            self.fail_captures -= 1
            return False
        count, src, dst = int(np.prod(self.shapes["input"])), self.addresses["input"], self.addresses["output"]

        def kernel():
            x = np.frombuffer((ctypes.c_ubyte * count).from_address(src), np.uint8)
            np.frombuffer((ctypes.c_ubyte * count).from_address(dst), np.uint8)[:] = 255 - x

        (self.cudart.capturing[stream].append if capturing else lambda k: k())(kernel)
        return True


@pytest.fixture
def backend(monkeypatch):
    from stylize_rt.runtime.backends.tensorrt import TensorrtBackend

    cudart = StandInHostCudart()
    monkeypatch.setattr(cuda, "import_cudart", lambda: cudart)
    context = StandInHostContext(cudart)
    spec = (None, None, None, 3)
    engine = types.SimpleNamespace(create_execution_context=lambda: context)
    loaded = LoadedEngine(Path("standin.plan"), None, engine, (), [TensorSpec("input", np.dtype(np.uint8), spec)],
                          [TensorSpec("output", np.dtype(np.uint8), spec)], PROFILE)
    be = TensorrtBackend(loaded, timing=True)
    be.standin = (cudart, context)
    yield be
    be.close()


def check(be, shape, seed):
    x = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    assert np.array_equal(be.infer({"input": x})["output"], 255 - x), shape


def device_array(a: np.ndarray) -> cuda.DeviceArray:
    return cuda.DeviceArray(a.ctypes.data, a.shape, a.dtype)


def test_plain_capture_replay_and_growth(backend):
    cudart, ctx = backend.standin
    own = ctx.calls[0][0]
    assert ctx.calls == [(own, False), (own, True)], "warm-up: plain, then captured"
    for seed in range(3):
        check(backend, (1, 64, 64, 3), seed)
    assert len(ctx.calls) == 2 and backend.graph_stats["replayed"] == 3
    check(backend, (2, 128, 128, 3), 5)  # larger: buffers move, graphs go
    assert backend.graph_stats["dropped"] == 1
    check(backend, (2, 128, 128, 3), 6)
    check(backend, (1, 64, 64, 3), 7)  # switched back: no graph left for it, runs plain
    assert ctx.calls[-1] == (own, False)
    assert set(backend.last_timings) == {"h2d_ms", "compute_ms", "d2h_ms"}


def test_failed_capture_is_retried(backend):
    cudart, ctx = backend.standin
    ctx.fail_captures = 1
    for seed in range(2 + 16 + 1):
        check(backend, (3, 32, 40, 3), seed)
    stats = backend.graph_stats
    assert stats["capture_failed"] == 1 and stats["captured"] == 2, stats


def test_infer_device_runs_on_the_callers_stream_and_orders_the_next_call(backend):
    cudart, ctx = backend.standin
    own = ctx.calls[0][0]
    x = np.random.default_rng(1).integers(0, 256, (1, 32, 48, 3), dtype=np.uint8)
    y = np.zeros_like(x)
    backend.infer_device({"input": device_array(x)}, {"output": device_array(y)}, stream=777)
    assert ctx.calls[-1] == (777, False) and np.array_equal(y, 255 - x)
    backend.infer_device({"input": device_array(x)}, {"output": device_array(y)})  # None: the default stream
    assert ctx.calls[-1] == (0, False), "the caller's default stream, never swapped for the backend's"
    assert ("wait", 0) in cudart.log, "work on stream 777 is waited for before the default stream's"
    cudart.log.clear()
    check(backend, (1, 64, 64, 3), 2)
    assert cudart.log[0] == ("wait", own), "infer waits for what infer_device left on the default stream"
