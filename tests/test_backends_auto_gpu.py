"""What ``auto`` opens on GPU machines (with and without TensorRT), decided on this CPU machine.

The machine's answers (TensorRT usable? torch sees CUDA?) are replaced by fixed ones; the
backend ``auto`` then names, and the options it opens TensorRT with, are what is checked.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from stylize_rt.runtime.backends import registry


@pytest.fixture(scope="module")
def checkpoints(tiny_generator, tiny_onnx, tmp_path_factory):
    from stylize_rt.nets.checkpoint import save_generator

    root = tmp_path_factory.mktemp("auto")
    bare = save_generator(root / "bare", tiny_generator)
    shipped = save_generator(root / "shipped", tiny_generator)
    shutil.copy(tiny_onnx["uint8_nhwc"], shipped / "generator.onnx")
    return bare, shipped


@pytest.fixture
def machine(monkeypatch):
    def set_(tensorrt: bool, torch_cuda: bool):
        monkeypatch.setattr(registry, "tensorrt_available", lambda: tensorrt)
        monkeypatch.setattr(registry, "torch_cuda_available", lambda: torch_cuda)

    return set_


@pytest.mark.parametrize("tensorrt,torch_cuda,shipped_onnx,expected", [
    (True, True, True, "tensorrt"),
    (False, True, True, "torch"),  # the fast GPU path without TensorRT
    (False, False, True, "onnxruntime"),  # CPU: ONNX Runtime beats eager torch
    (True, True, False, "torch"),  # nothing for TensorRT to build from
    (False, False, False, "torch"),
])
def test_auto_on_checkpoints(checkpoints, machine, tensorrt, torch_cuda, shipped_onnx, expected):
    machine(tensorrt, torch_cuda)
    path = checkpoints[1] if shipped_onnx else checkpoints[0]
    assert registry.auto_backend(path, "checkpoint") == expected


def test_auto_on_onnx_files(tiny_onnx, machine):
    machine(True, True)
    assert registry.auto_backend(tiny_onnx["uint8_nhwc"], "onnx") == "tensorrt"
    machine(False, True)
    assert registry.auto_backend(tiny_onnx["uint8_nhwc"], "onnx") == "onnxruntime"


class StandInTensorrtBackend:
    """Records how the registry opens TensorRT (no engine is built)."""

    opened = []

    @classmethod
    def from_onnx(cls, path, options):
        cls.opened.append((path, options))
        return cls()


def test_auto_on_tensorrt_falls_back_for_frames_outside_the_profile(tiny_onnx, checkpoints, machine, monkeypatch):
    machine(True, False)
    monkeypatch.setattr(registry.BackendSpec, "backend_class", lambda self: StandInTensorrtBackend)
    StandInTensorrtBackend.opened.clear()
    registry.open_backend(tiny_onnx["uint8_nhwc"])
    registry.open_backend(checkpoints[1])  # the embedded-model layout: its generator.onnx
    registry.open_backend(tiny_onnx["uint8_nhwc"], "tensorrt")  # asked for by name: refuse, don't reroute
    (p1, auto1), (p2, auto2), (_, named) = StandInTensorrtBackend.opened
    assert auto1.fallback and auto2.fallback and not named.fallback
    assert p2.name == "generator.onnx"


def test_asking_about_torch_cuda_does_not_load_torch_without_a_gpu():
    code = ("import sys\nfrom stylize_rt.runtime.backends.torch_backend import torch_cuda_available\n"
            "from stylize_rt.gpu.devices import nvidia_gpu_present\n"
            "assert nvidia_gpu_present() or (torch_cuda_available() is False and 'torch' not in sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
