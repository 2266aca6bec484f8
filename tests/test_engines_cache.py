"""Engine cache keys and entry validation: every input changes the key; bad entries are never reused."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from stylize_rt.engines.build import BuildConfig
from stylize_rt.engines.cache import (
    ENGINE_FILE,
    entry_dir,
    entry_problem,
    lookup,
    make_key,
    onnxruntime_trt_cache_dir,
    store_key,
    timing_cache_path,
)
from stylize_rt.engines.shapes import InputInfo, resolve_profile
from stylize_rt.engines.sidecar import Environment, Sidecar, file_sha256, write_sidecar

NHWC = InputInfo("input", "uint8", (None, None, None, 3))
ENV = Environment("10.12.0.36", "NVIDIA L40S", "8.9")
ONNX_SHA = "12" * 32


def key_for(onnx_sha=ONNX_SHA, shapes=("720p",), config=None, env=ENV):
    config = config or BuildConfig()
    return make_key(onnx_sha, resolve_profile([NHWC], list(shapes)), config.engine_options(), env)


def test_key_is_stable_and_changes_with_every_input():
    base = key_for()
    assert base.digest() == key_for().digest() and len(base.digest()) == 24
    variants = {
        "onnx": key_for(onnx_sha="34" * 32),
        "shapes": key_for(shapes=("1080p",)),
        "precision": key_for(config=BuildConfig(precision="fp32")),
        "opt level": key_for(config=BuildConfig(optimization_level=5)),
        "workspace": key_for(config=BuildConfig(workspace_mib=512)),
        "typing": key_for(config=BuildConfig(strongly_typed=True)),
        "tensorrt": key_for(env=replace(ENV, tensorrt_version="10.13.0.35")),
        "gpu": key_for(env=replace(ENV, gpu_name="NVIDIA GeForce RTX 4090")),
        "capability": key_for(env=replace(ENV, compute_capability="9.0")),
    }
    digests = {name: k.digest() for name, k in variants.items()}
    assert base.digest() not in digests.values()
    assert len(set(digests.values())) == len(digests)
    # Where files go and how progress shows do not change the engine, so not the key either.
    same = key_for(config=BuildConfig(timing_cache="/tmp/t.cache", progress=False, verbose=True))
    assert same.digest() == base.digest()


def fill_entry(root, key, env=ENV, onnx_sha=None, profile=None):
    """An entry as ensure_engine leaves it: engine bytes, sidecar, key.json."""
    directory = entry_dir(key, root)
    directory.mkdir(parents=True)
    engine = directory / ENGINE_FILE
    engine.write_bytes(b"plan" * 1000)
    write_sidecar(engine, Sidecar(
        tensorrt_version=env.tensorrt_version, gpu_name=env.gpu_name, compute_capability=env.compute_capability,
        precision=key.precision, typing="weak", profiles=[profile or key.profile], io=[],
        onnx_sha256=onnx_sha or key.onnx_sha256, engine_sha256=file_sha256(engine),
        engine_bytes=engine.stat().st_size,
    ))
    store_key(key, root)
    return engine


def test_valid_entry_is_reused(tmp_path):
    key = key_for()
    engine = fill_entry(tmp_path, key)
    assert entry_problem(engine, key) is None
    assert lookup(key, tmp_path) == engine


@pytest.mark.parametrize("damage", ["foreign_env", "other_onnx", "other_shapes", "truncated", "no_key", "no_sidecar",
                                    "stale_key"])
def test_bad_entries_are_deleted_not_reused(tmp_path, damage, capsys):
    key = key_for()
    if damage == "foreign_env":  # e.g. a cache directory copied from another machine
        engine = fill_entry(tmp_path, key, env=Environment("10.12.0.36", "NVIDIA H100", "9.0"))
    elif damage == "other_onnx":
        engine = fill_entry(tmp_path, key, onnx_sha="ff" * 32)
    elif damage == "other_shapes":
        engine = fill_entry(tmp_path, key, profile=resolve_profile([NHWC], ["1080p"]))
    else:
        engine = fill_entry(tmp_path, key)
    if damage == "truncated":
        engine.write_bytes(engine.read_bytes()[:100])
    elif damage == "no_key":
        (engine.parent / "key.json").unlink()
    elif damage == "no_sidecar":
        (engine.parent / "engine.plan.json").unlink()
    elif damage == "stale_key":
        data = json.loads((engine.parent / "key.json").read_text())
        data["key_version"] = 0
        (engine.parent / "key.json").write_text(json.dumps(data))
    assert entry_problem(engine, key) is not None
    assert lookup(key, tmp_path) is None
    assert not engine.parent.exists(), "an invalid entry must be removed so it is rebuilt"
    assert "not reused" in capsys.readouterr().err


def test_cache_root_env_override(tmp_path):
    code = "from stylize_rt.engines.cache import cache_root; print(cache_root())"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "STYLIZE_RT_CACHE": str(tmp_path / "c")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(tmp_path / "c")
    env.pop("STYLIZE_RT_CACHE")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(tmp_path / "home" / ".cache" / "stylize-rt")


def test_timing_cache_is_per_tensorrt_and_gpu(tmp_path):
    a = timing_cache_path(ENV, tmp_path)
    assert a.parent == tmp_path / "timing" and " " not in a.name
    assert a != timing_cache_path(replace(ENV, compute_capability="9.0"), tmp_path)


def test_onnxruntime_tensorrt_ep_cache_dir_follows_the_same_key(tiny_onnx, tmp_path):
    profile = resolve_profile([NHWC], ["720p"])
    a = onnxruntime_trt_cache_dir(tiny_onnx["uint8_nhwc"], profile, "fp16", tmp_path)
    assert a.parent == tmp_path / "ort-trt"
    assert a == onnxruntime_trt_cache_dir(tiny_onnx["uint8_nhwc"], profile, "fp16", tmp_path)
    assert a != onnxruntime_trt_cache_dir(tiny_onnx["uint8_nhwc"], profile, "fp32", tmp_path)
    assert a != onnxruntime_trt_cache_dir(tiny_onnx["float32_nchw"], profile, "fp16", tmp_path)
    other = resolve_profile([NHWC], ["1080p"])
    assert a != onnxruntime_trt_cache_dir(tiny_onnx["uint8_nhwc"], other, "fp16", tmp_path)


def test_ensure_engine_without_tensorrt_is_a_missing_dependency(tiny_onnx, tmp_path):
    from stylize_rt.engines.cache import ensure_engine
    from stylize_rt.errors import MissingDependencyError

    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match="TensorRT is not installed"):
            ensure_engine(tiny_onnx["uint8_nhwc"], root=tmp_path)
    else:
        pytest.skip("tensorrt is installed here: covered by the tensorrt-marked tests")
