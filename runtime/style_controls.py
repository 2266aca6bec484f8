"""Style controls: which style (or blend of styles), how strongly, and whether to keep the colours.

A multi-style model takes them as graph inputs (``contract.INPUT_STYLE``/``INPUT_STRENGTH``/
``INPUT_PRESERVE_COLOR``), so one ONNX file or engine serves every style, mix and strength.
Strength and colour preservation also work on any single-style model: the ``Stylizer`` then
applies the same arithmetic to the model's output on the host. Controls can change between
any two frames; a :class:`StyleTimeline` changes them over a video's time.

- ``style``: weights over the model's styles; one-hot picks a style, convex weights blend
  them (Dumoulin et al. 2017's interpolation of conditional instance norm parameters).
- ``strength`` s: the output is ``input + s * (stylized - input)`` per pixel: 0 gives the
  input exactly, 1 the full style, and in between the style fades in.
- ``preserve_color``: the stylized frame's luma with the input's chroma (BT.601 YCbCr), so
  faces and skies keep their colours while the texture is the style's.
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass, field

import numpy as np

from stylize_rt.errors import BadInputError


@dataclass(frozen=True)
class StyleControls:
    """What to draw: style weights (None: the model's first style), strength, colour preservation."""

    weights: tuple[float, ...] | None = None
    strength: float = 1.0
    preserve_color: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise BadInputError(f"--strength must be in 0..1 (got {self.strength:g})")
        if self.weights is not None:
            w = np.asarray(self.weights, np.float64)
            if w.ndim != 1 or not len(w) or (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
                raise BadInputError(f"style weights must be non-negative and not all zero (got {self.weights})")

    def style_vector(self, count: int) -> np.ndarray:
        """The weights as a float32 vector of ``count`` styles, summing to 1."""
        if self.weights is None:
            w = np.zeros(count, np.float32)
            w[0] = 1.0
            return w
        if len(self.weights) != count:
            raise BadInputError(f"{len(self.weights)} style weights given, the model has {count} styles")
        w = np.asarray(self.weights, np.float32)
        return w / w.sum()


def style_index(styles: list[str], spec: str | int) -> int:
    """A style by name or 0-based index; a one-line error listing the styles otherwise."""
    text = str(spec).strip()
    if text.isdigit() and int(text) < len(styles):
        return int(text)
    if text in styles:
        return styles.index(text)
    raise BadInputError(f"no style {text!r} in this model (styles: {', '.join(styles) or 'none'})")


def one_hot(styles: list[str], spec: str | int) -> tuple[float, ...]:
    weights = [0.0] * len(styles)
    weights[style_index(styles, spec)] = 1.0
    return tuple(weights)


def parse_mix(styles: list[str], text: str) -> tuple[float, ...]:
    """``"mosaic=0.7,waves=0.3"`` (names or indices) -> weights over ``styles``."""
    weights = [0.0] * len(styles)
    for item in (part.strip() for part in text.split(",") if part.strip()):
        name, sep, value = item.partition("=")
        try:
            weight = float(value) if sep else 1.0
        except ValueError:
            raise BadInputError(f"--mix: bad weight in {item!r} (write NAME=WEIGHT, e.g. mosaic=0.7)") from None
        weights[style_index(styles, name)] += weight
    StyleControls(tuple(weights))  # checks them
    return tuple(weights)


@dataclass
class StyleTimeline:
    """Style weights over time: keyframes ``(seconds, weights)``, linear in between, held after
    the last. ``"mosaic@0,waves@4"``: pure mosaic at 0 s, blending into waves until 4 s."""

    times: list[float] = field(default_factory=list)
    weights: list[tuple[float, ...]] = field(default_factory=list)

    @classmethod
    def parse(cls, styles: list[str], text: str) -> StyleTimeline:
        keys: list[tuple[float, tuple[float, ...]]] = []
        for item in (part.strip() for part in text.split(",") if part.strip()):
            name, sep, when = item.rpartition("@")
            try:
                seconds = float(when)
            except ValueError:
                raise BadInputError(f"--style-timeline: bad time in {item!r} (write STYLE@SECONDS, "
                                    "e.g. mosaic@0,waves@4)") from None
            if not sep or seconds < 0:
                raise BadInputError(f"--style-timeline: {item!r} is not STYLE@SECONDS")
            keys.append((seconds, one_hot(styles, name)))
        if len(keys) < 2:
            raise BadInputError("--style-timeline needs at least two keyframes, e.g. mosaic@0,waves@4")
        keys.sort(key=lambda k: k[0])
        return cls([k[0] for k in keys], [k[1] for k in keys])

    def at(self, seconds: float) -> tuple[float, ...]:
        i = bisect.bisect_right(self.times, seconds)
        if i == 0:
            return self.weights[0]
        if i == len(self.times):
            return self.weights[-1]
        t0, t1 = self.times[i - 1], self.times[i]
        a = (seconds - t0) / (t1 - t0) if t1 > t0 else 1.0
        w0, w1 = np.asarray(self.weights[i - 1]), np.asarray(self.weights[i])
        return tuple(float(x) for x in (1 - a) * w0 + a * w1)


STRENGTH_STEP = 0.1
BLEND_STEP = 0.25


def apply_style_key(key: str, controls: StyleControls, styles: list[str]) -> StyleControls | None:
    """A window key's effect on the controls, or None when the key is not a style key.

    1-9 pick a style; n / p the next / previous one; b moves a quarter of the way from the
    current blend toward the next style; + / - change the strength by 0.1; k keeps the input's
    colours (toggle). (c, o, h, s, space, q are the window's own keys.)
    """
    count = len(styles)
    weights = np.asarray(controls.style_vector(count), np.float64)
    current = int(weights.argmax())
    if key.isdigit() and key != "0":
        index = int(key) - 1
        return dataclasses.replace(controls, weights=one_hot(styles, index)) if index < count else controls
    if key in ("n", "p"):
        index = (current + (1 if key == "n" else -1)) % count
        return dataclasses.replace(controls, weights=one_hot(styles, index))
    if key == "b":
        target = np.asarray(one_hot(styles, (current + 1) % count))
        mixed = (1 - BLEND_STEP) * weights + BLEND_STEP * target
        return dataclasses.replace(controls, weights=tuple(float(x) for x in mixed))
    if key in ("+", "=", "-"):
        step = STRENGTH_STEP if key in ("+", "=") else -STRENGTH_STEP
        return dataclasses.replace(controls, strength=round(min(1.0, max(0.0, controls.strength + step)), 3))
    if key == "k":
        return dataclasses.replace(controls, preserve_color=not controls.preserve_color)
    return None


# -- the host-side arithmetic (what multi-style graphs do inside) ---------------------------
_TO_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)
_FROM_YCC = np.linalg.inv(_TO_YCC).astype(np.float32)
LUMA_WEIGHTS = _TO_YCC[0]  # BT.601 luma of RGB: the one definition the runtime's luma arithmetic uses


def apply_controls(inputs: np.ndarray, stylized: np.ndarray, strength, preserve_color) -> np.ndarray:
    """What a multi-style graph does after the network, on uint8 NHWC frames (controls per frame):
    colour preservation (the stylized luma with the input's chroma, BT.601 YCbCr) where asked,
    then ``input + strength * (result - input)``, in float, rounded and clipped once at the end."""
    s = np.asarray(strength, np.float32).reshape(-1, 1, 1, 1)
    keep = np.asarray(preserve_color, bool).reshape(-1)
    if np.all(s >= 1.0) and not keep.any():
        return stylized
    x, y = inputs.astype(np.float32), stylized.astype(np.float32)
    if keep.any():
        ycc_in, ycc_out = x @ _TO_YCC.T, y @ _TO_YCC.T
        ycc_out[..., 1:] = ycc_in[..., 1:]
        y = np.where(keep[:, None, None, None], ycc_out @ _FROM_YCC.T, y)
    return np.rint(np.clip(x + s * (y - x), 0, 255)).astype(np.uint8)


__all__ = ["StyleControls", "StyleTimeline", "LUMA_WEIGHTS", "style_index", "one_hot", "parse_mix", "apply_style_key",
           "apply_controls"]
