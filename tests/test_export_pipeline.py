"""Export pipeline on tiny models: metadata, simplification, parity, FP16 islands, INT8 quality."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from stylize_rt import contract  # noqa: E402
from stylize_rt.export import fp16, metadata  # noqa: E402
from stylize_rt.export.onnx_export import build_graph, export_checkpoint, export_generator  # noqa: E402
from stylize_rt.export.parity import ort_session  # noqa: E402
from stylize_rt.export.verify import DEFAULT_SIZES, VerificationError, verify_generator  # noqa: E402
from stylize_rt.nets.checkpoint import save_generator  # noqa: E402
from stylize_rt.nets.generator import Generator, GeneratorConfig  # noqa: E402

TINY = {"channels": [4, 8, 8], "res_blocks": 1, "stem_kernel": 3}


def _quiet(_message: str) -> None:
    pass


def _generator(seed: int = 0, stem_scale: float = 1.0) -> Generator:
    torch.manual_seed(seed)
    gen = Generator(GeneratorConfig.from_dict(TINY)).eval()
    with torch.no_grad():
        gen.stem.conv[1].weight.mul_(stem_scale)
        gen.stem.conv[1].bias.mul_(stem_scale)
    return gen


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, tiny_generator):
    return save_generator(tmp_path_factory.mktemp("ckpt") / "tiny", tiny_generator, {"train": {"styles": ["mosaic"]}})


def _types(model) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    types.update({i.name: i.data_type for i in inferred.graph.initializer})
    return types


@pytest.mark.parametrize("layout", ["uint8_nhwc", "float32_nchw"])
def test_fp32_export_metadata_and_runtime(ckpt, tmp_path, layout, frames):
    from stylize_rt.runtime.backends import OnnxRuntimeBackend
    from stylize_rt.runtime.stylizer import Stylizer

    out = tmp_path / "gen.onnx"
    result = export_checkpoint(ckpt, out, io_layout=layout, precision="fp32", log=_quiet)
    assert result.parity.passed and len(result.parity.sizes) == len(DEFAULT_SIZES)
    if layout == "float32_nchw":
        assert result.parity.worst_max_abs <= 1e-4
    else:
        assert min(s.within_1 for s in result.parity.sizes) >= 0.999
    backend = OnnxRuntimeBackend(out, threads=1)
    meta = backend.metadata
    assert meta[contract.KIND] == "generator"
    assert meta[contract.STYLE] == "mosaic"
    assert meta[contract.IO_LAYOUT] == layout
    assert meta[contract.PRECISION] == "fp32"
    assert len(meta[contract.CONFIG_HASH]) == 64
    assert json.loads(meta[contract.VERIFIED])["passed"] is True
    norms = [n.name for n in onnx.load(str(out)).graph.node if n.op_type == "InstanceNormalization"]
    assert set(norms) <= set(contract.fp32_layers(meta)) and norms
    # Dynamic batch/H/W in the graph itself, and the runtime serves odd sizes from it.
    dims = [d.dim_param for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert dims.count("") == 1 and {"batch", "height", "width"} <= set(dims)
    styled = Stylizer(backend).stylize_batch(frames)
    assert styled.shape == frames.shape and styled.dtype == np.uint8


def test_simplified_graph_is_smaller_and_bit_identical(tiny_generator):
    plain, _ = build_graph(tiny_generator, "float32_nchw", simplify_graph=False)
    slim, _ = build_graph(tiny_generator, "float32_nchw", simplify_graph=True)
    assert len(slim.graph.node) < len(plain.graph.node) / 2
    x = np.random.default_rng(0).random((2, 3, 37, 29), dtype=np.float32)
    a = ort_session(plain, optimize=False).run(None, {"input": x})[0]
    b = ort_session(slim, optimize=False).run(None, {"input": x})[0]
    assert np.array_equal(a, b)


def test_export_generator_keeps_its_signature(tiny_generator, tmp_path):
    path = export_generator(tiny_generator, tmp_path / "g.onnx", "uint8_nhwc", metadata={"stylize_rt.style": "x"})
    import os

    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's private 0600
    meta = metadata.read_metadata(path)
    assert meta["stylize_rt.style"] == "x" and meta["stylize_rt.io_layout"] == "uint8_nhwc"
    assert not [p for p in tmp_path.iterdir() if p.name != "g.onnx"]
    card = {"kind": "generator", "generator": TINY, "train": {"styles": ["/styles/wave.jpg"]}}
    path = export_generator(tiny_generator, tmp_path / "v.onnx", "float32_nchw", card=card, verify=True)
    meta = metadata.read_metadata(path)
    assert meta[contract.STYLE] == "wave" and meta[contract.CONFIG_HASH] == metadata.config_hash(card)
    assert json.loads(meta[contract.VERIFIED])["passed"] is True


@pytest.mark.parametrize("layout", ["uint8_nhwc", "float32_nchw"])
def test_fp16_graph_has_fp32_instance_norm_islands_and_no_nan(ckpt, tmp_path, layout, frames):
    out = tmp_path / "gen16.onnx"
    result = export_checkpoint(ckpt, out, io_layout=layout, precision="fp16", log=_quiet)
    model = onnx.load(str(out))
    types = _types(model)
    norms = [n for n in model.graph.node if n.op_type == "InstanceNormalization"]
    assert norms
    for node in norms:  # input, scale, B and output all FP32: Cast -> FP32 before, Cast -> FP16 after
        assert all(types[i] == 1 for i in node.input), node.name
        assert types[node.output[0]] == 1
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert any(types[c.input[1]] == 10 for c in convs), "weights should be FP16"
    assert model.graph.input[0].type.tensor_type.elem_type == (2 if layout == "uint8_nhwc" else 1)
    assert model.graph.output[0].type.tensor_type.elem_type == (2 if layout == "uint8_nhwc" else 1)
    feed = frames if layout == "uint8_nhwc" else frames.transpose(0, 3, 1, 2).astype(np.float32) / 255
    out_values = ort_session(out).run(None, {"input": np.ascontiguousarray(feed)})[0]
    assert np.isfinite(out_values.astype(np.float64)).all()
    assert result.parity.worst_psnr >= 40.0
    assert result.lint.ok, result.lint.lines()


def test_instance_norm_overflow_detected_and_islands_prevent_nan(tmp_path):
    """Activations ~1e3: fine in FP16, but their squares are not (the classic instance-norm NaN)."""
    gen = _generator(stem_scale=800.0)
    ckpt = save_generator(tmp_path / "hot", gen)
    graph, stats = build_graph(gen, "float32_nchw")
    stem_norm = next(layer for layer in stats.layers if layer.node.startswith("/stem/norm"))
    assert 256 < stem_norm.max_input_abs < 65504 / 8
    assert "overflow" in stem_norm.reason and stem_norm.keep_fp32
    from stylize_rt.export.frames import sample_frames

    frames, _ = sample_frames(2, 64, 64, seed=5)
    verdict = fp16.naive_fp16_check(gen, frames, "float32_nchw")
    assert "inf/NaN" in verdict and "stem.norm" in verdict
    result = export_checkpoint(ckpt, tmp_path / "hot16.onnx", io_layout="float32_nchw", precision="fp16", log=_quiet)
    assert all(s.nonfinite == 0 for s in result.parity.sizes) and result.parity.passed


def test_overflowing_conv_is_kept_fp32_and_marked(tmp_path):
    gen = _generator(stem_scale=2e5)
    ckpt = save_generator(tmp_path / "hotter", gen)
    result = export_checkpoint(ckpt, tmp_path / "g16.onnx", io_layout="float32_nchw", precision="fp16", log=_quiet)
    keep = contract.fp32_layers(result.metadata)
    assert "/stem/conv/conv.1/Conv" in keep
    model = onnx.load(str(tmp_path / "g16.onnx"))
    types = _types(model)
    conv = next(n for n in model.graph.node if n.name == "/stem/conv/conv.1/Conv")
    assert types[conv.input[1]] == 1 and types[conv.output[0]] == 1
    # No FP32 -> FP16 -> FP32 round trip between the FP32 conv and its FP32 norm.
    assert fp16.check_fp16_graph(model, model, keep) == []
    assert result.parity.passed


def test_int8_qdq_runs_and_reports_psnr(ckpt, tmp_path):
    out = tmp_path / "gen8.onnx"
    result = export_checkpoint(ckpt, out, io_layout="uint8_nhwc", precision="int8", log=_quiet)
    model = onnx.load(str(out))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:  # symmetric (TensorRT): every zero point is 0
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            assert not numpy_helper.to_array(inits[node.input[2]]).any()
    report = result.int8
    assert report.quantized_convs == ops.count("Conv")
    assert 20.0 < report.psnr_db < 80.0  # a real loss, measured, not zero and not garbage
    assert float(result.metadata["stylize_rt.int8_psnr_db"]) == pytest.approx(report.psnr_db, abs=0.01)
    assert result.lint.ok


def test_parity_fails_loudly_for_a_different_model(ckpt, tmp_path):
    out = tmp_path / "other.onnx"
    export_generator(_generator(seed=5), out, "float32_nchw")
    report = verify_generator(_generator(seed=0), out, "float32_nchw")
    assert not report.passed
    from stylize_rt.export.verify import require_pass

    with pytest.raises(VerificationError, match="does not match PyTorch"):
        require_pass(report)


def test_no_verify_still_checks_and_writes(ckpt, tmp_path):
    out = tmp_path / "nv.onnx"
    result = export_checkpoint(ckpt, out, io_layout="float32_nchw", verify=False, log=_quiet)
    assert result.parity is None and out.is_file()
    assert contract.VERIFIED not in result.metadata and result.lint.ok
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)


def test_calibration_from_a_user_folder(tmp_path, frames):
    import cv2

    from stylize_rt.errors import BadInputError
    from stylize_rt.export.int8 import CALIBRATION_SIZE, calibration_set

    for i, frame in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (tmp_path / "notes.txt").write_text("not an image")
    calib, source = calibration_set(tmp_path, count=5)
    assert source == "user images" and calib.shape == (5, *CALIBRATION_SIZE, 3) and calib.dtype == np.uint8
    assert calib.std() > 10  # real content, not a constant
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInputError, match="no decodable images"):
        calibration_set(empty)
    with pytest.raises(BadInputError, match="not found"):
        calibration_set(tmp_path / "missing")
