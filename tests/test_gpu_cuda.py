"""The CUDA layer (``stylize_rt.gpu.cuda``): why a GPU cannot be used, in words; then the real thing.

The first tests hand ``cuda_status`` a stand-in cudart module that answers as cuda-python does
on a machine whose driver is older than the CUDA runtime cuda-python brings
(``cudaErrorInsufficientDriver``), has no driver, or hides its GPUs: each gets its own
one-line reason instead of "no CUDA GPU is visible". The ``gpu``-marked tests run the layer
on hardware: device info, error names, streams, events, pinned and device buffers, host <->
device round trips, the event timer and buffer growth.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from stylize_rt.errors import MissingDependencyError
from stylize_rt.gpu import cuda


class StandInError(int):
    """cuda-python's ``cudaError_t``: an int with a ``name``."""

    def __new__(cls, value: int, name: str):
        obj = super().__new__(cls, value)
        obj.name = name
        return obj


OK = StandInError(0, "cudaSuccess")


def standin_cudart(count_error=OK, count=0, driver=13000, runtime=13000):
    return types.SimpleNamespace(
        cudaGetDeviceCount=lambda: (count_error, count),
        cudaDriverGetVersion=lambda: (OK, driver),
        cudaRuntimeGetVersion=lambda: (OK, runtime),
    )


@pytest.fixture
def with_cudart(monkeypatch):
    def install(module):
        monkeypatch.setattr(cuda, "import_cudart", lambda: module)

    return install


def test_insufficient_driver_is_named_with_the_fix(with_cudart):
    with_cudart(standin_cudart(StandInError(35, "cudaErrorInsufficientDriver"), driver=12040, runtime=13000))
    status = cuda.cuda_status()
    assert status.count == 0 and status.error == "cudaErrorInsufficientDriver"
    problem = status.problem()
    assert "driver supports CUDA 12.4" in problem and "CUDA 13.0" in problem
    assert "cuda-python>=12,<13" in problem and "no CUDA GPU is visible" not in problem
    with pytest.raises(MissingDependencyError, match="older than the CUDA 13.0"):
        cuda.require_gpu()
    assert cuda.gpu_count() == 0


def test_no_driver_no_device_and_hidden_devices(with_cudart):
    with_cudart(standin_cudart(StandInError(35, "cudaErrorInsufficientDriver"), driver=0))
    assert "no NVIDIA driver is loaded" in cuda.cuda_status().problem()
    with_cudart(standin_cudart(StandInError(100, "cudaErrorNoDevice")))
    assert "reports no device" in cuda.cuda_status().problem()
    with_cudart(standin_cudart(count=0))
    assert "no CUDA GPU is visible" in cuda.cuda_status().problem()
    with_cudart(standin_cudart(count=2))
    assert cuda.cuda_status().problem(1) is None
    assert "device 5 does not exist (2 visible)" in cuda.cuda_status().problem(5)
    with_cudart(standin_cudart(StandInError(3, "cudaErrorInitializationError")))
    assert cuda.cuda_status().problem() == "CUDA cannot start: cudaErrorInitializationError"


def test_without_cuda_python(monkeypatch):
    def missing():
        raise MissingDependencyError("cuda-python is not installed: pip install ...")

    monkeypatch.setattr(cuda, "import_cudart", missing)
    status = cuda.cuda_status()
    assert status.count == 0 and "cuda-python is not installed" in status.problem()


def test_cuda_versions_read_as_people_write_them():
    assert cuda.cuda_version_text(12040) == "12.4" and cuda.cuda_version_text(13000) == "13.0"
    assert cuda.cuda_version_text(None) == "?" and cuda.cuda_version_text(0) == "?"


