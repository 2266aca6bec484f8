"""--texture-scale: the model on a shrunk frame, its change put back on the full frame (real ONNX
Runtime sessions of the embedded styles6 graph, real photos, the CLI as a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from stylize_rt import contract
from stylize_rt.benchmarks.quality import chroma_difference, jitter_offsets, jittered_frames, shift_flicker_ratio
from stylize_rt.cli import build_parser
from stylize_rt.errors import BadInputError
from stylize_rt.models import get_model
from stylize_rt.recipes.cpu_matrix import texture_rows
from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend
from stylize_rt.runtime.cli import run_config
from stylize_rt.runtime.detail_transfer import upsample_change
from stylize_rt.runtime.pipeline import PipelineConfig, StreamRunner
from stylize_rt.runtime.style_controls import StyleControls, one_hot
from stylize_rt.runtime.stylizer import Stylizer
from stylize_rt.sizes import check_texture_scale, texture_scaled_size
from stylize_rt.training.data import held_out_photos


@pytest.fixture(scope="module")
def stylizer():
    s = Stylizer(OnnxRuntimeBackend(get_model("styles6").directory / contract.CHECKPOINT_ONNX, threads=1))
    yield s
    s.close()


@pytest.fixture
def scaled(stylizer):
    stylizer.texture_scale = 2.0
    yield stylizer
    stylizer.texture_scale = 1.0


def style(stylizer, name: str, **kwargs) -> StyleControls:
    return StyleControls(one_hot(stylizer.styles, name), **kwargs)


def test_upsample_change_is_the_float_sum_and_adds_nothing_without_a_change():
    rng = np.random.default_rng(0)
    full = rng.integers(0, 256, (90, 160, 3), np.uint8)
    small_in = cv2.resize(full, (80, 45), interpolation=cv2.INTER_AREA)
    small_out = rng.integers(0, 256, (45, 80, 3), np.uint8)
    out = upsample_change(full, small_in, small_out)
    change = cv2.resize(small_out.astype(np.float32) - small_in, (160, 90), interpolation=cv2.INTER_LINEAR)
    expected = np.clip(np.rint(full + change), 0, 255)
    assert out.dtype == np.uint8 and np.abs(out - expected).max() <= 1
    np.testing.assert_array_equal(upsample_change(full, small_in, small_in), full)
    kept = upsample_change(full, small_in, small_out, luma_only=True)
    inside = ((kept > 0) & (kept < 255)).all(-1)  # where the sum saturated, chroma must move
    assert inside.mean() > 0.3
    assert chroma_difference(full[inside][None], kept[inside][None])["chroma_p99"] < 0.01
    with pytest.raises(ValueError, match="do not fit"):
        upsample_change(full, small_in, small_out[:40])


def test_texture_scaled_sizes_and_bad_scales():
    assert texture_scaled_size(1280, 720, 2) == (640, 360)
    assert texture_scaled_size(1280, 720, 1.5) == (853, 480)
    assert texture_scaled_size(40, 20, 4) == (16, 16)  # the generator's smallest side
    assert texture_scaled_size(12, 10, 2) == (12, 10)  # never larger than the frame
    for bad in (0.5, 0.0, -2.0, 17.0, float("nan"), float("inf")):
        with pytest.raises(BadInputError, match="--texture-scale must be a number from 1 to 16"):
            check_texture_scale(bad)


def test_texture_scale_keeps_the_size_and_the_exact_controls(scaled):
    photo = held_out_photos()["flower"]
    out = scaled(photo, style(scaled, "waves"))
    assert out.shape == photo.shape
    zero = scaled(photo, style(scaled, "waves", strength=0.0))
    assert np.abs(zero.astype(np.int16) - photo).max() <= 1
    kept = scaled(photo, style(scaled, "waves", preserve_color=True))
    assert chroma_difference(photo, kept, out)["chroma_p99_in_gamut"] <= 2.0


def test_texture_scale_draws_the_small_frames_style_on_the_full_frames_detail(stylizer, scaled):
    photo = held_out_photos()["china"]
    controls = style(scaled, "mosaic")
    out = scaled(photo, controls)
    scaled.texture_scale = 1.0
    small = cv2.resize(photo, (320, 214), interpolation=cv2.INTER_AREA)
    small_out, native = stylizer(small, controls), stylizer(photo, controls)
    shrunk, native_shrunk = (cv2.resize(x, (320, 214), interpolation=cv2.INTER_AREA) for x in (out, native))
    # Shrunk back, the output is the small frame's stylization (what the model drew; 2-6 levels off
    # where the full frame's detail saturates), far from the native full-size look (24-31 levels) ...
    assert np.abs(shrunk.astype(np.int16) - small_out).mean() < 8.0
    assert np.abs(native_shrunk.astype(np.int16) - small_out).mean() > 15.0
    # ... and sharp: not the small one merely blown up.
    blown_up = cv2.resize(small_out, (640, 427), interpolation=cv2.INTER_LINEAR)
    sharpness = [cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.CV_32F).var() for x in (out, blown_up)]
    assert sharpness[0] > 2.0 * sharpness[1]


def test_a_model_of_fixed_size_refuses_a_texture_scale(tmp_path):
    from test_runtime_stylizer import invert_255_fixed_224

    backend = OnnxRuntimeBackend(invert_255_fixed_224(tmp_path), threads=1)
    with pytest.raises(BadInputError, match="needs a model that takes any frame size; this one takes 224x224"):
        Stylizer(backend, texture_scale=2.0)
    assert Stylizer(backend).texture_scale == 1.0


def test_the_anchor_keeps_the_grid_at_the_full_frames_pixel(scaled):
    from test_grid_anchor import CollectSinkStandIn, JitteringCameraStandIn

    assert scaled.anchor_grid == 16 and scaled.anchored_model_size(320, 240) == (168, 128)
    photo = held_out_photos()["flower"]
    offsets = jitter_offsets(10, seed=5)
    frames = jittered_frames(photo, offsets, seed=6)
    scaled.controls = style(scaled, "hatching")
    results = {}
    for anchored in (True, False):
        sink = CollectSinkStandIn()
        config = PipelineConfig(progress=False, warm_up=False, grid_anchor=anchored)
        StreamRunner(scaled, JitteringCameraStandIn(frames), sink, config).run()
        results[anchored] = shift_flicker_ratio(frames, np.stack(sink.frames), offsets)
    # measured 1.17 anchored / 2.83 frame by frame (the INT8 fine-tuned weights redraw less texture on a
    # shift; 2.9x before); an anchor on the shrunk frame's grid gave 1.8-3.3 anchored
    assert results[True] < 1.7 and results[False] > 2 * results[True], results


def test_the_texture_scale_flag_reaches_the_stylizer_and_bad_values_exit_2(tmp_path):
    from test_runtime_cli import _error_line, run_cli

    args = build_parser().parse_args(["run", "--input", "x.mp4", "--output", "y.mp4", "--texture-scale", "2.5"])
    assert run_config(args).style.texture_scale == 2.5
    result = run_cli("run", "--input", "x.png", "--output", tmp_path / "y.png", "--texture-scale", "0.5",
                     "--no-display")
    assert result.returncode == 2
    assert "--texture-scale must be a number from 1 to 16 (got 0.5)" in _error_line(result)


def test_stylize_rt_run_at_texture_scale_2_writes_the_full_size(tmp_path):
    from test_runtime_cli import run_cli

    photo = held_out_photos()["china"]
    cv2.imwrite(str(tmp_path / "china.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    result = run_cli("run", "--input", tmp_path / "china.png", "--output", tmp_path / "out.png", "--style", "waves",
                     "--texture-scale", "2", "--no-display", timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    out = cv2.imread(str(tmp_path / "out.png"))
    assert out.shape == photo.shape and np.abs(out.astype(np.int16) - photo[..., ::-1]).mean() > 10


def test_texture_scale_benchmark_times_each_scale_and_renders_its_section(tmp_path):
    out = tmp_path / "texture.json"
    proc = subprocess.run([sys.executable, "-m", "stylize_rt.benchmarks.texture_scale", "--sizes", "128x96",
                           "--scales", "1,2", "--precision", "fp32", "--frames", "3", "--threads", "1",
                           "--json-out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    rows = result["results"]["fp32"]["128x96"]["scales"]
    assert rows["1"]["model_size"] == "136x104" and rows["2"]["model_size"] == "72x56"  # padded for the anchor
    assert rows["1"]["over_first"] == 1.0 and all(r["median_ms"] > 0 for r in rows.values())
    assert "| fp32 | 128x96 | 2 | 72x56 |" in proc.stdout
    page = "\n".join(texture_rows(result))
    assert "## Texture scale" in page and "--precision fp32 --sizes 128x96 --scales 1,2 --frames 3" in page
    assert texture_rows(None) == []
