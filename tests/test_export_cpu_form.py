"""export.cpu_form: the FP32 generator's ONNX Runtime CPU form, shipped as ``generator_cpu.onnx``.

On the shipped styles6 folder and copies of it, through ONNX Runtime sessions and the CLI: the CPU
form gives generator.onnx's bytes within one level on every path, skips the control tail at the
defaults (ONNX Runtime's own profile), and runs only while the generator.onnx it was made from is
unchanged.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import numpy_helper  # noqa: E402
from ort_profile import tail_matmul_runs  # noqa: E402

from stylize_rt import contract  # noqa: E402
from stylize_rt.errors import BadInputError  # noqa: E402
from stylize_rt.export import cpu_form  # noqa: E402
from stylize_rt.export.frames import graph_feeds, sample_frames  # noqa: E402
from stylize_rt.export.metadata import set_metadata  # noqa: E402
from stylize_rt.export.onnx_export import save_atomic  # noqa: E402
from stylize_rt.models import get_model  # noqa: E402
from stylize_rt.runtime.backends.registry import _gpu_provider, cpu_form_current, folder_graph  # noqa: E402
from stylize_rt.runtime.backends.registry import tensorrt_available as registry_tensorrt_available  # noqa: E402

STYLES6 = get_model("styles6").directory
CPU_ONLY = not registry_tensorrt_available() and not _gpu_provider()


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stylize_rt", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def folder_copy(tmp_path) -> Path:
    copy = tmp_path / "styles6"
    shutil.copytree(STYLES6, copy)
    return copy


def test_the_shipped_cpu_form_was_made_from_the_shipped_generator_onnx():
    assert cpu_form_current(STYLES6 / contract.CHECKPOINT_ONNX_CPU, STYLES6 / contract.CHECKPOINT_ONNX)
    card = json.loads((STYLES6 / "model.json").read_text())
    assert card["files"]["onnx_cpu"] == contract.CHECKPOINT_ONNX_CPU


@pytest.mark.skipif(not CPU_ONLY, reason="a GPU provider or TensorRT is here: FP32 runs generator.onnx there")
def test_fp32_on_a_cpu_only_onnxruntime_runs_the_cpu_form_and_int8_its_own_graph():
    assert folder_graph(STYLES6, "fp32", "onnxruntime").name == contract.CHECKPOINT_ONNX_CPU
    assert folder_graph(STYLES6, "fp32", "auto").name == contract.CHECKPOINT_ONNX_CPU
    assert folder_graph(STYLES6, "int8", "onnxruntime").name == contract.CHECKPOINT_ONNX_INT8


def test_the_shipped_cpu_form_gives_generator_onnx_bytes_within_one_level_on_every_path():
    check = cpu_form.compare(onnx.load(str(STYLES6 / contract.CHECKPOINT_ONNX)),
                             onnx.load(str(STYLES6 / contract.CHECKPOINT_ONNX_CPU)))
    assert check["max_levels"] <= cpu_form.MAX_LEVELS
    assert check["changed_fraction"] <= cpu_form.MAX_CHANGED_FRACTION


def _style_matmuls(model) -> int:
    """MatMuls against a 2-D table (the norms' per-style scale and shift lookups)."""
    tables = {i.name for i in model.graph.initializer if len(i.dims) == 2}
    return sum(1 for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in tables)


def test_at_the_defaults_the_cpu_form_skips_the_control_tail_and_looks_styles_up_in_one_matmul(tmp_path):
    source = onnx.load(str(STYLES6 / contract.CHECKPOINT_ONNX))
    model = onnx.load(str(STYLES6 / contract.CHECKPOINT_ONNX_CPU))
    assert _style_matmuls(source) > 10 and _style_matmuls(model) == 1
    frames, _ = sample_frames(1, 72, 128, held_out=True)
    defaults = graph_feeds(frames, "uint8_nhwc", 6, style=2)
    in_use = {**defaults, contract.INPUT_STRENGTH: np.array([0.6], np.float32)}
    assert tail_matmul_runs(model, defaults, tmp_path) == 0
    assert tail_matmul_runs(model, in_use, tmp_path) == 1


def test_a_re_exported_generator_onnx_runs_itself_until_its_cpu_form_is_remade(folder_copy):
    graph = folder_copy / contract.CHECKPOINT_ONNX
    model = onnx.load(str(graph))
    set_metadata(model, {"stylize_rt.test": "re-exported"})  # any change of the file's bytes
    save_atomic(model, graph)
    assert not cpu_form_current(folder_copy / contract.CHECKPOINT_ONNX_CPU, graph)
    assert folder_graph(folder_copy, "fp32", "onnxruntime").name == contract.CHECKPOINT_ONNX
    result = cli("export", "cpu-form", folder_copy)
    assert result.returncode == 0, result.stderr
    assert "within 1 level" in result.stdout
    assert cpu_form_current(folder_copy / contract.CHECKPOINT_ONNX_CPU, graph)
    if CPU_ONLY:
        assert folder_graph(folder_copy, "fp32", "onnxruntime").name == contract.CHECKPOINT_ONNX_CPU


def test_a_graph_without_controls_gets_a_one_line_error_and_exit_2(tmp_path):
    result = cli("export", "cpu-form", "mosaic", "-o", tmp_path / "cpu.onnx")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no control inputs" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "cpu.onnx").exists()


def test_a_cpu_form_that_drifts_from_its_source_is_refused_and_not_written(folder_copy, monkeypatch):
    real = cpu_form.onnxruntime_cpu_form

    def drifting(model):  # the real rewrite, then the head conv's filters scaled (no norm after it undoes that)
        model, moved = real(model)
        conv = [n for n in model.graph.node if n.op_type == "Conv"][-1]
        weight = next(i for i in model.graph.initializer if i.name == conv.input[1])
        weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.5, weight.name))
        return model, moved

    monkeypatch.setattr(cpu_form, "onnxruntime_cpu_form", drifting)
    output = folder_copy / "drifted.onnx"
    with pytest.raises(BadInputError, match="differs from it by up to"):
        cpu_form.write_cpu_form(folder_copy / contract.CHECKPOINT_ONNX, output)
    assert not output.exists()
