"""``make gpu-check`` (benchmarks/gpu_check.py) on a machine without a GPU: everything but the GPU work.

Its arguments and the no-GPU exit run as the command itself (a subprocess); the in-place
import runs through the link tree in a fresh interpreter; the pytest piece runs the real GPU
test files here (where every one of them skips, with the reason, and none may fail); the
report writers and the junit reading get made-up results whose every line is checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from stylize_rt.benchmarks import gpu_check
from stylize_rt.gpu.devices import nvidia_gpu_present

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def run(*args, **kw):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=120, **kw)


@pytest.mark.skipif(nvidia_gpu_present(), reason="this machine has a GPU: the no-GPU exit cannot be seen here")
def test_without_a_gpu_it_exits_2_with_one_line_and_writes_nothing(tmp_path):
    done = run("--out-dir", tmp_path / "out")
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.count("\n") == 1
    assert done.stderr.startswith("gpu-check: no NVIDIA GPU on this machine")
    assert not (tmp_path / "out").exists()


def test_arguments(tmp_path):
    listed = run("--list")
    assert listed.returncode == 0 and listed.stdout.split() == list(gpu_check.CHECKS)
    for bad, message in ((["--only", "bogus"], "unknown check bogus"), (["--only", ","], "unknown check"),
                         (["--site", tmp_path / "nope"], "no such folder"), (["--budget", "0"], "must be positive")):
        done = run(*bad)
        assert done.returncode == 2 and message in done.stderr, (bad, done.stderr)
    assert "Exit codes" in run("--help").stdout


def test_a_whole_run_writes_the_reports(tmp_path):
    """--assume-gpu runs the checks here (the GPU pieces skip); the JSON and Markdown come out."""
    done = run("--assume-gpu", "--only", "environment,goal,tensorrt", "--out-dir", tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("PASS environment") and lines[-1].startswith("gpu-check: 1 passed, 0 failed, 2 skipped")
    document = json.loads((tmp_path / "gpu_check.json").read_text())
    assert document["schema"] == gpu_check.SCHEMA and [c["name"] for c in document["checks"]] == [
        "environment", "goal-1080p-fp16", "tensorrt"]
    assert document["machine"]["modules"]["numpy"] is True
    assert "| environment | pass |" in (tmp_path / "gpu_check.md").read_text()


def test_the_link_tree_imports_this_checkout(tmp_path):
    tree = gpu_check.link_tree(ROOT, tmp_path / "tree")
    code = ("import os, stylize_rt, stylize_rt.runtime.backends, stylize_rt.benchmarks.environment as e\n"
            "print(stylize_rt.__file__); print(os.path.realpath(stylize_rt.runtime.backends.__file__))\n"
            "print(e.REPO_ROOT)")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         cwd=tmp_path).stdout.splitlines()
    assert out[0].startswith(str(tree)), "the link tree comes first, before any installed copy"
    assert out[1] == str(ROOT / "runtime" / "backends" / "__init__.py")
    assert out[2] == str(ROOT)


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="2" tests="6">
<testcase classname="tests.test_gpu_cuda" name="test_status" file="tests/test_gpu_cuda.py" time="0.1"/>
<testcase classname="tests.test_gpu_cuda" name="test_errors" file="tests/test_gpu_cuda.py" time="0.1">
  <failure message="AssertionError: wrong name">trace</failure></testcase>
<testcase classname="tests.test_torch_backend_graphs" name="test_cuda" file="tests/test_torch_backend_graphs.py">
  <error message="failed on setup with &quot;ModuleNotFoundError: No module named 'safetensors'&quot;">E</error></testcase>
<testcase classname="tests.test_torch_backend_graphs" name="test_more" file="tests/test_torch_backend_graphs.py">
  <skipped type="pytest.skip" message="no CUDA GPU on this machine">skip</skipped></testcase>
<testcase classname="tests.test_gpu_devices" name="test_nvml" file="tests/test_gpu_devices.py">
  <skipped type="pytest.skip" message="no CUDA GPU on this machine">skip</skipped></testcase>
<testcase classname="" name="tests.test_broken">
  <error message="collection failure">ImportError: cannot import name 'gone'</error></testcase>
</testsuite></testsuites>
"""


