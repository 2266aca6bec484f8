"""Window keys, overlays and the docs' embedding examples."""

from __future__ import annotations

import py_compile
import subprocess
import sys
from pathlib import Path

import numpy as np
from test_runtime_helpers import coded_frame, identity_onnx

from stylize_rt.runtime.caption_worker import Caption
from stylize_rt.runtime.overlay import ViewState, compose, split_view
from stylize_rt.runtime.window import handle_key

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


def test_window_keys_toggle_the_view():
    view = ViewState()
    assert handle_key(-1, view) is None and view == ViewState()
    handle_key(ord(" "), view)
    assert view.paused
    handle_key(ord("o"), view)
    handle_key(ord("c"), view)
    handle_key(ord("h"), view)
    assert view.split and not view.captions and view.hud
    assert handle_key(ord("s"), view) == "screenshot"
    handle_key(27, view)
    assert view.quit
    view = ViewState()
    handle_key(ord("q") | 0x100000, view)  # modifier bits from some GUI backends are masked off
    assert view.quit


def test_compose_draws_only_what_is_asked():
    original = np.full((90, 160, 3), 10, np.uint8)
    stylized = np.full((90, 160, 3), 200, np.uint8)
    assert compose(original, stylized, ViewState()) is stylized
    split = split_view(original, stylized)
    assert (split[:, :70] == 10).all() and (split[:, 90:] == 200).all()
    caption = Caption("a cat on a sofa", 3, 0.0, 0.1, 0.1)
    out = compose(original, stylized, ViewState(captions=True), caption)
    assert (out[:60] == 200).all() and (out[-20:] != 200).any()  # text band at the bottom only
    out = compose(original, stylized, ViewState(captions=False), caption)
    assert out is stylized
    out = compose(original, stylized, ViewState(hud=True), None, ["12.0 fps"])
    assert (out[:10] != 200).any() and (out[-10:] == 200).all()


def test_ffmpeg_pipe_example_runs(tmp_path):
    model = identity_onnx(tmp_path / "identity.onnx")
    frames = np.stack([coded_frame(i) for i in range(4)])
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "ffmpeg_pipe.py"), "--size", "64x48", "--engine", str(model)],
        input=frames.tobytes(), capture_output=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == frames.tobytes()


def test_gstreamer_example_compiles(tmp_path):
    py_compile.compile(str(EXAMPLES / "gstreamer_loop.py"), cfile=str(tmp_path / "g.pyc"), doraise=True)


def test_window_draws_readout_and_split_from_info_only():
    """Files get the plain stylized frame; the window composes its readout/split from FrameInfo."""
    from stylize_rt.runtime.overlay import readout_lines
    from stylize_rt.runtime.sinks import FrameInfo
    from stylize_rt.runtime.stats import RunStats

    original = np.full((90, 160, 3), 10, np.uint8)
    stylized = np.full((90, 160, 3), 200, np.uint8)
    info = FrameInfo(0, 0.0, original=original, stats=RunStats())
    lines = readout_lines(info.stats, 30.0)
    assert lines[0].startswith(" 30.0 fps") and lines[1] == "dropped 0"
    shown = compose(info.original, stylized, ViewState(hud=True, split=True, captions=False), None, lines)
    assert (shown[-10:, :70] == 10).all() and (shown[-10:, 90:] == 200).all() and (shown[:10] != 200).any()


def test_long_captions_wrap_inside_the_frame():
    from stylize_rt.runtime.overlay import _wrap

    lines = _wrap("a person in an orange suit stands in front of a rocket on a launch pad at dusk", 150, 0.35, 1)
    assert len(lines) >= 2
    import cv2

    for line in lines[:-1]:
        assert cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, 0.35, 1)[0][0] <= 150
