"""Real TensorRT builds and runs (tensorrt + cuda-python + a GPU); skipped with the reason elsewhere.

Run on a GPU machine with ``pytest -m "gpu or tensorrt"`` (see docs/GPU.md). Numeric
agreement of the engines with the CPU reference is in test_backends_parity.py (tensorrt-*).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from stylize_rt.errors import BadInputError

pytestmark = pytest.mark.tensorrt


@pytest.fixture(scope="module")
def built(tiny_onnx, tmp_path_factory):
    from stylize_rt.engines.build import BuildConfig, build_engine

    root = tmp_path_factory.mktemp("trt")
    timing = root / "timing.cache"
    config = BuildConfig(precision="fp32", min_shape="16x16", opt_shape="64x64", max_shape="256x256",
                         batch="1:1:2", timing_cache=str(timing), progress=False)
    engine = root / "gen.plan"
    sidecar = build_engine(tiny_onnx["uint8_nhwc"], engine, config)
    return {"engine": engine, "sidecar": sidecar, "timing": timing, "config": config, "root": root}


def test_build_writes_engine_sidecar_and_timing_cache(built):
    from stylize_rt.engines.sidecar import read_sidecar
    from stylize_rt.gpu.tensorrt import running_environment

    sidecar = read_sidecar(built["engine"])
    assert sidecar == built["sidecar"]
    env = running_environment()
    assert (sidecar.tensorrt_version, sidecar.gpu_name, sidecar.compute_capability) == (
        env.tensorrt_version, env.gpu_name, env.compute_capability)
    assert [t.name for t in sidecar.io] == ["input", "output"] and sidecar.io[0].dtype == "uint8"
    assert sidecar.profiles[0]["input"].max == (2, 256, 256, 3)
    assert sidecar.metadata["stylize_rt.io_layout"] == "uint8_nhwc"
    assert built["timing"].stat().st_size > 0


def test_timing_cache_is_reused_by_a_second_build(built, tiny_onnx):
    from dataclasses import replace

    from stylize_rt.engines.build import build_engine

    again = build_engine(tiny_onnx["uint8_nhwc"], built["root"] / "again.plan", replace(built["config"]))
    assert again.build_seconds <= built["sidecar"].build_seconds * 1.5 + 1.0


def test_backend_runs_odd_sizes_graphs_and_timings(built, frames, tiny_generator):
    import torch

    from stylize_rt.nets.generator import UInt8NHWC
    from stylize_rt.runtime.backends.tensorrt import TensorrtBackend

    with TensorrtBackend(built["engine"], timing=True) as be:
        assert be.warmup_seconds > 0 and be.inputs[0].shape == (None, None, None, 3)
        with torch.inference_mode():
            want = UInt8NHWC(tiny_generator)(torch.from_numpy(frames[:2])).numpy().astype(int)
        for _ in range(3):  # 1st uncaptured, 2nd captured into a CUDA graph, 3rd replayed
            got = be.infer({"input": frames[:2]})["output"].astype(int)
            assert np.mean(np.abs(got - want) <= 1) >= 0.999
        assert set(be.last_timings) == {"h2d_ms", "compute_ms", "d2h_ms"}
        with pytest.raises(BadInputError, match="outside the engine's profile"):
            be.infer({"input": np.zeros((1, 300, 300, 3), np.uint8)})
        with pytest.raises(BadInputError, match="must be uint8"):
            be.infer({"input": np.zeros((1, 32, 32, 3), np.float32)})


@pytest.mark.gpu  # torch with CUDA, besides TensorRT
def test_infer_device_zero_copy_with_torch(built, frames):
    import torch

    from stylize_rt.runtime.backends.tensorrt import TensorrtBackend

    with TensorrtBackend(built["engine"]) as be:
        host = be.infer({"input": frames[:1]})["output"]
        x = torch.from_numpy(frames[:1]).cuda()
        y = torch.empty_like(x)
        stream = torch.cuda.current_stream()
        be.infer_device({"input": x}, {"output": y}, stream=stream)
        stream.synchronize()
        assert np.array_equal(y.cpu().numpy(), host)
        assert np.array_equal(be.infer({"input": frames[:1]})["output"], host)  # own buffers rebound


def test_corrupt_and_foreign_engines_are_refused(built, tmp_path):
    import shutil

    from stylize_rt.engines.sidecar import file_sha256, read_sidecar, sidecar_path, write_sidecar
    from stylize_rt.runtime.backends.tensorrt import TensorrtBackend

    engine = tmp_path / "gen.plan"
    shutil.copy(built["engine"], engine)
    shutil.copy(sidecar_path(built["engine"]), sidecar_path(engine))
    data = bytearray(engine.read_bytes())
    data[:64] = b"\xAB" * 64  # the plan's header: TensorRT must refuse it, not run garbage weights
    engine.write_bytes(bytes(data))
    with pytest.raises(BadInputError, match="SHA-256"):
        TensorrtBackend(engine)
    sidecar = read_sidecar(engine)  # make the sidecar agree, so TensorRT itself meets the corrupt plan
    sidecar.engine_sha256 = file_sha256(engine)
    write_sidecar(engine, sidecar)
    with pytest.raises(BadInputError):
        TensorrtBackend(engine)
    shutil.copy(built["engine"], engine)
    sidecar = read_sidecar(built["engine"])
    sidecar.tensorrt_version = "9.0.0.1"
    write_sidecar(engine, sidecar)
    with pytest.raises(BadInputError, match="rebuild it here"):
        TensorrtBackend(engine)


def test_engine_cache_builds_once(tiny_onnx, tmp_path):
    from stylize_rt.engines.build import BuildConfig
    from stylize_rt.engines.cache import ensure_engine

    config = BuildConfig(precision="fp32", shapes=["64x64"], progress=False)
    first = ensure_engine(tiny_onnx["uint8_nhwc"], config, root=tmp_path)
    stamp = first.stat().st_mtime_ns
    assert ensure_engine(tiny_onnx["uint8_nhwc"], config, root=tmp_path) == first
    assert first.stat().st_mtime_ns == stamp, "a valid cached engine must not be rebuilt"
    first.write_bytes(first.read_bytes()[:-1])  # truncated: rebuilt, not reused
    assert ensure_engine(tiny_onnx["uint8_nhwc"], config, root=tmp_path).stat().st_size > 0


def test_cli_build_and_inspect(tiny_onnx, tmp_path):
    engine = tmp_path / "gen.plan"
    run = [sys.executable, "-m", "stylize_rt"]
    result = subprocess.run([*run, "build-engine", tiny_onnx["uint8_nhwc"], "-o", engine, "--shapes", "64x64",
                             "--precision", "fp32", "--no-progress"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    shown = subprocess.run([*run, "inspect", engine, "--json"], capture_output=True, text=True)
    assert json.loads(shown.stdout)["precision"] == "fp32"
    here = subprocess.run([*run, "inspect", engine], capture_output=True, text=True).stdout
    assert "can run it" in here
    layers = subprocess.run([*run, "inspect", engine, "--layers"], capture_output=True, text=True)
    assert layers.returncode == 0 and "Layers" in layers.stdout, layers.stderr


@pytest.mark.gpu  # torch with CUDA, besides TensorRT
def test_stylizer_takes_device_frames(built, frames):
    import torch

    from stylize_rt.runtime.backends.tensorrt import TensorrtBackend
    from stylize_rt.runtime.stylizer import Stylizer

    stylizer = Stylizer(TensorrtBackend(built["engine"]))
    host = stylizer.stylize_batch(frames[:1])
    x = torch.from_numpy(frames[:1]).cuda()
    y = torch.empty_like(x)
    stream = torch.cuda.current_stream()
    stylizer.stylize_device(x, out=y, stream=stream)
    stream.synchronize()
    assert np.array_equal(y.cpu().numpy(), host)
    stylizer.close()
