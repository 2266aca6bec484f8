"""Style controls through the Python API and the CLI, on real ONNX Runtime sessions (issue 13 item 3).

The multi-style graph here is a stand-in following the graph contract (tests/style_controls_stand_in.py);
the exported generator's own graphs are tested against the same contract in the export tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from style_controls_stand_in import GAINS, STYLES, multi_style_stand_in
from test_runtime_helpers import read_video, write_video

from stylize_rt.errors import BadInputError
from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend
from stylize_rt.runtime.style_controls import (
    StyleControls,
    StyleTimeline,
    apply_controls,
    apply_style_key,
    one_hot,
    parse_mix,
)
from stylize_rt.runtime.stylizer import Stylizer

pytest.importorskip("onnx")


def frame(h=24, w=32, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(30, 220, (h, w, 3)).astype(np.uint8)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi")
    return {"full": multi_style_stand_in(root / "multi.onnx"),
            "style_only": multi_style_stand_in(root / "style_only.onnx", with_controls=False)}


def natural_frame(h=48, w=64) -> np.ndarray:
    """Photo-like colour statistics: smooth, moderately saturated (random RGB noise is all edge of gamut)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grey = 90 + 80 * (xx / w)
    tint = np.stack([30 * np.sin(yy / 9), 20 * np.cos(xx / 11), -25 * np.sin((xx + yy) / 13)], -1)
    return np.clip(grey[..., None] + tint, 0, 255).astype(np.uint8)


def chroma(rgb: np.ndarray) -> np.ndarray:
    from style_controls_stand_in import TO_YCC

    return (rgb.astype(np.float32) @ TO_YCC.T)[..., 1:]


def test_styles_come_from_the_metadata_and_one_hot_picks_one(stand_in):
    stylizer = Stylizer(OnnxRuntimeBackend(stand_in["full"], threads=1))
    assert stylizer.styles == STYLES and stylizer.multi_style
    x = frame()
    for i, name in enumerate(STYLES):
        out = stylizer(x, StyleControls(one_hot(STYLES, name)))
        expected = np.rint(np.clip(x.astype(np.float32) * GAINS[i], 0, 255)).astype(np.uint8)
        assert np.abs(out.astype(int) - expected).max() <= 1


def test_blends_are_monotone_between_two_styles(stand_in):
    stylizer = Stylizer(OnnxRuntimeBackend(stand_in["full"], threads=1))
    x = frame()
    red = stylizer(x, StyleControls(one_hot(STYLES, "red"))).astype(float)
    distances = []
    for a in np.linspace(0, 1, 6):
        out = stylizer(x, StyleControls(parse_mix(STYLES, f"red={1 - a},blue={a}"))).astype(float)
        distances.append(np.abs(out - red).mean())
    assert distances[0] < 0.5 and all(b >= a - 1e-6 for a, b in zip(distances, distances[1:]))


def test_strength_zero_is_the_input_exactly_and_strength_blends(stand_in):
    x = frame(seed=3)
    for model in stand_in.values():
        stylizer = Stylizer(OnnxRuntimeBackend(model, threads=1))
        assert np.array_equal(stylizer(x, StyleControls(strength=0.0)), x)
        full = stylizer(x, StyleControls(strength=1.0)).astype(float)
        half = stylizer(x, StyleControls(strength=0.5)).astype(float)
        assert np.abs(half - (x + full) / 2).max() <= 1.0


def test_preserve_color_keeps_the_inputs_chroma(stand_in, tiny_onnx):
    x = natural_frame()
    for model in (stand_in["full"], stand_in["style_only"], tiny_onnx["uint8_nhwc"]):
        stylizer = Stylizer(OnnxRuntimeBackend(model, threads=1))
        out = stylizer(x, StyleControls(weights=None, preserve_color=True))
        error = np.abs(chroma(out) - chroma(x))
        # within rounding, except where the style's luma with the input's chroma leaves the RGB gamut
        assert np.median(error) <= 0.5 and np.mean(error <= 3.0) >= 0.9, (model, np.percentile(error, [50, 90]))


def test_in_graph_controls_match_the_host_arithmetic(stand_in):
    """The graph that takes strength/colour and the host path give the same pixels (within a level)."""
    x = frame(seed=7)[None]
    graph = Stylizer(OnnxRuntimeBackend(stand_in["full"], threads=1))
    plain = Stylizer(OnnxRuntimeBackend(stand_in["style_only"], threads=1))
    controls = StyleControls(one_hot(STYLES, "blue"), strength=0.7, preserve_color=True)
    styled = plain.stylize_batch(x, StyleControls(one_hot(STYLES, "blue")))
    host = apply_controls(x, styled, 0.7, True)
    assert np.abs(graph.stylize_batch(x, controls).astype(int) - host.astype(int)).max() <= 1
    assert np.abs(plain.stylize_batch(x, controls).astype(int) - host.astype(int)).max() == 0


def test_per_frame_controls_in_one_batch(stand_in):
    stylizer = Stylizer(OnnxRuntimeBackend(stand_in["full"], threads=1))
    x = np.stack([frame(seed=1)] * 3)
    controls = [StyleControls(one_hot(STYLES, i)) for i in range(3)]
    batch = stylizer.stylize_batch(x, controls)
    for i in range(3):
        assert np.array_equal(batch[i], stylizer(x[i], controls[i]))


