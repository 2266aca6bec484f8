"""The package imports the way the design card says: one import package, runtime without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np


def test_runtime_imports_without_torch():
    code = (
        "import sys, stylize_rt, stylize_rt.cli, stylize_rt.runtime.stylizer, "
        "stylize_rt.runtime.backends, stylize_rt.models\n"
        "stylize_rt.cli.build_parser()\n"
        "assert 'torch' not in sys.modules, 'runtime imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_generic_top_level_names(tmp_path):
    """The stage folders install only as stylize_rt.<stage>, never as top-level 'runtime' etc."""
    code = (
        "import importlib.util\n"
        "names = ('runtime', 'training', 'export', 'engines', 'benchmarks')\n"
        "found = [n for n in names if importlib.util.find_spec(n) is not None]\n"
        "assert not found, found\n"
        "import stylize_rt.runtime, stylize_rt.training\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_stage_folders_cannot_be_imported_as_top_level_packages_from_the_root():
    """From a checkout's root a stage folder is importable by its bare name; it refuses, so the same
    file can never be loaded as two module objects (runtime.frames and stylize_rt.runtime.frames)."""
    root = Path(__file__).resolve().parents[1]
    for stage in ("runtime", "training", "export", "engines", "benchmarks"):
        proc = subprocess.run([sys.executable, "-c", f"import {stage}"], capture_output=True, text=True, cwd=root)
        assert proc.returncode != 0 and f"import stylize_rt.{stage}, not {stage}" in proc.stderr, proc.stderr
    ok = subprocess.run([sys.executable, "-c", "import stylize_rt.runtime.frames, stylize_rt.cli"], cwd=root)
    assert ok.returncode == 0


def test_cli_help_runs():
    result = subprocess.run(
        [sys.executable, "-m", "stylize_rt", "--help"], capture_output=True, text=True, check=True
    )
    assert "stylize-rt" in result.stdout


def test_stylizer_odd_sizes_both_layouts(tiny_onnx, frames):
    from stylize_rt.runtime.backends import OnnxRuntimeBackend
    from stylize_rt.runtime.stylizer import Stylizer

    outs = []
    for layout, path in tiny_onnx.items():
        stylizer = Stylizer(OnnxRuntimeBackend(path, threads=1))
        assert stylizer.layout == layout
        out = stylizer.stylize_batch(frames)
        assert out.shape == frames.shape and out.dtype == np.uint8
        outs.append(out.astype(int))
        stylizer.close()
    # The uint8 graph rounds in-model; the float graph rounds in numpy: same pixels within 1 level.
    assert np.abs(outs[0] - outs[1]).max() <= 1
