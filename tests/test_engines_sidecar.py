"""Engine sidecars: JSON round trip, and refusing engines from another TensorRT or GPU before loading.

The "engine" files here are plain bytes: these tests cover the checks stylize-rt makes
around a plan file (size, SHA-256, versions), which need no TensorRT.
"""

from __future__ import annotations

import json

import pytest

from stylize_rt.engines.shapes import InputInfo, resolve_profile
from stylize_rt.engines.sidecar import (
    Environment,
    Sidecar,
    TensorInfo,
    check_compatible,
    check_engine_file,
    file_sha256,
    format_sidecar,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from stylize_rt.errors import BadInputError

L40S = Environment("10.12.0.36", "NVIDIA L40S", "8.9")


def make_engine(tmp_path, env: Environment = L40S, **flags):
    """A plan-shaped byte file with a sidecar describing it."""
    engine = tmp_path / "gen.plan"
    engine.write_bytes(bytes(range(256)) * 40)
    profile = resolve_profile([InputInfo("input", "uint8", (None, None, None, 3))], ["720p"])
    sidecar = Sidecar(
        tensorrt_version=env.tensorrt_version,
        gpu_name=env.gpu_name,
        compute_capability=env.compute_capability,
        precision="fp16",
        typing="weak",
        profiles=[profile],
        io=[TensorInfo("input", "input", "uint8", (-1, -1, -1, 3)), TensorInfo("output", "output", "uint8", (-1, -1, -1, 3))],
        onnx_sha256="ab" * 32,
        engine_sha256=file_sha256(engine),
        engine_bytes=engine.stat().st_size,
        onnx_path="gen.onnx",
        build_flags={"optimization_level": 3, **flags},
        build_seconds=12.5,
        built_at="2026-11-25T00:00:00+00:00",
        metadata={"stylize_rt.io_layout": "uint8_nhwc"},
    )
    write_sidecar(engine, sidecar)
    return engine, sidecar


def test_round_trip(tmp_path):
    engine, sidecar = make_engine(tmp_path)
    assert sidecar_path(engine).name == "gen.plan.json"
    loaded = read_sidecar(engine)
    assert loaded == sidecar
    data = json.loads(sidecar_path(engine).read_text())
    assert data["format"] == "stylize-rt.engine-sidecar" and data["schema_version"] == 1
    assert data["profiles"][0]["inputs"][0]["opt"] == [1, 720, 1280, 3]
    text = format_sidecar(loaded, engine)
    assert "TensorRT 10.12.0.36 on NVIDIA L40S (compute 8.9)" in text and "1x720x1280x3" in text


def test_missing_and_corrupt_sidecars_are_one_line_errors(tmp_path):
    engine, _ = make_engine(tmp_path)
    path = sidecar_path(engine)
    path.write_text("{ not json")
    with pytest.raises(BadInputError, match="corrupt engine sidecar"):
        read_sidecar(engine)
    path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(BadInputError, match="not a stylize-rt engine sidecar"):
        read_sidecar(engine)
    path.write_text(json.dumps({"format": "stylize-rt.engine-sidecar", "schema_version": 1}))
    with pytest.raises(BadInputError, match="missing field"):
        read_sidecar(engine)
    path.unlink()
    with pytest.raises(BadInputError, match="no sidecar gen.plan.json"):
        read_sidecar(engine)


def test_same_environment_is_accepted(tmp_path):
    _, sidecar = make_engine(tmp_path)
    assert check_compatible(sidecar, L40S) == []


def test_foreign_tensorrt_version_is_refused_with_a_rebuild_hint(tmp_path):
    _, sidecar = make_engine(tmp_path)
    for running in ("10.12.0.35", "10.13.0.1", "11.1.0.6", "9.3.0"):
        with pytest.raises(BadInputError, match=r"built with TensorRT 10\.12\.0\.36.*rebuild it here"):
            check_compatible(sidecar, Environment(running, L40S.gpu_name, L40S.compute_capability), "gen.plan")


def test_version_compatible_engines_run_on_newer_same_major(tmp_path):
    _, sidecar = make_engine(tmp_path, version_compatible=True)
    assert check_compatible(sidecar, Environment("10.14.1.48", "NVIDIA L40S", "8.9")) == []
    with pytest.raises(BadInputError):
        check_compatible(sidecar, Environment("10.11.0.33", "NVIDIA L40S", "8.9"))
    with pytest.raises(BadInputError):
        check_compatible(sidecar, Environment("11.0.0.1", "NVIDIA L40S", "8.9"))


def test_foreign_gpu_is_refused_and_same_capability_only_warns(tmp_path):
    _, sidecar = make_engine(tmp_path)
    with pytest.raises(BadInputError, match=r"built for NVIDIA L40S \(compute 8\.9\); this GPU is NVIDIA H100"):
        check_compatible(sidecar, Environment("10.12.0.36", "NVIDIA H100 80GB HBM3", "9.0"))
    warnings = check_compatible(sidecar, Environment("10.12.0.36", "NVIDIA GeForce RTX 4090", "8.9"))
    assert len(warnings) == 1 and "tuned on NVIDIA L40S" in warnings[0]


def test_hardware_compatible_engines(tmp_path):
    _, sidecar = make_engine(tmp_path, hardware_compatibility="ampere_plus")
    assert check_compatible(sidecar, Environment("10.12.0.36", "NVIDIA H100", "9.0")) == []
    with pytest.raises(BadInputError, match="Ampere and newer"):
        check_compatible(sidecar, Environment("10.12.0.36", "Tesla T4", "7.5"))


def test_truncated_or_replaced_engine_is_caught_before_tensorrt(tmp_path):
    engine, sidecar = make_engine(tmp_path)
    check_engine_file(engine, sidecar)
    data = engine.read_bytes()
    engine.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match="truncated"):
        check_engine_file(engine, sidecar)
    engine.write_bytes(bytes(reversed(data)))
    with pytest.raises(BadInputError, match="SHA-256"):
        check_engine_file(engine, sidecar)
    engine.unlink()
    with pytest.raises(BadInputError, match="not found"):
        check_engine_file(engine, sidecar)
