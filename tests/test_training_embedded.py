"""The shipped default generator (src/stylize_rt/models/styles6, six styles in one network): complete, small,
consistent, every style keeps content, and its INT8 CPU graph carries its quality record."""

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
    assert model.kind == "generator" and model.name == "styles6"
    assert model.extra["styles"] == ["mosaic", "stained_glass", "brush", "hatching", "waves", "pointillism"]
    for role in ("onnx", "weights", "config"):
        path = model.path(role)
        assert path.is_file() and path.stat().st_size < 4_000_000, path
    assert model.source.startswith("python -m stylize_rt.recipes.embedded")
    assert model.extra["io_layout"] == "uint8_nhwc" and model.extra["train_wall_seconds"] > 0
    card = json.loads(model.path("config").read_text())
    assert card["kind"] == "generator" and card["train"]["stability"] > 0 and card["train"]["content"] == "builtin"
    assert card["styles"] == model.extra["styles"] and card["generator"]["n_styles"] == 6
    assert card["perception"] == "efficientnet-lite0" and card["train"]["multi_style"]
    # the shipped weights are the INT8 fine-tune (export.qat) of the trained ones, recorded in both cards
    assert card["qat"] == model.extra["qat"] and card["qat"]["steps"] > 0 and card["qat"]["wall_seconds"] > 0


@needs_model
def test_int8_graph_carries_its_per_style_quality_floor_and_auto_follows_it():
    from stylize_rt import contract
    from stylize_rt.export.metadata import read_metadata
    from stylize_rt.runtime.backends.registry import folder_graph

    path = EMBEDDED / contract.CHECKPOINT_ONNX_INT8
    assert path.is_file() and path.stat().st_size < 1_000_000
    quality = json.loads(read_metadata(path)[contract.INT8_QUALITY])
    assert set(quality["per_style"]) == set(get_model(DEFAULT_GENERATOR).extra["styles"])
    floor = quality["floor"]
    assert quality["passed"] == all(s["psnr_db"] >= floor["psnr_db"] and s["flicker"] <= floor["flicker"]
                                    and s["flicker_shift"] <= floor["flicker_shift"] for s in quality["per_style"].values())
    assert quality["psnr_db_min"] == min(s["psnr_db"] for s in quality["per_style"].values())
    picked = folder_graph(EMBEDDED, "auto", "onnxruntime")
    assert (picked.name == contract.CHECKPOINT_ONNX_INT8) == quality["passed"]
    assert quality["passed"], "the shipped default's INT8 graph is its fastest CPU path only while it passes"


@needs_model
def test_onnx_runs_through_the_runtime_at_odd_sizes_and_keeps_edges(frames):
    from stylize_rt.benchmarks.quality import edge_correlation
    from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend
    from stylize_rt.runtime.style_controls import StyleControls, one_hot
    from stylize_rt.runtime.stylizer import Stylizer
    from stylize_rt.training.data import held_out_photos

    stylizer = Stylizer(OnnxRuntimeBackend(get_model(DEFAULT_GENERATOR).path("onnx"), threads=1))
    out = stylizer.stylize_batch(frames)
    assert out.shape == frames.shape and out.dtype == np.uint8
    photo = held_out_photos()["china"][::2, ::2].copy()
    outputs = []
    for name in stylizer.styles:
        styled = stylizer(photo, StyleControls(one_hot(stylizer.styles, name)))
        assert np.abs(styled.astype(int) - photo).mean() > 20, name  # visibly stylized, not a pass-through
        assert edge_correlation(photo, styled) >= 0.3, name
        outputs.append(styled.astype(int))
    for i in range(len(outputs)):  # each style visibly different from every other
        for j in range(i):
            assert np.abs(outputs[i] - outputs[j]).mean() > 8, (stylizer.styles[i], stylizer.styles[j])


@needs_model
def test_onnx_matches_the_shipped_weights(frames):
    pytest.importorskip("torch")
    from stylize_rt.export.frames import control_feeds
    from stylize_rt.export.parity import ort_session, torch_reference
    from stylize_rt.nets.checkpoint import load_generator

    generator, _ = load_generator(EMBEDDED)
    controls = control_feeds(len(frames), generator.n_styles, seed=1)  # blends, strengths, colour kept
    ref = torch_reference(generator, frames, "uint8_nhwc", controls)
    out = ort_session(EMBEDDED / "generator.onnx").run(None, {"input": frames, **controls})[0]
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1  # rounding of the last float op only
