"""Small frame helpers shared by sources, sinks and the stylizer: sizes, resizing, colour order.

Frames everywhere in the runtime are numpy HWC uint8 RGB; OpenCV speaks BGR, so the
conversion happens once, at the edge (sources and sinks), never in the middle.
"""

from __future__ import annotations

import numpy as np

from stylize_rt.errors import BadInputError

MIN_SIDE = 16


def parse_size(text: str, what: str = "--size") -> tuple[int, int]:
    """``"640x360"`` -> ``(640, 360)`` (width, height); a clear error for anything else."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise BadInputError(f"{what} must be WIDTHxHEIGHT, e.g. 640x360 (got {text!r})") from None
    if width < MIN_SIDE or height < MIN_SIDE or width > 16384 or height > 16384:
        raise BadInputError(f"{what} {width}x{height} is out of range ({MIN_SIDE}..16384 per side)")
    return width, height


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """Processing size for ``--scale``: even sides (video codecs want them), at least MIN_SIDE."""
    if not 0.0 < scale <= 8.0:
        raise BadInputError(f"--scale must be in (0, 8] (got {scale})")
    w = max(MIN_SIDE, int(round(width * scale / 2)) * 2)
    h = max(MIN_SIDE, int(round(height * scale / 2)) * 2)
    return w, h


def resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an HWC frame; area averaging when shrinking (no aliasing), bilinear when growing."""
    import cv2

    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    shrinking = width * height < w * h
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    """OpenCV's BGR (or gray/BGRA) image -> contiguous RGB uint8."""
    import cv2

    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def rgb_to_bgr(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)


def quiet_opencv() -> None:
    """OpenCV logs backend probing noise (``[ WARN:0] ...``) to stderr; our errors say it better."""
    import cv2

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:  # very old builds
        pass
