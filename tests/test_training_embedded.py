"""The shipped default generator (src/stylize_rt/models/mosaic): complete, small, consistent, and it keeps content."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stylize_rt.models import DEFAULT_GENERATOR, MODELS_DIR, get_model

EMBEDDED = MODELS_DIR / DEFAULT_GENERATOR
needs_model = pytest.mark.skipif(not (EMBEDDED / "model.json").is_file(),
                                 reason="embedded default not built in this checkout (make models)")


@needs_model
def test_card_lists_small_existing_files_and_its_source():
    model = get_model(DEFAULT_GENERATOR)
    assert model.kind == "generator" and model.name == "mosaic"
    for role in ("onnx", "weights", "config"):
        path = model.path(role)
        assert path.is_file() and path.stat().st_size < 4_000_000, path
    assert model.source.startswith("python -m stylize_rt.recipes.embedded")
    assert model.extra["io_layout"] == "uint8_nhwc" and model.extra["train_wall_seconds"] > 0
    card = json.loads(model.path("config").read_text())
    assert card["kind"] == "generator" and card["train"]["stability"] > 0 and card["train"]["content"] == "builtin"


@needs_model
def test_onnx_runs_through_the_runtime_at_odd_sizes_and_keeps_edges(frames):
    from stylize_rt.benchmarks.quality import edge_correlation
    from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend
    from stylize_rt.runtime.stylizer import Stylizer
    from stylize_rt.training.data import held_out_photos

    stylizer = Stylizer(OnnxRuntimeBackend(get_model(DEFAULT_GENERATOR).path("onnx"), threads=1))
    out = stylizer.stylize_batch(frames)
    assert out.shape == frames.shape and out.dtype == np.uint8
    photo = held_out_photos()["china"][::2, ::2].copy()
    styled = stylizer(photo)
    assert np.abs(styled.astype(int) - photo).mean() > 20  # visibly stylized, not a pass-through
    assert edge_correlation(photo, styled) >= 0.3


@needs_model
def test_onnx_matches_the_shipped_weights(frames):
    torch = pytest.importorskip("torch")
    from stylize_rt.nets.checkpoint import load_generator
    from stylize_rt.nets.generator import UInt8NHWC
    from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend
    from stylize_rt.runtime.stylizer import Stylizer

    generator, _ = load_generator(EMBEDDED)
    with torch.no_grad():
        ref = UInt8NHWC(generator)(torch.from_numpy(frames)).numpy()
    out = Stylizer(OnnxRuntimeBackend(EMBEDDED / "generator.onnx", threads=1)).stylize_batch(frames)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1  # rounding of the last float op only