def test_bad_controls_are_one_line_errors(stand_in):
    stylizer = Stylizer(OnnxRuntimeBackend(stand_in["full"], threads=1))
    with pytest.raises(BadInputError, match="no style 'mona'"):
        one_hot(stylizer.styles, "mona")
    with pytest.raises(BadInputError, match="strength"):
        StyleControls(strength=1.5)
    with pytest.raises(BadInputError, match="not all zero"):
        parse_mix(STYLES, "red=0,blue=0")
    with pytest.raises(BadInputError, match="2 style weights"):
        stylizer.controls = StyleControls((0.5, 0.5))


def test_window_keys_change_the_controls():
    c = StyleControls(one_hot(STYLES, 0))
    assert apply_style_key("2", c, STYLES).weights == one_hot(STYLES, 1)
    assert apply_style_key("n", c, STYLES).weights == one_hot(STYLES, 1)
    assert apply_style_key("p", c, STYLES).weights == one_hot(STYLES, 2)
    b = apply_style_key("b", c, STYLES)
    assert b.weights == pytest.approx((0.75, 0.25, 0.0))
    assert apply_style_key("-", c, STYLES).strength == pytest.approx(0.9)
    assert apply_style_key("k", c, STYLES).preserve_color is True
    assert apply_style_key("x", c, STYLES) is None


def test_a_control_change_applies_to_the_next_frame_without_a_stall(stand_in):
    """Switching style between frames costs nothing measurable next to a frame (no rebuild, no re-open)."""
    stylizer = Stylizer(OnnxRuntimeBackend(stand_in["full"], threads=1))
    x = frame(240, 320)
    stylizer(x)
    same, switched = [], []
    for i in range(20):
        t0 = time.perf_counter()
        stylizer(x)
        same.append(time.perf_counter() - t0)
        stylizer.controls = StyleControls(one_hot(STYLES, i % 3))
        t0 = time.perf_counter()
        stylizer(x)
        switched.append(time.perf_counter() - t0)
    assert np.median(switched) < np.median(same) * 3 + 0.005


def test_timeline_interpolates_between_keyframes():
    timeline = StyleTimeline.parse(STYLES, "red@0,blue@4,grey@8")
    assert timeline.at(0) == one_hot(STYLES, "red") and timeline.at(20) == one_hot(STYLES, "grey")
    assert timeline.at(2) == pytest.approx((0.5, 0.5, 0.0))
    with pytest.raises(BadInputError):
        StyleTimeline.parse(STYLES, "red@0")


def run_cli(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.run([sys.executable, "-m", "stylize_rt", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env, stdin=subprocess.DEVNULL)


def test_cli_style_flags(stand_in, tmp_path):
    src = write_video(tmp_path / "in.mp4", 8, width=64, height=48)
    outs = {}
    for name, flags in {"blue": ["--style", "blue"], "mix": ["--mix", "red=0.5,blue=0.5"],
                        "zero": ["--strength", "0"], "keep": ["--style", "1", "--preserve-color"]}.items():
        out = tmp_path / f"{name}.mp4"
        proc = run_cli("run", "--engine", stand_in["full"], "--input", src, "--output", out, "--no-progress", *flags)
        assert proc.returncode == 0, proc.stderr
        outs[name] = np.stack(read_video(out)).astype(float)
    source = np.stack(read_video(src)).astype(float)
    assert np.abs(outs["zero"] - source).mean() < 3  # codec noise only
    assert outs["blue"][..., 2].mean() > outs["blue"][..., 0].mean() + 20
    assert np.abs(outs["keep"][..., 0].mean() - outs["keep"][..., 2].mean()) < \
        np.abs(outs["blue"][..., 0].mean() - outs["blue"][..., 2].mean())
    bad = run_cli("run", "--engine", stand_in["full"], "--input", src, "--output", tmp_path / "x.mp4", "--style", "nope")
    assert bad.returncode == 2 and "no style 'nope'" in bad.stderr


def test_cli_style_timeline_blends_across_the_clip(stand_in, tmp_path):
    src = write_video(tmp_path / "in.mp4", 25, fps=25.0, width=64, height=48)
    out = tmp_path / "timeline.mp4"
    proc = run_cli("run", "--engine", stand_in["full"], "--input", src, "--output", out, "--no-progress",
                   "--style-timeline", "red@0,blue@0.96")
    assert proc.returncode == 0, proc.stderr
    frames = np.stack(read_video(out)).astype(float)
    stylizer = Stylizer(OnnxRuntimeBackend(stand_in["full"], threads=1))
    timeline = StyleTimeline.parse(STYLES, "red@0,blue@0.96")
    sources = read_video(src)
    for i in (0, 6, 12, 18, 24):  # each frame in the style its time in the clip asks for
        expected = stylizer(sources[i], StyleControls(timeline.at(i / 25.0))).astype(float)
        assert np.abs(frames[i] - expected).mean() < 4, i  # codec noise only
    assert frames[0][..., 0].mean() > frames[0][..., 2].mean() + 20
    assert frames[24][..., 2].mean() > frames[24][..., 0].mean() + 20
