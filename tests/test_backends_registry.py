"""Choosing and opening backends; provider resolution; the pure-Python parts of the CUDA helpers."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from stylize_rt.errors import BadInputError, MissingDependencyError
from stylize_rt.gpu.cuda import DeviceArray, stream_handle
from stylize_rt.runtime.backends import OnnxRuntimeBackend, TensorrtBackend, TorchBackend, open_backend
from stylize_rt.runtime.backends.onnxruntime import resolve_providers
from stylize_rt.runtime.backends.registry import available_backends, model_kind
from stylize_rt.runtime.backends.torch_backend import cpu_flags, cpu_has_fast_bf16

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def checkpoint(tiny_generator, tmp_path_factory):
    from stylize_rt.nets.checkpoint import save_generator

    return save_generator(tmp_path_factory.mktemp("ckpt") / "gen", tiny_generator)


def test_auto_picks_by_what_the_file_is(tiny_onnx, checkpoint, tmp_path):
    onnx = tiny_onnx["uint8_nhwc"]
    assert model_kind(onnx) == "onnx" and model_kind(checkpoint) == "checkpoint"
    if not HAS_TENSORRT:
        be = open_backend(onnx, threads=1)
        assert isinstance(be, OnnxRuntimeBackend) and be.providers[-1] == "CPUExecutionProvider"
        assert available_backends(onnx) == ["onnxruntime"]
    be = open_backend(checkpoint, threads=1, warmup=0)
    assert isinstance(be, TorchBackend) and be.name == "torch"
    assert available_backends(checkpoint) == ["torch"]
    assert isinstance(open_backend(onnx, "ort", warmup=0), OnnxRuntimeBackend)


def test_checkpoint_with_onnx_prefers_the_onnx(tiny_generator, tiny_onnx, tmp_path):
    """The embedded models ship generator.onnx beside the weights: auto runs the ONNX, torch stays available."""
    import shutil

    from stylize_rt.nets.checkpoint import save_generator

    ckpt = save_generator(tmp_path / "mosaic", tiny_generator)
    shutil.copy(tiny_onnx["uint8_nhwc"], ckpt / "generator.onnx")
    if not HAS_TENSORRT:
        be = open_backend(ckpt, threads=1, warmup=0)
        assert isinstance(be, OnnxRuntimeBackend) and be.path == ckpt / "generator.onnx"
        assert available_backends(ckpt) == ["onnxruntime", "torch"]
    assert isinstance(open_backend(ckpt, "torch", threads=1, warmup=0), TorchBackend)
    assert isinstance(open_backend(ckpt, "onnxruntime", warmup=0), OnnxRuntimeBackend)


def test_engines_go_to_tensorrt(tmp_path):
    plan = tmp_path / "gen.plan"
    plan.write_bytes(b"\x00" * 64)
    assert model_kind(plan) == "engine" and model_kind(tmp_path / "x.engine") == "engine"
    if HAS_TENSORRT:
        pytest.skip("tensorrt is installed: engines are covered by test_engines_tensorrt")
    with pytest.raises(MissingDependencyError, match="TensorRT is not installed"):
        open_backend(plan)
    with pytest.raises(MissingDependencyError, match="TensorRT is not installed"):
        TensorrtBackend(plan)
    assert available_backends(plan) == []


def test_wrong_files_and_names_are_one_line_errors(tiny_onnx, checkpoint, tmp_path):
    with pytest.raises(BadInputError, match="model not found"):
        open_backend(tmp_path / "nope.onnx")
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(BadInputError, match="cannot tell which backend"):
        open_backend(tmp_path / "model.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="not a generator checkpoint"):
        open_backend(tmp_path / "empty")
    with pytest.raises(BadInputError, match="unknown backend 'tvm'"):
        open_backend(tiny_onnx["uint8_nhwc"], "tvm")
    with pytest.raises(BadInputError, match="runs .onnx files"):
        open_backend(checkpoint, "onnxruntime")
    with pytest.raises(BadInputError, match="checkpoint directories"):
        open_backend(tiny_onnx["uint8_nhwc"], "torch")
    with pytest.raises(BadInputError, match="engine file not found"):
        TensorrtBackend(tmp_path / "missing.plan")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(BadInputError, match="cannot load ONNX model"):
        OnnxRuntimeBackend(corrupt)


def test_provider_resolution():
    gpu_build = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers("auto", gpu_build) == gpu_build
    assert resolve_providers("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == "CUDAExecutionProvider"
    assert resolve_providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert resolve_providers("cuda", gpu_build) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers(["trt", "cuda"], gpu_build) == gpu_build
    with pytest.raises(MissingDependencyError, match="pip install onnxruntime-gpu"):
        resolve_providers("tensorrt", ["CPUExecutionProvider"])
    with pytest.raises(BadInputError):
        resolve_providers(["auto", "cpu"], gpu_build)


def test_torch_backend_option_errors(checkpoint, tmp_path):
    with pytest.raises(BadInputError, match="fp16 runs on CUDA only"):
        TorchBackend(checkpoint, device="cpu", precision="fp16")
    with pytest.raises(BadInputError, match="io_layout"):
        TorchBackend(checkpoint, io_layout="nhwc_float")
    with pytest.raises(BadInputError, match="not a checkpoint"):
        TorchBackend(tmp_path)


def test_cpu_bf16_detection(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n\n")
    assert cpu_flags(str(info)) >= {"avx512f", "avx512_bf16"}
    assert cpu_has_fast_bf16({"amx_bf16"}) and cpu_has_fast_bf16({"avx512_bf16"})
    assert not cpu_has_fast_bf16({"avx512f", "avx2"})
    assert cpu_flags(str(tmp_path / "missing")) == set()


class _CudaArrayLike:
    """What cupy/torch/numba/pycuda arrays expose (__cuda_array_interface__ v3)."""

    def __init__(self, ptr, shape, typestr, strides=None):
        self.__cuda_array_interface__ = {"data": (ptr, False), "shape": shape, "typestr": typestr,
                                         "strides": strides, "version": 3}


def test_device_array_from_foreign_objects():
    a = DeviceArray.from_object(_CudaArrayLike(0x7F0000001000, (1, 720, 1280, 3), "|u1"))
    assert a.ptr == 0x7F0000001000 and a.shape == (1, 720, 1280, 3) and a.dtype == np.uint8
    assert a.nbytes == 720 * 1280 * 3
    f = DeviceArray.from_object(_CudaArrayLike(4096, (2, 3, 4, 5), "<f4", strides=(240, 80, 20, 4)))
    assert f.dtype == np.float32 and f.nbytes == 2 * 3 * 4 * 5 * 4
    with pytest.raises(ValueError, match="not C-contiguous"):
        DeviceArray.from_object(_CudaArrayLike(4096, (2, 3), "<f4", strides=(4, 8)))
    with pytest.raises(TypeError, match="__cuda_array_interface__"):
        DeviceArray.from_object(np.zeros(3))
    assert DeviceArray.from_object(a) is a


def test_stream_handles_from_other_libraries():
    class TorchStream:
        cuda_stream = 0x1234

    class CupyStream:
        ptr = 0x5678

    class PycudaStream:
        handle = 0x9ABC

    assert stream_handle(TorchStream()) == 0x1234
    assert stream_handle(CupyStream()) == 0x5678
    assert stream_handle(PycudaStream()) == 0x9ABC
    assert stream_handle(77) == 77 and stream_handle(None) == 0
    with pytest.raises(TypeError):
        stream_handle("default")


def test_opening_onnx_never_imports_torch_or_tensorrt(tiny_onnx):
    code = (
        "import sys\n"
        "from stylize_rt.runtime.backends import open_backend\n"
        f"be = open_backend({str(tiny_onnx['uint8_nhwc'])!r}, 'onnxruntime', threads=1)\n"
        "assert be.warmup_seconds > 0\n"
        "assert 'torch' not in sys.modules and 'tensorrt' not in sys.modules, 'heavy import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
