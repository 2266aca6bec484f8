"""``DeviceArray`` and ``stream_handle`` on real torch and cupy objects, default and side streams (GPU).

What zero-copy calls (``infer_device``, ``Stylizer.stylize_device``) rely on: the pointer,
shape and dtype read from another library's array are that array's, a stream object gives
the handle that library enqueues on (0 for the default stream), and a DeviceArray goes back
into torch/cupy without a copy.
"""

from __future__ import annotations

import numpy as np
import pytest

from stylize_rt.gpu import cuda

pytestmark = pytest.mark.gpu


@pytest.fixture
def torch():
    import torch

    return torch


@pytest.fixture
def cupy():
    return pytest.importorskip("cupy", reason="cupy is not installed (pip install cupy-cuda12x or cupy-cuda13x)")


def test_torch_tensors_and_streams(torch, cudart):
    x = torch.arange(2 * 5 * 7 * 3, dtype=torch.uint8, device="cuda").reshape(2, 5, 7, 3)
    a = cuda.DeviceArray.from_object(x)
    assert (a.ptr, a.shape, a.dtype) == (x.data_ptr(), (2, 5, 7, 3), np.dtype(np.uint8))
    assert cuda.stream_handle(torch.cuda.default_stream()) == 0
    side = torch.cuda.Stream()
    assert cuda.stream_handle(side) == side.cuda_stream != 0
    back = torch.as_tensor(a, device="cuda")  # our __cuda_array_interface__: the same memory
    assert back.data_ptr() == x.data_ptr() and torch.equal(back, x)
    with pytest.raises(ValueError, match="not C-contiguous"):
        cuda.DeviceArray.from_object(x.permute(0, 3, 1, 2))


def test_copies_on_a_torch_side_stream_land_in_order(torch, cudart):
    """Our memcpy on torch's side stream, then torch work on the same stream: ordered by the stream alone."""
    side = torch.cuda.Stream()
    src = torch.randint(0, 255, (1, 64, 96, 3), dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    torch.cuda.synchronize()
    with torch.cuda.stream(side):
        cuda.memcpy_async(dst.data_ptr(), src.data_ptr(), src.numel(), "d2d", cuda.stream_handle(side))
        doubled = dst.to(torch.int16) * 2
    side.synchronize()
    assert torch.equal(doubled, src.to(torch.int16) * 2)


def test_cupy_arrays_and_streams(cupy, cudart):
    x = cupy.arange(4 * 6 * 3, dtype=cupy.float32).reshape(4, 6, 3)
    a = cuda.DeviceArray.from_object(x)
    assert (a.ptr, a.shape, a.dtype) == (x.data.ptr, (4, 6, 3), np.dtype(np.float32))
    assert cuda.stream_handle(cupy.cuda.Stream.null) == 0
    side = cupy.cuda.Stream(non_blocking=True)
    assert cuda.stream_handle(side) == side.ptr != 0
    back = cupy.asarray(a)
    assert back.data.ptr == x.data.ptr and bool((back == x).all())
    with side:
        y = x * 2
    side.synchronize()
    assert float(y.sum()) == float(x.sum()) * 2


def test_torch_and_cupy_share_memory_both_ways(torch, cupy, cudart):
    t = torch.zeros((3, 3), dtype=torch.float32, device="cuda")
    c = cupy.asarray(cuda.DeviceArray.from_object(t))
    c += 1
    cupy.cuda.Stream.null.synchronize()
    assert float(t.sum()) == 9.0
    back = torch.as_tensor(cuda.DeviceArray.from_object(c), device="cuda")
    assert back.data_ptr() == t.data_ptr()
