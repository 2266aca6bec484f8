"""``stylize-rt demo``: a sample clip from photos that ship with scikit-image, stylized end to end.

The clip is written as a real H.264 .mp4 with a generated audio track first, and then
stylized through the same objects that ``stylize-rt run --input clip.mp4 --output out.mp4``
builds (one ``RunConfig`` through ``session.open_run``), so the demo exercises decoding, the
threaded pipeline, the model, encoding and carrying the audio over. Camera moves (slow pans
and zooms) give the frames the motion a style model meets in video.

With a multi-style model (the embedded default) the demo also shows the styles: a contact
sheet of the held-out photos (scikit-learn's china and flower, never trained on) in every
style, a blend strip between two styles, and the clip starts in one style and blends into
another across its length (a ``--style-timeline``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylize_rt.errors import MissingDependencyError
from stylize_rt.fileio import check_writable_dir
from stylize_rt.imageio import write_image
from stylize_rt.runtime.av_audio import PcmAudio
from stylize_rt.runtime.frames import resize
from stylize_rt.runtime.pipeline import PipelineConfig
from stylize_rt.runtime.session import ModelChoice, RunConfig, StyleChoice, describe_model, open_run, open_stylizer
from stylize_rt.runtime.sinks import FrameInfo, VideoFileSink
from stylize_rt.runtime.sources import VideoFileSource
from stylize_rt.runtime.style_controls import StyleControls

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
HELD_OUT = ("china.jpg", "flower.jpg")
BLEND_PAIR = ("mosaic", "waves")  # the blend strip's and the clip's two styles, where the model has them
BLEND_STEPS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
CELL_HEIGHT = 200


@dataclass
class DemoResult:
    input_path: Path
    output_path: Path
    side_by_side_path: Path
    frames: int
    size: tuple[int, int]
    seconds: float
    fps: float
    model_fps: float
    model: str  # which model, backend and IO convention ran
    styles_sheet_path: Path | None = None  # multi-style models: held-out photos x styles
    blend_strip_path: Path | None = None  # multi-style models: a blend between two styles
    timeline: str | None = None  # multi-style models: the clip's style timeline


def sample_photos() -> list[np.ndarray]:
    """The RGB photos bundled inside scikit-image's wheel (no download)."""
    try:
        from skimage import data  # the [demo] extra
    except ImportError:
        raise MissingDependencyError(
            "the demo clip is made from scikit-image's sample photos: pip install 'stylize-rt[demo]'"
        ) from None
    return [np.ascontiguousarray(getattr(data, name)()[..., :3]) for name in PHOTOS]


def _camera_move(photo: np.ndarray, t: float, shot: int, width: int, height: int) -> np.ndarray:
    """One frame of a pan + zoom over ``photo``; ``t`` in [0, 1] runs through the shot."""
    ph, pw = photo.shape[:2]
    aspect = width / height
    # Largest window of the output's aspect that fits, then zoom in 1.0x -> 1.35x (or out).
    base_w = min(pw, ph * aspect)
    zoom = 1.0 + 0.35 * (t if shot % 2 == 0 else 1.0 - t)
    win_w, win_h = base_w / zoom, base_w / zoom / aspect
    ease = 0.5 - 0.5 * np.cos(np.pi * t)
    direction = 1 if shot % 2 == 0 else -1
    cx = pw / 2 + direction * (ease - 0.5) * (pw - win_w)
    cy = ph / 2 + 0.25 * (ease - 0.5) * (ph - win_h)
    x0 = int(np.clip(cx - win_w / 2, 0, pw - win_w))
    y0 = int(np.clip(cy - win_h / 2, 0, ph - win_h))
    crop = photo[y0 : y0 + int(win_h), x0 : x0 + int(win_w)]
    return resize(np.ascontiguousarray(crop), width, height)


