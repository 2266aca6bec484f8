"""Keeps a generator's sampling grid fixed to the scene while the camera moves.

A generator that downsamples by 8 (space-to-depth, then two stride-2 convs) draws its texture
on an 8-px grid that starts at the frame's top-left corner. When the camera moves by 1 px the
scene slides against that grid and the texture is drawn anew: shift flicker (docs/MODELS.md,
"Shift flicker"). Shifting a frame by a whole multiple of the grid shifts the output exactly,
so padding each frame at its top-left by ``(-scene motion) mod grid`` px keeps every scene
point at the same grid phase, and the stylizer crops the pad off again
(``Stylizer.stylize_batch(..., grid_offsets=)``).

The motion is the global translation between consecutive frames, by phase correlation
(``cv2.phaseCorrelate``) on the centre of a half-size luma, rounded to whole pixels. A weak
correlation peak (a cut, a flat or noisy scene) moves nothing, so a still camera keeps its
grid through sensor noise. Rotation, zoom and objects that move on their own are not
corrected; they flicker as they did.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from stylize_rt.sizes import grid_padded_size

MIN_RESPONSE = 0.2  # phase-correlation peak: about 1.0 for a shifted scene, 0.03 for unrelated frames
MAX_SIDE = 256  # the correlation runs on at most this many px a side (the half-size luma's centre); even
HALF_SIZE_FROM = 128  # frames with a shorter side than this are correlated at full size


@dataclass
class GridAnchor:
    """One stream's grid anchor: ``offset(frame)`` for each frame, in order."""

    grid: int  # the generator's grid in px (its ``stylize_rt.grid_px`` metadata)
    min_response: float = MIN_RESPONSE
    _previous: np.ndarray | None = field(default=None, repr=False)
    _window: np.ndarray | None = field(default=None, repr=False)
    _scale: int = field(default=1, repr=False)
    _position: np.ndarray = field(default_factory=lambda: np.zeros(2, np.int64), repr=False)  # scene motion (y, x)

    def __post_init__(self) -> None:
        if int(self.grid) < 2:
            raise ValueError(f"a grid anchor needs a grid of at least 2 px, got {self.grid}")
        self.grid = int(self.grid)

    def offset(self, frame: np.ndarray) -> tuple[int, int]:
        """The (top, left) pad in px for this HWC RGB uint8 frame, given the frames before it."""
        small = self._luma(frame)
        if self._previous is not None and self._previous.shape == small.shape:
            motion = self.motion(self._previous, small)
            if motion is not None:
                self._position = (self._position + motion) % self.grid
        self._previous = small
        top, left = (-self._position) % self.grid
        return int(top), int(left)

    def motion(self, previous: np.ndarray, current: np.ndarray) -> np.ndarray | None:
        """Whole-pixel (dy, dx) the scene moved between two lumas from ``_luma``; None when unsure."""
        if self._window is None or self._window.shape != current.shape:
            self._window = cv2.createHanningWindow(current.shape[::-1], cv2.CV_32F)
        (dx, dy), response = cv2.phaseCorrelate(previous, current, self._window)
        if not response >= self.min_response:  # also catches NaN
            return None
        return np.rint(np.array([dy, dx]) * self._scale).astype(np.int64)

    def _luma(self, frame: np.ndarray) -> np.ndarray:
        """The frame's centre as float32 luma, at half size for frames of ``HALF_SIZE_FROM`` px or more:
        at most ``MAX_SIDE`` px a side after scaling, so the cost does not grow with the frame."""
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) frame, got shape {tuple(frame.shape)}")
        h, w = frame.shape[:2]
        self._scale = scale = 2 if min(h, w) >= HALF_SIZE_FROM else 1
        # Sides OpenCV's DFT takes as they are, and even: phaseCorrelate pads each side to
        # getOptimalDFTSize, and an odd padded side (222 -> 225) biases the shift by half a pixel.
        side_h, side_w = _dft_side(min(h // scale, MAX_SIDE)), _dft_side(min(w // scale, MAX_SIDE))
        y0, x0 = (h - side_h * scale) // 2, (w - side_w * scale) // 2
        centre = np.ascontiguousarray(frame[y0 : y0 + side_h * scale, x0 : x0 + side_w * scale])
        gray = cv2.cvtColor(centre, cv2.COLOR_RGB2GRAY)
        if scale == 2:  # an exact 2x2 box filter: the crop is twice the output size
            gray = cv2.resize(gray, (side_w, side_h), interpolation=cv2.INTER_AREA)
        return gray.astype(np.float32)


def _dft_side(n: int) -> int:
    """The largest even side <= ``n`` that OpenCV's DFT takes without padding."""
    for m in range(n - n % 2, 1, -2):
        if cv2.getOptimalDFTSize(m) == m:
            return m
    return n


def pad_to_grid(frame: np.ndarray, offset: tuple[int, int], grid: int) -> np.ndarray:
    """``frame`` padded by ``offset`` px at the top-left and to ``grid_padded_size`` at the bottom-right,
    with its own pixels mirrored (reflect, the edge row not repeated). Repeated edge pixels move the
    instance norms' statistics more as the offset changes: shift flicker through the anchor on the
    held-out photos was 0.38-0.65 with them and 0.36-0.63 mirrored at texture scale 1, 1.23-1.53
    and 1.18-1.41 at scale 2 (same run, docs/MODELS.md)."""
    h, w = frame.shape[:2]
    top, left = offset
    if not (0 <= top < grid and 0 <= left < grid):
        raise ValueError(f"grid offset {offset} outside 0..{grid - 1}")
    wp, hp = grid_padded_size(w, h, grid)
    return cv2.copyMakeBorder(frame, top, hp - h - top, left, wp - w - left, cv2.BORDER_REFLECT_101)


__all__ = ["GridAnchor", "pad_to_grid", "MIN_RESPONSE"]
