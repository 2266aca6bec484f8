"""ONNX Runtime: which providers really run, explicit ones never fall back silently, TensorRT EP profiles.

Real ONNX Runtime sessions on the CPU. Where a GPU provider's behaviour is needed, ORT's own
silent fallback is reproduced by a stand-in ``InferenceSession`` that drops the GPU providers it
is given, as ORT does when the CUDA or TensorRT libraries are missing.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnxruntime
import pytest

from stylize_rt.contract import TensorSpec
from stylize_rt.engines.shapes import InputInfo, resolve_profile
from stylize_rt.errors import BadInputError, MissingDependencyError
from stylize_rt.runtime.backends import onnxruntime as ort_backend
from stylize_rt.runtime.backends.onnxruntime import (
    CPU_EP,
    CUDA_EP,
    TENSORRT_EP,
    OnnxRuntimeBackend,
    probe_model,
    trt_ep_warmup_shape,
)
from stylize_rt.runtime.backends.options import OnnxRuntimeOptions
from stylize_rt.runtime.backends.tensorrt import ProfileFallback

NHWC = InputInfo("input", "uint8", (None, None, None, 3))
SPEC = TensorSpec("input", np.dtype(np.uint8), (None, None, None, 3))


def test_probe_model_is_a_valid_one_node_graph():
    onnx = pytest.importorskip("onnx")
    onnx.checker.check_model(onnx.load_from_string(probe_model()))
    session = onnxruntime.InferenceSession(probe_model(), providers=[CPU_EP])
    (y,) = session.run(None, {"x": np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)})
    assert y.tolist() == [[0.0, 2.0, 0.0, 4.0]]


def test_tensorrt_ep_profile_holds_the_warm_up(tiny_onnx):
    """The EP gets explicit profiles and never rebuilds: the default must hold the 256x256 warm-up."""
    ep = ort_backend.tensorrt_ep_options(tiny_onnx["uint8_nhwc"], OnnxRuntimeOptions(cache_dir=None))
    assert ep["trt_profile_min_shapes"] == "input:1x16x16x3"
    assert ep["trt_profile_opt_shapes"] == "input:1x720x1280x3"
    assert ep["trt_profile_max_shapes"] == "input:1x1920x1920x3"
    profile = ort_backend.tensorrt_ep_profile(tiny_onnx["uint8_nhwc"], OnnxRuntimeOptions())
    assert trt_ep_warmup_shape(SPEC, profile, 256, 256) == (1, 256, 256, 3)
    small = ort_backend.tensorrt_ep_profile(
        tiny_onnx["uint8_nhwc"], OnnxRuntimeOptions(min_shape="16x16", opt_shape="64x64", max_shape="128x128",
                                                    batch="1:2:3"))
    assert small["input"].min == (1, 16, 16, 3) and small["input"].max == (3, 128, 128, 3)
    assert trt_ep_warmup_shape(SPEC, small, 256, 256) == (2, 64, 64, 3), "outside: warm up at opt instead"
    fixed = ort_backend.tensorrt_ep_profile(tiny_onnx["uint8_nhwc"], OnnxRuntimeOptions(shapes=("64x64",)))
    assert trt_ep_warmup_shape(SPEC, fixed, 256, 256) == (1, 64, 64, 3)


def test_feeds_outside_the_tensorrt_ep_profile_are_refused_first(tiny_onnx, frames):
    be = OnnxRuntimeBackend(tiny_onnx["uint8_nhwc"], providers=["cpu"], threads=1, warmup=0)
    be.trt_profile = resolve_profile([NHWC], ["64x64"])  # as if the TensorRT EP had taken the session
    with pytest.raises(BadInputError, match="outside the engine's profile"):
        be.infer({"input": frames[:1]})
    assert be.infer({"input": np.zeros((1, 64, 64, 3), np.uint8)})["output"].shape == (1, 64, 64, 3)
    be.close()


class SilentFallbackSession(onnxruntime.InferenceSession):
    """ORT without the CUDA/TensorRT libraries: GPU providers are dropped, the session runs on the CPU."""

    def __init__(self, model, sess_options=None, providers=None, **kw):
        kept = [p for p in providers if (p[0] if isinstance(p, tuple) else p) not in (TENSORRT_EP, CUDA_EP)]
        super().__init__(model, sess_options, providers=kept or [CPU_EP], **kw)


@pytest.fixture
def gpu_build_without_libraries(monkeypatch, tmp_path):
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [TENSORRT_EP, CUDA_EP, CPU_EP])
    monkeypatch.setattr(onnxruntime, "InferenceSession", SilentFallbackSession)
    return tmp_path


def test_an_explicit_provider_that_does_not_start_is_an_error(tiny_onnx, gpu_build_without_libraries):
    for alias, name in (("cuda", CUDA_EP), ("tensorrt", TENSORRT_EP)):
        with pytest.raises(MissingDependencyError, match=f"could not start {name}.*would run on {CPU_EP}"):
            OnnxRuntimeBackend(tiny_onnx["uint8_nhwc"], providers=[alias], threads=1, warmup=0,
                               cache_dir=str(gpu_build_without_libraries))


def test_auto_says_where_it_runs(tiny_onnx, gpu_build_without_libraries, capsys):
    be = OnnxRuntimeBackend(tiny_onnx["uint8_nhwc"], threads=1, warmup=0, cache_dir=str(gpu_build_without_libraries))
    assert be.providers[0] == CPU_EP and not be.on_gpu and be.trt_profile is None
    assert f"could not start {TENSORRT_EP}" in capsys.readouterr().err
    be.close()


def test_provider_report_names_the_problems(monkeypatch):
    monkeypatch.setattr(ort_backend, "installed_distributions", lambda: ["onnxruntime 1.32.0", "onnxruntime-gpu 1.31.1"])
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [TENSORRT_EP, CUDA_EP, CPU_EP])
    monkeypatch.setattr(ort_backend, "usable_providers", lambda device=0: (CUDA_EP, CPU_EP))
    report = ort_backend.provider_report()
    assert report["usable"] == [CUDA_EP, CPU_EP] and report["listed"][0] == TENSORRT_EP
    problems = " | ".join(report["problems"])
    assert "installed over each other" in problems and "pip uninstall -y onnxruntime onnxruntime-gpu" in problems
    assert f"{TENSORRT_EP} is in this build but does not start" in problems and "libnvinfer" in problems
    lines = ort_backend.describe_providers(report)
    assert lines[0].endswith(f"providers that start here: {CUDA_EP}, {CPU_EP}") and len(lines) == 3


def test_usable_providers_probe_this_build():
    assert CPU_EP in ort_backend.usable_providers()
    assert "AzureExecutionProvider" not in ort_backend.usable_providers()


def test_models_command_lists_the_providers_that_start():
    result = subprocess.run([sys.executable, "-m", "stylize_rt", "models"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    line = [x for x in result.stdout.splitlines() if x.startswith("ONNX Runtime")]
    assert line and "providers that start here:" in line[0] and CPU_EP in line[0]


def test_feeds_outside_an_engine_profile_fall_back_with_one_note(tiny_onnx, frames, capsys):
    """What ``auto`` does on a TensorRT machine for a frame outside the default profile (ORT CPU here)."""
    reference = OnnxRuntimeBackend(tiny_onnx["uint8_nhwc"], providers=["cpu"], threads=1, warmup=0)
    fallback = ProfileFallback(resolve_profile([NHWC], min_shape="64x64", max_shape="128x128"),
                               lambda: OnnxRuntimeBackend(tiny_onnx["uint8_nhwc"], providers=["cpu"], threads=1,
                                                          warmup=0), "tiny.onnx")
    assert not fallback.outside({"input": (1, 100, 100, 3)})
    assert fallback.outside({"input": frames.shape}) and fallback.outside({"input": (1, 256, 64, 3)})
    for _ in range(3):
        got = fallback.infer({"input": frames})["output"]
        assert np.array_equal(got, reference.infer({"input": frames})["output"])
    err = capsys.readouterr().err
    assert err.count("note:") == 1 and "3x41x57x3 is outside the TensorRT engine's profile" in err
    assert "onnxruntime (CPUExecutionProvider)" in err and "--min 3x41x57x3" in err
    fallback.infer({"input": np.zeros((1, 200, 80, 3), np.uint8)})
    assert "--max 1x200x80x3" in capsys.readouterr().err
    fallback.close()
    reference.close()


def test_bench_records_and_prints_the_providers_that_start(tiny_onnx, tmp_path):
    from stylize_rt.benchmarks import report

    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "stylize_rt", "bench", "--engine", str(tiny_onnx["uint8_nhwc"]),
                           "--backends", "onnxruntime", "--precision", "fp32", "--sizes", "32", "--iters", "2",
                           "--warmup", "0", "--threads", "1", "--no-peak", "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    env = report.load_document(out)["environment"]
    assert CPU_EP in env["onnxruntime"]["usable"] and env["onnxruntime"]["distributions"]
    assert "gpu_state" in env and "gpu_state_end" in env
    assert any(line.startswith("ONNX Runtime") and "providers that start here" in line
               for line in proc.stdout.splitlines())
