"""Small frame helpers shared by sources, sinks and the stylizer: resizing and colour order.

Frames everywhere in the runtime are numpy HWC uint8 RGB; OpenCV speaks BGR, so the
conversion happens once, at the edge (sources and sinks), never in the middle.
"""

from __future__ import annotations

import contextlib

import cv2
import numpy as np


def resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an HWC frame; area averaging when shrinking (no aliasing), bilinear when growing."""
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    shrinking = width * height < w * h
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def stack_frames(frames: list[np.ndarray]) -> np.ndarray:
    """Frames of one size as an NHWC batch; one contiguous frame becomes a batch without a copy (a
    1280x720 copy is 0.3-0.5 ms here, and the stream runner's model thread made four a frame)."""
    if len(frames) == 1 and frames[0].flags.c_contiguous:
        return frames[0][None]
    return np.stack(frames)


def bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    """OpenCV's BGR (or gray/BGRA) image -> contiguous RGB uint8."""
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def rgb_to_bgr(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)


def quiet_opencv() -> None:
    """OpenCV logs backend probing noise (``[ WARN:0] ...``) to stderr; our errors say it better."""
    with contextlib.suppress(AttributeError):  # very old builds
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
