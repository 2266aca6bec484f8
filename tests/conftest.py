"""Shared fixtures and hardware gates for the test suite.

gpu / tensorrt tests skip with a reason where the hardware or package is absent.
Fixtures make tiny models here, in the test's temp dir: nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest


def _cuda_reason() -> str | None:
    try:
        import torch

        if torch.cuda.is_available():
            return None
    except ImportError:
        pass
    if shutil.which("nvidia-smi") is None:
        return "no CUDA GPU on this machine"
    return "no CUDA-enabled torch on this machine"


def _tensorrt_reason() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "tensorrt is not installed (pip install 'stylize-rt[gpu]' on an NVIDIA machine)"
    from stylize_rt.gpu.cuda import gpu_count

    if gpu_count() == 0:
        return "no CUDA GPU visible to cuda-python (pip install 'stylize-rt[gpu]'; NVIDIA driver)"
    return None


def pytest_collection_modifyitems(config, items):
    gpu_reason, trt_reason = _cuda_reason(), _tensorrt_reason()
    for item in items:
        # Markers, not keywords: keywords also hold directory names (a checkout in .../gpu/ is not a GPU).
        if item.get_closest_marker("gpu") and gpu_reason:
            item.add_marker(pytest.mark.skip(reason=gpu_reason))
        if item.get_closest_marker("tensorrt") and trt_reason:
            item.add_marker(pytest.mark.skip(reason=trt_reason))


@pytest.fixture
def cudart():
    """cuda-python's runtime module; the test skips with the reason where it cannot be imported."""
    from stylize_rt.errors import MissingDependencyError
    from stylize_rt.gpu.cuda import import_cudart

    try:
        return import_cudart()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


# The default layout (unshuffle stem, reflect padding) at toy width; tests of the conv stem say so.
TINY_CONFIG = {"channels": [4, 8, 8], "res_blocks": 1, "stem_kernel": 3, "stem": "unshuffle", "padding": "reflect"}


@pytest.fixture(scope="session")
def tiny_generator():
    """A small random-weight generator (torch), fixed seed."""
    torch = pytest.importorskip("torch")
    from stylize_rt.nets.generator import Generator, GeneratorConfig

    torch.manual_seed(0)
    return Generator(GeneratorConfig.from_dict(TINY_CONFIG)).eval()


@pytest.fixture(scope="session")
def tiny_onnx(tiny_generator, tmp_path_factory):
    """Paths of the tiny generator exported as ONNX, keyed by IO layout."""
    from stylize_rt.export.onnx_export import export_generator

    root = tmp_path_factory.mktemp("tiny_onnx")
    return {
        layout: export_generator(tiny_generator, root / f"tiny_{layout}.onnx", io_layout=layout)
        for layout in ("uint8_nhwc", "float32_nchw")
    }


@pytest.fixture
def frames() -> np.ndarray:
    """Real-looking RGB frames (gradients + shapes + noise, not zeros), uint8 NHWC, odd size."""
    rng = np.random.default_rng(0)
    h, w = 41, 57
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((3, h, w, 3), np.uint8)
    for i in range(3):
        base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy + 20 * i) % 256], axis=-1)
        base[(yy - 20) ** 2 + (xx - 15 - 5 * i) ** 2 < 64] = (220, 40, 40)
        out[i] = np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
    return out
