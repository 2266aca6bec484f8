"""``TensorrtBackend``'s host-side logic on a real GPU, through a stand-in engine (no TensorRT needed).

The stand-in is an ``ICudaEngine``/``IExecutionContext`` as far as the backend uses them; its
``execute_async_v3(stream)`` launches a real cupy kernel (``out = 255 - in``) on exactly the
stream it is handed. So pinned staging, H2D/D2H on the backend's stream, plain run ->
graph capture -> replay, buffer growth dropping graphs, shape switches, a failed capture and
its retry, ``infer_device`` on the caller's stream, event timings and
``Stylizer.stylize_device`` all run for real, and wrong results, wrong streams or a replay
of a stale graph show up as wrong pixels. It lives here, named as a stand-in, and is never
importable from the package. Needs cupy, cuda-python and a GPU; skipped with the reason elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stylize_rt.contract import TensorSpec
from stylize_rt.engines.load import LoadedEngine
from stylize_rt.engines.shapes import InputInfo, resolve_profile
from stylize_rt.errors import BadInputError, MissingDependencyError
from stylize_rt.gpu import cuda

pytestmark = pytest.mark.gpu

NHWC = InputInfo("input", "uint8", (None, None, None, 3))
PROFILE = resolve_profile([NHWC], min_shape="16x16", opt_shape="64x64", max_shape="256x256", batch="1:1:4")
CAPTURING = 1  # cudaStreamCaptureStatusActive


@pytest.fixture(scope="module")
def cupy():
    cp = pytest.importorskip("cupy", reason="cupy is not installed (the stand-in engine's kernels are cupy's)")
    try:
        cuda.import_cudart()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    return cp


class StandInExecutionContext:
    """``IExecutionContext`` as TensorrtBackend uses it; every enqueue is recorded with its stream."""

    def __init__(self, cupy) -> None:
        self.cp = cupy
        self.kernel = cupy.ElementwiseKernel("uint8 x", "uint8 y", "y = 255 - x", "standin_engine_invert")
        self.shapes: dict[str, tuple] = {}
        self.addresses: dict[str, int] = {}
        self.calls: list[tuple[int, bool]] = []  # (stream, captured?)
        self.fail_captures = 0  # captures that return False, as TensorRT does for what it cannot capture

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(int(d) for d in shape)
        return True

    def get_tensor_shape(self, name):
        return self.shapes["input"]

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = int(ptr)
        return True

    def _view(self, name):
        cp, shape = self.cp, self.shapes["input"]
        nbytes = int(np.prod(shape))
        memory = cp.cuda.UnownedMemory(self.addresses[name], nbytes, self)
        return cp.ndarray(shape, cp.uint8, memptr=cp.cuda.MemoryPointer(memory, 0))

    def execute_async_v3(self, stream):
        capturing = self.cp.cuda.runtime.streamIsCapturing(stream) == CAPTURING
        self.calls.append((int(stream), capturing))
        if capturing and self.fail_captures:
            self.fail_captures -= 1
            return False
        with self.cp.cuda.ExternalStream(int(stream)):
            self.kernel(self._view("input"), self._view("output"))
        return True


class StandInEngine:
    """``ICudaEngine``: makes the context above."""

    def __init__(self, cupy) -> None:
        self.context = StandInExecutionContext(cupy)

    def create_execution_context(self):
        return self.context


def standin_loaded(cupy) -> LoadedEngine:
    spec = (None, None, None, 3)
    return LoadedEngine(Path("standin.plan"), None, StandInEngine(cupy), (),
                        [TensorSpec("input", np.dtype(np.uint8), spec)], [TensorSpec("output", np.dtype(np.uint8), spec)],
                        PROFILE)


def frames(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def backend(cupy):
    from stylize_rt.runtime.backends.tensorrt import TensorrtBackend

    loaded = standin_loaded(cupy)
    be = TensorrtBackend(loaded, timing=True)
    be.standin = loaded.engine.context
    yield be
    be.close()


def check(be, shape, seed):
    x = frames(shape, seed)
    got = be.infer({"input": x})["output"]
    assert np.array_equal(got, 255 - x), f"wrong pixels at {shape}"


def test_warm_up_runs_plain_then_captures_then_replays(backend):
    ctx = backend.standin
    assert backend.warmup_seconds > 0
    assert ctx.calls == [(ctx.calls[0][0], False), (ctx.calls[0][0], True)], "warm-up: one plain run, then a capture"
    before = len(ctx.calls)
    for seed in range(5):  # replays read each new input: a stale graph would repeat old pixels
        check(backend, (1, 64, 64, 3), seed)
    assert len(ctx.calls) == before, "replays never call execute_async_v3"
    assert backend.graph_stats["replayed"] == 5 and backend.graph_stats["captured"] == 1
    assert set(backend.last_timings) == {"h2d_ms", "compute_ms", "d2h_ms"}
    assert all(v >= 0 for v in backend.last_timings.values())


def test_growth_drops_graphs_and_shape_switches_run_plain_first(backend):
    ctx = backend.standin
    check(backend, (2, 128, 160, 3), 1)  # larger: the buffers move, every graph goes
    assert backend.graph_stats["dropped"] >= 1
    check(backend, (2, 128, 160, 3), 2)  # plain already ran at this shape: capture now
    assert ctx.calls[-1][1] is True
    outcomes = []
    for i, shape in enumerate([(1, 64, 64, 3), (2, 128, 160, 3), (1, 64, 64, 3), (2, 128, 160, 3)]):
        n = len(ctx.calls)
        check(backend, shape, 10 + i)
        outcomes.append(ctx.calls[n:])
    # 64x64 has no graph (dropped) and after each switch runs plain; 128x160's graph replays
    assert outcomes[0] == [(outcomes[0][0][0], False)] and outcomes[1] == []
    assert outcomes[2] == [(outcomes[0][0][0], False)] and outcomes[3] == []
    check(backend, (1, 64, 64, 3), 20)
    check(backend, (1, 64, 64, 3), 21)  # plain just before, same shape: captured now
    assert ctx.calls[-1][1] is True


def test_a_failed_capture_runs_plain_and_is_retried(backend):
    ctx = backend.standin
    ctx.fail_captures = 1
    shape = (3, 40, 56, 3)
    check(backend, shape, 0)  # plain
    check(backend, shape, 1)  # capture fails: the call still runs, plain
    assert backend.graph_stats["capture_failed"] == 1
    for seed in range(2, 200):
        check(backend, shape, seed)
        if backend.graph_stats["captured"] >= 2:  # the warm-up's, and this shape's retry
            break
    else:
        pytest.fail("the failed shape was never captured again")
    assert ctx.calls[-1][1] is True
    check(backend, shape, 999)


def test_outside_the_profile_and_wrong_dtype_are_refused(backend):
    with pytest.raises(BadInputError, match="outside the engine's profile"):
        backend.infer({"input": np.zeros((1, 300, 300, 3), np.uint8)})
    with pytest.raises(BadInputError, match="must be a uint8"):
        backend.infer({"input": np.zeros((1, 32, 32, 3), np.float32)})


def test_infer_device_runs_on_the_callers_stream(backend, cupy):
    import torch

    ctx = backend.standin
    x = cupy.asarray(frames((1, 48, 80, 3), 3))
    cupy.cuda.Stream.null.synchronize()  # the upload is on the default stream; the side stream must not race it
    for stream in (cupy.cuda.Stream(non_blocking=True), None):
        handle = stream.ptr if stream is not None else 0
        y = cupy.empty_like(x)
        backend.infer_device({"input": x}, {"output": y}, stream=stream)
        assert ctx.calls[-1] == (handle, False), "enqueued on the caller's stream, default stream included"
        (stream or cupy.cuda.Stream.null).synchronize()
        assert bool((y == 255 - x).all())
    side = torch.cuda.Stream()
    t = torch.from_numpy(frames((2, 32, 32, 3), 4)).cuda()
    side.wait_stream(torch.cuda.current_stream())
    out = backend.infer_device({"input": t}, stream=side)["output"]
    assert ctx.calls[-1] == (side.cuda_stream, False)
    side.synchronize()
    got = torch.as_tensor(out, device="cuda")
    assert torch.equal(got, 255 - t)
    check(backend, (1, 64, 64, 3), 5)  # the host path points the context back at its own buffers


def test_stylize_device_end_to_end_on_torch_and_cupy(backend, cupy):
    import torch

    from stylize_rt.runtime.stylizer import Stylizer

    stylizer = Stylizer(backend)
    host = frames((1, 36, 52, 3), 6)
    assert np.array_equal(stylizer.stylize_batch(host), 255 - host)
    x = torch.from_numpy(host).cuda()
    y = torch.empty_like(x)
    stream = torch.cuda.current_stream()
    stylizer.stylize_device(x, out=y, stream=stream)
    stream.synchronize()
    assert torch.equal(y, 255 - x)
    c = cupy.asarray(host)
    out = stylizer.stylize_device(c, stream=cupy.cuda.Stream.null)
    cupy.cuda.Stream.null.synchronize()
    assert np.array_equal(cupy.asnumpy(cupy.asarray(out)), 255 - host)
