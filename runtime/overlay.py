"""Drawing on output frames: the FPS/latency readout, the caption line, the split view.

``ViewState`` holds what the viewer toggled (window keys) and ``compose`` turns one
original + stylized pair into the frame that is shown or written. Drawing is done on a
copy, with OpenCV's built-in font (available in headless builds too).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stylize_rt.runtime.caption_worker import Caption
from stylize_rt.runtime.frames import resize
from stylize_rt.runtime.stats import RunStats


@dataclass
class ViewState:
    """What the output shows; window keys flip these while the pipeline runs."""

    hud: bool = False  # FPS / latency / dropped readout (window only)
    captions: bool = True  # newest caption with its age, when a captioner runs (all outputs)
    split: bool = False  # left half original, right half stylized (window only)
    paused: bool = False
    quit: bool = False


def _wrap(text: str, width_px: int, scale: float, thickness: int, max_lines: int = 3) -> list[str]:
    """Split ``text`` into lines that fit ``width_px`` (long captions must not run off the frame)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        if current and cv2.getTextSize(trial, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0] > width_px:
            lines.append(current)
            current = word
        else:
            current = trial
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [" ".join(lines[max_lines - 1 :])]
    return lines


def _text_block(frame: np.ndarray, lines: list[str], top: bool) -> None:
    if not lines:
        return
    h, w = frame.shape[:2]
    scale = max(0.35, min(1.0, w / 1280))
    thickness = 1 if scale < 0.7 else 2
    line_h = int(22 * scale) + 6
    max_lines = max(1, (h // 3 - 6) // line_h)  # never cover more than a third of the picture
    lines = [part for line in lines for part in _wrap(line, w - 12, scale, thickness, max_lines)][:max_lines]
    block_h = line_h * len(lines) + 6
    y0 = 0 if top else max(0, h - block_h)
    region = frame[y0 : y0 + block_h]
    region[:] = (region.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken behind the text
    for i, line in enumerate(lines):
        y = y0 + (i + 1) * line_h
        cv2.putText(frame, line, (6, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def split_view(original: np.ndarray, stylized: np.ndarray) -> np.ndarray:
    """Left half of the original beside the right half of the stylized frame, with a divider."""
    if original.shape != stylized.shape:
        original = resize(original, stylized.shape[1], stylized.shape[0])
    out = stylized.copy()
    half = out.shape[1] // 2
    out[:, :half] = original[:, :half]
    out[:, max(0, half - 1) : half + 1] = 255
    return out


def readout_lines(stats: RunStats | None, fps: float) -> list[str]:
    """The FPS / latency / model-time / dropped-frames readout of a running stream."""
    if stats is None:
        return [f"{fps:5.1f} fps"]
    latency = stats.stage("latency").samples
    model = stats.stage("model").samples
    return [
        f"{fps:5.1f} fps  latency {1000 * latency[-1] if latency else 0:5.1f} ms  "
        f"model {1000 * model[-1] if model else 0:5.1f} ms",
        f"dropped {stats.dropped_capture + stats.dropped_output}",
    ]


def compose(
    original: np.ndarray,
    stylized: np.ndarray,
    view: ViewState,
    caption: Caption | None = None,
    hud_lines: list[str] | None = None,
) -> np.ndarray:
    """The frame to show or write; returns ``stylized`` itself when nothing is drawn."""
    draw_caption = caption is not None and view.captions and caption.text
    draw_hud = view.hud and hud_lines
    if not (view.split or draw_caption or draw_hud):
        return stylized
    out = split_view(original, stylized) if view.split else stylized.copy()
    if draw_hud:
        _text_block(out, hud_lines, top=True)
    if draw_caption:
        _text_block(out, [f"{caption.text}  ({caption.age_s():.1f} s ago)"], top=False)
    return out
