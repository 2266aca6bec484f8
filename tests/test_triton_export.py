"""``export-triton``: Triton model repositories, checked with Triton's own protobuf schema.

No server here (tests/test_triton_server.py serves the Python-backend repositories): the
ONNX Runtime and TensorRT platform configs cannot be served on this machine (those backends
are not on PyPI), so they are checked by schema and against the model file. The "engine" is
a stand-in byte file with a sidecar describing it, as in test_engines_sidecar.py.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc", reason="export-triton needs tritonclient[grpc] (pip install 'stylize-rt[serve]')")

from stylize_rt.cli import main
from stylize_rt.engines.shapes import InputInfo, resolve_profile
from stylize_rt.engines.sidecar import Sidecar, TensorInfo, file_sha256, write_sidecar
from stylize_rt.errors import BadInputError, OutputError
from stylize_rt.export.triton import TritonExportConfig, check_entry, export_triton, parse_config
from stylize_rt.models import get_model
from stylize_rt.runtime import triton_python


def test_onnx_generator_config_carries_the_models_tensors_and_convention(tmp_path):
    folders = export_triton("mosaic", tmp_path / "repo")
    assert [f.name for f in folders] == ["mosaic"]
    config = parse_config((tmp_path / "repo/mosaic/config.pbtxt").read_text())
    assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 0
    assert [(t.name, list(t.dims)) for t in config.input] == [("input", [-1, -1, -1, 3])]
    assert [(t.name, list(t.dims)) for t in config.output] == [("output", [-1, -1, -1, -1])]
    assert config.parameters["stylize_rt.io_layout"].string_value == "uint8_nhwc"
    assert config.parameters["stylize_rt.style"].string_value == "mosaic"
    onnx_file = get_model("mosaic").path("onnx")
    assert (tmp_path / "repo/mosaic/1/model.onnx").read_bytes() == onnx_file.read_bytes()


def test_max_batch_moves_the_batch_axis_to_triton(tmp_path):
    options = TritonExportConfig(name="gen", max_batch=8, dynamic_batching=True, queue_delay_us=500, instances=2)
    export_triton("mosaic", tmp_path, options)
    config = check_entry(tmp_path, "gen")
    assert config.max_batch_size == 8 and list(config.input[0].dims) == [-1, -1, 3]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert config.instance_group[0].count == 2


def test_python_backend_runs_the_onnx_file_through_stylize_rt(tmp_path):
    site = str(tmp_path / "site")
    export_triton("mosaic", tmp_path, TritonExportConfig(backend="python", site_packages=(site,), threads=1))
    config = check_entry(tmp_path, "mosaic")
    assert config.backend == "python" and not config.platform
    assert config.parameters[triton_python.ROLE_PARAM].string_value == "generator"
    assert config.parameters[triton_python.SITE_PACKAGES_PARAM].string_value == site
    model_py = (tmp_path / "mosaic/1/model.py").read_text()
    compile(model_py, "model.py", "exec")  # valid Python, whatever the server's Python version adds
    assert "stylize_rt.runtime import triton_python" in model_py
    assert (tmp_path / "mosaic/1/model.onnx").is_file()


def test_captioner_repository_has_its_graphs_and_the_loop_model(tmp_path):
    """The embedded (fact) captioner: classifier, fact encoder and decoder step, and the loop model
    with the data its fact extraction needs."""
    for backend in ("onnxruntime", "python"):
        repo = tmp_path / backend
        folders = export_triton("captioner", repo, TritonExportConfig(backend=backend))
        assert sorted(f.name for f in folders) == ["captioner", "captioner_decoder_step", "captioner_encoder",
                                                   "captioner_fact_encoder"]
        encoder = check_entry(repo, "captioner_encoder")
        assert [(t.name, list(t.dims)) for t in encoder.input] == [("image", [-1, 224, 224, 3])]
        facts = check_entry(repo, "captioner_fact_encoder")
        assert [(t.name, list(t.dims)) for t in facts.input] == [("facts", [-1, 13])]
        decoder = check_entry(repo, "captioner_decoder_step")
        assert {t.name for t in decoder.input} == {"token", "hidden", "context", "features", "keys"}
        loop = check_entry(repo, "captioner")
        assert loop.backend == "python"
        assert loop.parameters[triton_python.ENCODER_PARAM].string_value == "captioner_encoder"
        assert loop.parameters[triton_python.FACT_ENCODER_PARAM].string_value == "captioner_fact_encoder"
        for file in ("tokenizer.json", "nouns.json", "classifier.npz", "captioner.json"):
            assert (repo / "captioner/1" / file).is_file(), file


def test_check_entry_catches_a_config_that_disagrees_with_the_model(tmp_path):
    export_triton("mosaic", tmp_path)
    path = tmp_path / "mosaic/config.pbtxt"
    text = path.read_text()
    path.write_text(text.replace("TYPE_UINT8", "TYPE_FP32", 1))
    with pytest.raises(BadInputError, match="'input' is TYPE_FP32 in the config, uint8 in the model"):
        check_entry(tmp_path, "mosaic")
    path.write_text(text.replace("dims: 3", "dims: 4", 1))
    with pytest.raises(BadInputError, match=r"has dims \[-1, -1, -1, 4\] in the config"):
        check_entry(tmp_path, "mosaic")
    path.write_text(text.replace('name: "input"', 'name: "frames"'))
    with pytest.raises(BadInputError, match="are not the model's"):
        check_entry(tmp_path, "mosaic")
    path.write_text(text + "\nnot_a_field: 1\n")
    with pytest.raises(BadInputError, match="does not parse as a Triton ModelConfig"):
        check_entry(tmp_path, "mosaic")


def _fixed_batch_onnx(path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "fixed", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_max_batch_needs_a_dynamic_batch_axis(tmp_path):
    model = _fixed_batch_onnx(tmp_path / "fixed.onnx")
    with pytest.raises(BadInputError, match="--max-batch needs a dynamic batch axis; 'x' has shape 1x3x8x8"):
        export_triton(model, tmp_path / "repo", TritonExportConfig(max_batch=4))
    export_triton(model, tmp_path / "repo")
    assert list(check_entry(tmp_path / "repo", "fixed").input[0].dims) == [1, 3, 8, 8]


def _stand_in_engine(tmp_path, max_batch: int = 4):
    """A plan-shaped byte file and a sidecar describing it (no TensorRT here)."""
    engine = tmp_path / "gen.plan"
    engine.write_bytes(bytes(range(256)) * 8)
    profile = resolve_profile([InputInfo("input", "uint8", (None, None, None, 3))], ["720p"], batch=f"1:{max_batch}:{max_batch}")
    sidecar = Sidecar(
        tensorrt_version="10.12.0.36", gpu_name="NVIDIA L40S", compute_capability="8.9", precision="fp16",
        typing="weak", profiles=[profile],
        io=[TensorInfo("input", "input", "uint8", (-1, -1, -1, 3)), TensorInfo("output", "output", "uint8", (-1, -1, -1, 3))],
        onnx_sha256="ab" * 32, engine_sha256=file_sha256(engine), engine_bytes=engine.stat().st_size,
        metadata={"stylize_rt.io_layout": "uint8_nhwc", "stylize_rt.style": "stand-in", "stylize_rt.precision": "fp16"},
    )
    write_sidecar(engine, sidecar)
    return engine


def test_tensorrt_plan_config_comes_from_the_sidecar(tmp_path):
    engine = _stand_in_engine(tmp_path)
    export_triton(engine, tmp_path / "repo", TritonExportConfig(max_batch=4))
    config = check_entry(tmp_path / "repo", "stand-in")
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 4
    assert list(config.output[0].dims) == [-1, -1, 3]
    assert config.parameters["stylize_rt.precision"].string_value == "fp16"
    assert (tmp_path / "repo/stand-in/1/model.plan").read_bytes() == engine.read_bytes()
    with pytest.raises(BadInputError, match="takes at most 4 frames"):
        export_triton(engine, tmp_path / "repo2", TritonExportConfig(max_batch=16))
    engine.write_bytes(b"another engine")
    with pytest.raises(BadInputError, match="not the engine its sidecar describes"):
        export_triton(engine, tmp_path / "repo3")


def test_refusals(tmp_path):
    with pytest.raises(BadInputError, match="only --backend tensorrt serves it"):
        export_triton(_stand_in_engine(tmp_path), tmp_path / "r", TritonExportConfig(backend="python"))
    with pytest.raises(BadInputError, match="build one first"):
        export_triton("mosaic", tmp_path / "r", TritonExportConfig(backend="tensorrt"))
    with pytest.raises(BadInputError, match="--dynamic-batching needs --max-batch"):
        export_triton("mosaic", tmp_path / "r", TritonExportConfig(dynamic_batching=True))
    with pytest.raises(BadInputError, match="apply to generators"):
        export_triton("captioner", tmp_path / "r", TritonExportConfig(max_batch=2))
    with pytest.raises(BadInputError, match="model not found"):
        export_triton(tmp_path / "missing.onnx", tmp_path / "r")


def test_an_existing_model_is_replaced_only_with_overwrite(tmp_path):
    export_triton("mosaic", tmp_path)
    marker = tmp_path / "mosaic/1/keep.txt"
    marker.write_text("x")
    with pytest.raises(OutputError, match="exists: pass --overwrite"):
        export_triton("mosaic", tmp_path)
    assert marker.exists()
    export_triton("mosaic", tmp_path, TritonExportConfig(overwrite=True))
    assert not marker.exists() and check_entry(tmp_path, "mosaic")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_cli_exit_codes(tmp_path, capsys):
    assert main(["export-triton", "mosaic", "--repo", str(tmp_path), "--max-batch", "2"]) == 0
    assert "checked against Triton's schema" in capsys.readouterr().out
    assert main(["export-triton", "mosaic", "--repo", str(tmp_path)]) == 3
    assert main(["export-triton", "nosuch", "--repo", str(tmp_path)]) == 2
    result = subprocess.run([sys.executable, "-m", "stylize_rt", "export-triton", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "--dynamic-batching" in result.stdout


def test_caption_rows_round_trip():
    captions = ["um, a red circle", "", "ünïcode — fine"]
    rows = triton_python.encode_captions(captions)
    assert rows.dtype == np.uint8 and rows.shape[0] == 3
    assert triton_python.decode_captions(rows) == captions