def test_device_array_speaks_the_cuda_array_interface():
    a = cuda.DeviceArray(0x7F0000001000, (2, 720, 1280, 3), np.dtype(np.uint8))
    interface = a.__cuda_array_interface__
    assert interface["data"] == (0x7F0000001000, False) and interface["typestr"] == "|u1"
    assert interface["version"] == 3 and interface["shape"] == (2, 720, 1280, 3)
    again = cuda.DeviceArray.from_object(types.SimpleNamespace(__cuda_array_interface__=interface))
    assert again == a and again.nbytes == 2 * 720 * 1280 * 3


# -- on hardware -------------------------------------------------------------------------------


@pytest.mark.gpu
def test_status_and_device_info(cudart):
    status = cuda.cuda_status()
    assert status.count >= 1 and status.problem() is None, status
    assert status.driver_cuda >= status.runtime_cuda, "a working runtime needs a driver at least as new"
    name, capability = cuda.gpu_info(0)
    assert name and capability.count(".") == 1 and int(capability.split(".")[0]) >= 5


@pytest.mark.gpu
def test_errors_name_the_failed_call(cudart):
    with pytest.raises(cuda.CudaError, match=r"cudaSetDevice\(9999\) failed: cudaErrorInvalidDevice"):
        cuda.check(cudart.cudaSetDevice(9999), "cudaSetDevice(9999)")
    cudart.cudaGetLastError()  # leave no error behind for the next test
    with pytest.raises(MissingDependencyError, match="device 9999 does not exist"):
        cuda.require_gpu(9999)


@pytest.mark.gpu
def test_buffers_grow_and_round_trip_on_a_stream(cudart):
    stream = cuda.Stream()
    host, back = cuda.PinnedBuffer(), cuda.PinnedBuffer()
    dev_a, dev_b = cuda.DeviceBuffer(), cuda.DeviceBuffer()
    try:
        assert stream.handle != 0
        assert dev_a.ensure(1000) and dev_a.nbytes == 1000 and dev_a.ptr
        assert not dev_a.ensure(400), "a smaller request keeps the buffer"
        assert dev_a.ensure(1 << 20), "a larger one grows it"
        shape = (3, 97, 131, 3)  # odd sizes: no alignment luck
        nbytes = int(np.prod(shape))
        for buffer in (host, back, dev_a, dev_b):
            buffer.ensure(nbytes)
        data = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        np.copyto(host.view(shape, np.uint8), data)
        cuda.memcpy_async(dev_a.ptr, host.ptr, nbytes, "h2d", stream.handle)
        cuda.memcpy_async(dev_b.ptr, dev_a.ptr, nbytes, "d2d", stream.handle)
        cuda.memcpy_async(back.ptr, dev_b.ptr, nbytes, "d2h", stream.handle)
        stream.synchronize()
        assert np.array_equal(back.view(shape, np.uint8), data)
    finally:
        for buffer in (host, back, dev_a, dev_b):
            buffer.close()
        stream.close()
    assert stream.handle == 0 and dev_a.ptr == 0


@pytest.mark.gpu
def test_event_timer_splits_a_call(cudart):
    stream, timer = cuda.Stream(), cuda.EventTimer()
    host, dev = cuda.PinnedBuffer(), cuda.DeviceBuffer()
    try:
        nbytes = 64 << 20
        host.ensure(nbytes)
        dev.ensure(nbytes)
        assert timer.split_ms() == {}, "nothing recorded yet"
        timer.record(0, stream.handle)
        cuda.memcpy_async(dev.ptr, host.ptr, nbytes, "h2d", stream.handle)
        timer.record(1, stream.handle)
        timer.record(2, stream.handle)
        cuda.memcpy_async(host.ptr, dev.ptr, nbytes, "d2h", stream.handle)
        timer.record(3, stream.handle)
        split = timer.split_ms()
        assert set(split) == {"h2d_ms", "compute_ms", "d2h_ms"}
        assert split["h2d_ms"] > 0 and split["d2h_ms"] > 0 and split["compute_ms"] >= 0
        assert split["h2d_ms"] < 1000, "64 MiB over PCIe takes milliseconds, not seconds"
    finally:
        timer.close()
        host.close()
        dev.close()
        stream.close()
