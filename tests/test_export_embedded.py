"""The shipped default generator: its ONNX matches its checkpoint, and it exports to FP16 safely."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from stylize_rt import contract
from stylize_rt.models import DEFAULT_GENERATOR, MODELS_DIR

EMBEDDED = MODELS_DIR / DEFAULT_GENERATOR
HAS_CHECKPOINT = (EMBEDDED / "config.json").is_file() and (EMBEDDED / "generator.safetensors").is_file()
needs_embedded = pytest.mark.skipif(
    not HAS_CHECKPOINT, reason=f"embedded default {DEFAULT_GENERATOR!r} not built in this checkout (make models)"
)


@needs_embedded
def test_shipped_onnx_matches_shipped_checkpoint():
    from stylize_rt.export import metadata
    from stylize_rt.export.trt_lint import lint_file
    from stylize_rt.export.verify import verify_file

    onnx_path = EMBEDDED / "generator.onnx"
    if not onnx_path.is_file():
        pytest.fail(f"{EMBEDDED} has a checkpoint but no generator.onnx")
    lines: list[str] = []
    report = verify_file(onnx_path, EMBEDDED, log=lines.append)
    assert report.passed, lines
    meta = metadata.read_metadata(onnx_path)
    assert meta.get(contract.IO_LAYOUT) in ("uint8_nhwc", "float32_nchw")
    assert contract.fp32_layers(meta), "the shipped graph should list its FP32 layers for FP16 engines"
    assert lint_file(onnx_path, run_parser=False).ok


@needs_embedded
@pytest.mark.slow
def test_embedded_default_exports_to_fp16_without_nan(tmp_path):
    from stylize_rt.export.onnx_export import export_checkpoint

    result = export_checkpoint(EMBEDDED, tmp_path / "mosaic16.onnx", precision="fp16", log=lambda _m: None)
    assert result.parity.passed and all(s.nonfinite == 0 for s in result.parity.sizes)
    assert result.lint.ok
