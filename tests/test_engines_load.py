"""Loading engines: version-compatible plans need ``engine_host_code_allowed`` before deserializing.

TensorRT's runtime refuses a plan that embeds host code (the lean runtime a
``--version-compatible`` build carries) unless ``IRuntime.engine_host_code_allowed`` is set
first; it then returns None, which would read as a corrupt file. The stand-in runtime here
behaves that way, so the decision (sidecar flag -> allowed) is tested without TensorRT.
"""

from __future__ import annotations

import types

import pytest

from stylize_rt.engines import load
from stylize_rt.engines.load import deserialize, is_version_compatible
from stylize_rt.engines.shapes import Profile
from stylize_rt.engines.sidecar import Environment, Sidecar, file_sha256, write_sidecar
from stylize_rt.errors import BadInputError

H100 = Environment("10.16.0.0", "NVIDIA H100", "9.0")

HOST_CODE_PLAN = b"VERSION-COMPATIBLE" + bytes(64)


class StandInRuntime:
    """``trt.Runtime`` as far as loading goes: host-code plans need the flag, as in TensorRT 10/11."""

    def __init__(self, logger) -> None:
        self.engine_host_code_allowed = False
        self.allowed_when_called = None

    def deserialize_cuda_engine(self, plan: bytes):
        self.allowed_when_called = self.engine_host_code_allowed
        if plan.startswith(b"VERSION-COMPATIBLE") and not self.engine_host_code_allowed:
            return None
        return types.SimpleNamespace(plan=plan)


class StandInLogger:
    ERROR = 1

    def __init__(self, level) -> None:
        self.level = level


def standin_trt():
    return types.SimpleNamespace(Logger=StandInLogger, Runtime=StandInRuntime, __version__="10.16.0.0")


def test_version_compatible_plans_load_only_with_host_code_allowed(tmp_path):
    plan = tmp_path / "vc.plan"
    plan.write_bytes(HOST_CODE_PLAN)
    with pytest.raises(BadInputError, match="corrupt.*allow_host_code=True"):
        deserialize(standin_trt(), plan)
    (logger, runtime), engine = deserialize(standin_trt(), plan, host_code=True)
    assert engine.plan == HOST_CODE_PLAN and runtime.allowed_when_called is True


def test_ordinary_plans_never_allow_host_code(tmp_path):
    plan = tmp_path / "gen.plan"
    plan.write_bytes(b"PLAN" + bytes(64))
    (_, runtime), _ = deserialize(standin_trt(), plan)
    assert runtime.allowed_when_called is False


def test_a_tensorrt_without_the_flag_says_so(tmp_path):
    class OldRuntime:
        def __init__(self, logger) -> None:
            pass

        def deserialize_cuda_engine(self, plan):  # pragma: no cover - must not be reached
            raise AssertionError("deserialized without allowing host code")

    plan = tmp_path / "vc.plan"
    plan.write_bytes(HOST_CODE_PLAN)
    trt = types.SimpleNamespace(Logger=StandInLogger, Runtime=OldRuntime, __version__="9.0")
    with pytest.raises(BadInputError, match="version-compatible.*rebuild it without"):
        deserialize(trt, plan, host_code=True)


def engine_with_sidecar(directory, **flags):
    """Plan-shaped bytes and a sidecar whose build flags are ``flags`` (the sidecar checks pass on H100)."""
    directory.mkdir(parents=True, exist_ok=True)
    engine = directory / "gen.plan"
    engine.write_bytes(HOST_CODE_PLAN)
    sidecar = Sidecar(tensorrt_version=H100.tensorrt_version, gpu_name=H100.gpu_name,
                      compute_capability=H100.compute_capability, precision="fp16", typing="weak",
                      profiles=[Profile()], io=[], onnx_sha256="ab" * 32, engine_sha256=file_sha256(engine),
                      engine_bytes=engine.stat().st_size, onnx_path="gen.onnx", build_flags=flags,
                      build_seconds=1.0, built_at="2026-12-01T00:00:00+00:00", metadata={})
    write_sidecar(engine, sidecar)
    return engine, sidecar


def test_sidecar_flag_decides(tmp_path, monkeypatch):
    """load_engine reads the sidecar's build flags and allows host code for version-compatible engines."""
    engine, sidecar = engine_with_sidecar(tmp_path / "vc", version_compatible=True)
    assert is_version_compatible(sidecar) and not is_version_compatible(None)
    seen = {}

    def fake_deserialize(trt, path, host_code=False):
        seen["host_code"] = host_code
        raise BadInputError("stop here: deserialization is TensorRT's")

    monkeypatch.setattr(load, "import_tensorrt", standin_trt)
    monkeypatch.setattr(load.cuda, "import_cudart", lambda: types.SimpleNamespace(cudaSetDevice=lambda d: (0,)))
    monkeypatch.setattr(load.cuda, "require_gpu", lambda device=0: None)
    monkeypatch.setattr(load, "running_environment", lambda device=0: H100)
    monkeypatch.setattr(load, "deserialize", fake_deserialize)
    with pytest.raises(BadInputError, match="stop here"):
        load.load_engine(engine)
    assert seen["host_code"] is True
    plain, _ = engine_with_sidecar(tmp_path / "plain", version_compatible=False)
    with pytest.raises(BadInputError, match="stop here"):
        load.load_engine(plain)
    assert seen["host_code"] is False
    with pytest.raises(BadInputError, match="stop here"):
        load.load_engine(plain, allow_host_code=True)
    assert seen["host_code"] is True