def test_junit_results_become_one_line_per_file(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    groups = gpu_check.parse_junit(path, {"safetensors": False})
    results = {r.name: r for r in (gpu_check.group_result(f, g) for f, g in groups.items())}
    assert results["pytest:gpu_cuda"].status == "fail" and "test_errors: AssertionError" in results["pytest:gpu_cuda"].summary
    graphs = results["pytest:torch_backend_graphs"]
    assert graphs.status == "skip" and "needs safetensors (not installed here)" in graphs.summary
    assert results["pytest:gpu_devices"].status == "skip" and "no CUDA GPU" in results["pytest:gpu_devices"].summary
    assert results["pytest:broken"].status == "fail", "a real import error is a failure, not a missing package"
    assert results["pytest:gpu_cuda"].line().startswith("FAIL pytest:gpu_cuda")


@pytest.mark.slow
def test_the_gpu_test_files_run_and_skip_with_reasons_here(tmp_path):
    files = gpu_check.gpu_test_files(ROOT)
    names = {f.name for f in files}
    assert {"test_gpu_cuda.py", "test_tensorrt_backend_standin.py", "test_torch_backend_graphs.py",
            "test_backends_parity.py"} <= names and "test_gpu_check.py" not in names
    ctx = gpu_check.Context(ROOT, tmp_path, dict(os.environ), None, 280.0, 0.4, gpu_check.modules_present())
    results = gpu_check.check_pytest(ctx)
    by_name = {r.name: r for r in results}
    assert "pytest:tensorrt_backend_standin" in by_name and "pytest:gpu_cuda" in by_name
    assert not [r.line() for r in results if r.status == "fail"]
    if not nvidia_gpu_present():
        assert by_name["pytest:tensorrt_backend_standin"].status == "skip"
        assert "no CUDA GPU on this machine" in by_name["pytest:tensorrt_backend_standin"].summary


def made_up_results():
    bench = {"environment": {"command": "stylize-rt bench --engine mosaic", "gpu_state": [
        {"name": "NVIDIA H200", "sm_clock_mhz": 1980, "max_sm_clock_mhz": 1980, "power_w": 400.0,
         "power_limit_w": 700.0, "temperature_c": 40}]},
        "records": [{"backend": "torch-cuda", "precision": "fp16", "width": 1920, "height": 1080, "batch": 1,
                     "mode": "model", "p50_ms": 2.5, "p90_ms": 2.7, "fps": 400.0, "h2d_ms": 0.3, "compute_ms": 1.9,
                     "d2h_ms": 0.3}], "failed": []}
    results = [gpu_check.CheckResult("environment", "pass", "NVIDIA H200 (compute 9.0)"),
               gpu_check.CheckResult("pytest:gpu_cuda", "fail", "3 passed, 1 failed | pipe"),
               gpu_check.CheckResult("tensorrt", "skip", "TensorRT is not installed here")]
    return results, bench


def test_reports_are_written_whole_and_say_what_ran(tmp_path, monkeypatch):
    results, bench = made_up_results()
    ctx = gpu_check.Context(ROOT, tmp_path, {}, None, 100.0, 0.4, {})
    ctx.machine = {"gpus": [{"name": "NVIDIA H200", "driver": "580.1", "memory": "141 GiB"}]}
    ctx.bench = {"bench-default": bench}
    ctx.parity = {"source": "4 photos", "rows": [{"precision": "fp16", "photo": 0, "size": "512x512",
                                                   "within_1": 0.98, "within_2": 0.9995, "max_diff": 3}]}
    document = gpu_check.build_document(results, ctx, "gpu_check.py --out-dir x", "2026-12-01T00:00:00+00:00", 12.3)
    assert document["exit_code"] == 1 and document["counts"] == {"pass": 1, "fail": 1, "skip": 1, "info": 0}
    json_path, md_path = gpu_check.write_reports(document, tmp_path / "results")
    assert json.loads(json_path.read_text()) == document
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["gpu_check.json", "gpu_check.md"]
    md = md_path.read_text()
    assert "1 passed, 1 failed, 1 skipped" in md and "| pytest:gpu_cuda | fail | 3 passed, 1 failed \\| pipe |" in md
    assert "| fp16 | 0 | 512x512 | 98.000% | 99.950% | 3 |" in md
    assert "| torch-cuda | fp16 | 1920x1080 | 1 | 2.50 | 2.70 | 400.0 | 0.30 | 1.90 | 0.30 |" in md
    assert "NVIDIA H200: SM 1980 of 1980 MHz, 400.0 of 700.0 W, 40 C" in md


def test_bench_commands_parse_as_stylize_rt_bench(tmp_path):
    from stylize_rt.cli import build_parser

    command = gpu_check.bench_command("mosaic", "torch-cuda,torch-cuda-eager", "fp32,fp16,bf16", "256,720p,1080p",
                                      "1,8", tmp_path / "b.json", 0.4)
    assert command[1:3] == ["-m", "stylize_rt"]
    args = build_parser().parse_args(command[3:])
    assert args.backends == "torch-cuda,torch-cuda-eager" and args.seconds == 0.4 and args.no_peak


def test_johnson_network_is_the_papers_layout():
    from stylize_rt.benchmarks.peers import PEERS
    from stylize_rt.nets.generator import GeneratorConfig, estimate_macs

    config = GeneratorConfig.from_dict(PEERS["johnson2016"])
    assert config.channels == (32, 64, 128) and config.res_blocks == 5 and config.stem_kernel == 9
    assert 30e9 < estimate_macs(config, 360, 640) < 40e9  # "about 35 GMAC at 640x360" (nets/generator.py)


def test_site_pieces(tmp_path):
    pins = gpu_check.requirement_pins(ROOT)
    assert all(name in pins for name in gpu_check.SITE_PACKAGES)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "tiny-1.0-py3-none-any.whl", "w") as archive:
        archive.writestr("tiny/__init__.py", "VALUE = 7\n")
    site = tmp_path / "site"
    assert gpu_check.unpack_wheels(wheels, site) == ["tiny-1.0-py3-none-any.whl"]
    assert (site / "tiny" / "__init__.py").read_text() == "VALUE = 7\n"
    pytest.importorskip("skimage", reason="scikit-image (the demo extra) provides the photos")
    assert gpu_check.write_photos(site) == [f"{n}.png" for n in gpu_check.PHOTOS]
    photos, where = gpu_check.load_photos(site)
    assert len(photos) == len(gpu_check.PHOTOS) and str(site) in where
    from skimage import data

    assert np.array_equal(photos[0], data.astronaut()), "PNG round trip, RGB order kept"
