"""``stylize-rt build-engine`` and ``stylize-rt inspect`` as users run them: subprocesses, exit codes, one line."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
from test_engines_sidecar import make_engine

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stylize_rt", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, pattern: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stylize-rt: error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert pattern in lines[0], lines[0]


@pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed here; the real build is in test_engines_tensorrt")
def test_build_engine_without_tensorrt_says_what_to_install(tiny_onnx, tmp_path):
    result = cli("build-engine", tiny_onnx["uint8_nhwc"], "-o", tmp_path / "gen.plan", "--shapes", "720p")
    assert_one_line_error(result, 2, "TensorRT is not installed: pip install 'stylize-rt[gpu]'")
    assert not (tmp_path / "gen.plan").exists()


def test_build_engine_rejects_bad_arguments_before_needing_tensorrt(tiny_onnx, tmp_path):
    assert_one_line_error(cli("build-engine", tmp_path / "missing.onnx"), 2, "ONNX file not found")
    assert_one_line_error(cli("build-engine", tiny_onnx["uint8_nhwc"], "--shapes", "720x"), 2, "bad frame size")
    assert_one_line_error(
        cli("build-engine", tiny_onnx["uint8_nhwc"], "--min", "1080p", "--max", "720p"), 2, "min <= opt <= max"
    )
    assert_one_line_error(cli("build-engine", tiny_onnx["uint8_nhwc"], "--opt-level", "9"), 2, "0..5")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage" * 100)
    assert_one_line_error(cli("build-engine", bad), 2, "cannot read ONNX file")


def test_inspect_prints_the_sidecar(tmp_path):
    engine, sidecar = make_engine(tmp_path)
    result = cli("inspect", engine)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "TensorRT 10.12.0.36 on NVIDIA L40S (compute 8.9)" in out
    assert "precision     fp16" in out and "1x720x1280x3" in out
    assert "input         input uint8 ?x?x?x3" in out
    assert "matches the sidecar" in out
    as_json = cli("inspect", engine, "--json")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)["engine_sha256"] == sidecar.engine_sha256


def test_inspect_reports_missing_corrupt_and_truncated(tmp_path):
    assert_one_line_error(cli("inspect", tmp_path / "none.plan"), 2, "engine file not found")
    engine, _ = make_engine(tmp_path)
    data = engine.read_bytes()
    engine.write_bytes(data[:-10])
    result = cli("inspect", engine)
    assert result.returncode == 2 and "truncated" in result.stderr and "Traceback" not in result.stderr
    engine.write_bytes(data)
    (tmp_path / "gen.plan.json").write_text('{"format": "stylize-rt.engine-sidecar", "schema_')
    assert_one_line_error(cli("inspect", engine), 2, "corrupt engine sidecar")
    (tmp_path / "gen.plan.json").unlink()
    assert_one_line_error(cli("inspect", engine), 2, "no sidecar gen.plan.json")


@pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed here; --layers runs in test_engines_tensorrt")
def test_inspect_layers_needs_tensorrt(tmp_path):
    engine, _ = make_engine(tmp_path)
    result = cli("inspect", engine, "--layers")
    assert "NVIDIA L40S" in result.stdout  # the sidecar part still prints
    assert_one_line_error(result, 2, "TensorRT is not installed")


def test_help_lists_both_commands():
    out = cli("--help").stdout
    assert "build-engine" in out and "inspect" in out