def sample_frames(frames: int, width: int, height: int):
    """Yields ``frames`` RGB frames: one shot per photo, cut evenly."""
    photos = sample_photos()
    per_shot = max(1, -(-frames // len(photos)))
    for i in range(frames):
        shot = min(i // per_shot, len(photos) - 1)
        t = (i - shot * per_shot) / max(1, per_shot - 1)
        yield _camera_move(photos[shot], min(t, 1.0), shot, width, height)


def sample_audio(frames: int, fps: float, shots: int = len(PHOTOS), rate: int = 48000) -> PcmAudio:
    """A stereo tone per shot (A4, C#5, E5, A5), faded at each cut: the audio path gets real
    sound whose changes line up with the picture's cuts, so a drift is audible."""
    per_shot = max(1, -(-frames // shots))
    total = int(round(frames / fps * rate))
    t = np.arange(total) / rate
    shot = np.minimum((t * fps // per_shot).astype(int), shots - 1)
    notes = np.array([440.0, 554.37, 659.25, 880.0])[shot % 4]
    in_shot = (t * fps - shot * per_shot) / fps
    fade = np.clip(np.minimum(in_shot, per_shot / fps - in_shot) / 0.05, 0, 1)
    tone = 0.2 * np.sin(2 * np.pi * notes * t) * fade
    return PcmAudio(np.stack([tone, 0.8 * tone]).astype(np.float32), rate)


def write_sample_clip(path: Path, frames: int, width: int, height: int, fps: float) -> Path:
    """The sample clip as H.264 with its generated audio track (AAC)."""
    sink = VideoFileSink(path, fps, audio=sample_audio(frames, fps))
    try:
        for i, frame in enumerate(sample_frames(frames, width, height)):
            sink.write(frame, FrameInfo(i, time.perf_counter()))
    finally:
        sink.close()
    return path


def side_by_side(input_path: Path, output_path: Path, png_path: Path, rows: int = 4) -> Path:
    """A PNG of ``rows`` frames spread over the clip: original | stylized, read back from both files."""
    def read_all(path: Path) -> list[np.ndarray]:
        source = VideoFileSource(path)
        frames = []
        try:
            while (frame := source.read()) is not None:
                frames.append(frame)
            return frames
        finally:
            source.close()

    originals, stylized = read_all(input_path), read_all(output_path)
    count = min(len(originals), len(stylized))
    picks = sorted({int(round(i)) for i in np.linspace(0, count - 1, min(rows, count))})
    gap = 4
    lines = []
    for i in picks:
        a, b = originals[i], stylized[i]
        if b.shape != a.shape:
            b = resize(b, a.shape[1], a.shape[0])
        lines.append(np.concatenate([a, np.full((a.shape[0], gap, 3), 255, np.uint8), b], axis=1))
        lines.append(np.full((gap, lines[-1].shape[1], 3), 255, np.uint8))
    write_image(png_path, np.concatenate(lines[:-1], axis=0))
    return png_path


def held_out_photos() -> list[np.ndarray]:
    """scikit-learn's two bundled photos (china, flower): no embedded model was trained on them."""
    try:
        from sklearn.datasets import load_sample_image  # the [demo] extra
    except ImportError:
        raise MissingDependencyError("the demo's style sheet uses scikit-learn's sample photos: "
                                     "pip install 'stylize-rt[demo]'") from None
    return [load_sample_image(name) for name in HELD_OUT]


def _label(image: np.ndarray, text: str) -> np.ndarray:
    import cv2  # a runtime dependency; only the sheets draw text

    out = np.ascontiguousarray(image).copy()
    cv2.rectangle(out, (0, 0), (min(out.shape[1], 9 * len(text) + 8), 22), (255, 255, 255), -1)
    cv2.putText(out, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def _grid(rows: list[list[np.ndarray]], gap: int = 4) -> np.ndarray:
    lines = []
    for row in rows:
        cells = []
        for cell in row:
            cells += [cell, np.full((cell.shape[0], gap, 3), 255, np.uint8)]
        lines += [np.concatenate(cells[:-1], axis=1)]
        lines += [np.full((gap, lines[-1].shape[1], 3), 255, np.uint8)]
    return np.concatenate(lines[:-1], axis=0)


def _cell(photo: np.ndarray) -> np.ndarray:
    h, w = photo.shape[:2]
    return resize(photo, int(round(w * CELL_HEIGHT / h)), CELL_HEIGHT)


def blend_pair(styles: list[str]) -> tuple[str, str]:
    return BLEND_PAIR if all(s in styles for s in BLEND_PAIR) else (styles[0], styles[1])


def style_pictures(stylizer, output_dir: Path) -> tuple[Path, Path]:
    """Contact sheet (held-out photos x every style) and a blend strip between two styles, as PNGs."""
    styles = stylizer.styles
    photos = held_out_photos()  # stylized at full size (640x427), then shrunk for the sheet

    def styled(photo: np.ndarray, weights) -> np.ndarray:
        return _cell(stylizer(photo, StyleControls(tuple(weights))))

    rows = []
    for photo in photos:
        row = [_label(_cell(photo), "input")]
        for i, name in enumerate(styles):
            row.append(_label(styled(photo, [1.0 if j == i else 0.0 for j in range(len(styles))]), name))
        rows.append(row)
    sheet = write_image(output_dir / "styles_sheet.png", _grid(rows))
    a, b = (styles.index(n) for n in blend_pair(styles))
    strip = [_label(_cell(photos[0]), "input")]
    for t in BLEND_STEPS:
        weights = [0.0] * len(styles)
        weights[a] += 1.0 - t
        weights[b] += t
        strip.append(_label(styled(photos[0], weights), f"{styles[b] if t else styles[a]} {t:.1f}"))
    blend = write_image(output_dir / "blend_strip.png", _grid([strip]))
    return sheet, blend


def run_demo(output_dir: Path, frames: int, size: tuple[int, int], fps: float, model: ModelChoice | None = None,
             batch: int = 1, progress: bool = True) -> DemoResult:
    """Write the sample clip, stylize it as ``run --input input.mp4 --output stylized.mp4`` would
    (multi-style models: with a style timeline, after the style sheet and blend strip)."""
    check_writable_dir(output_dir)
    width, height = size
    model = model or ModelChoice()
    sheet = blend = timeline = None
    stylizer = open_stylizer(model)
    try:
        if stylizer.multi_style and len(stylizer.styles) > 1:
            sheet, blend = style_pictures(stylizer, output_dir)
            a, b = blend_pair(stylizer.styles)
            timeline = f"{a}@0,{b}@{frames / fps:.3f}"  # the clip starts in one style and ends in the other
    finally:
        stylizer.close()
    input_path = write_sample_clip(output_dir / "input.mp4", frames, width, height, fps)
    output_path = output_dir / "stylized.mp4"
    config = RunConfig(model=model, input=str(input_path), output=str(output_path), display=False,
                       pipeline=PipelineConfig(batch=batch, progress=progress), style=StyleChoice(timeline=timeline))
    with open_run(config) as session:
        stats = session.run()
        description = describe_model(config.model, session.stylizer)
    png = side_by_side(input_path, output_path, output_dir / "side_by_side.png")
    return DemoResult(input_path, output_path, png, stats.frames_out, size, stats.wall_s, stats.fps, stats.model_fps,
                      description, sheet, blend, timeline)


def print_result(result: DemoResult) -> None:
    w, h = result.size
    print(f"model: {result.model}")
    print(f"stylized {result.frames} frames at {w}x{h} in {result.seconds:.2f} s: "
          f"{result.fps:.1f} frames/s end to end (model alone {result.model_fps:.1f} frames/s)")
    print(f"input clip:   {result.input_path}")
    print(f"stylized:     {result.output_path}")
    print(f"side by side: {result.side_by_side_path}")
    if result.styles_sheet_path is not None:
        print(f"styles sheet: {result.styles_sheet_path}  (held-out photos x styles)")
        print(f"blend strip:  {result.blend_strip_path}")
        print(f"clip styles:  --style-timeline {result.timeline}")
    sys.stdout.flush()
