"""Frame sizes as users write them: ``640x360``, ``720p``, and (for benchmarks) ``256`` for 256x256.

One grammar for every command (``run --size``, ``bench --sizes``, ``build-engine --shapes``),
always returned as (width, height): users and video tools say "1280x720", so the code does too.
"""

from __future__ import annotations

import math
import re

from stylize_rt.errors import BadInputError

# Frame size presets, (width, height): 16:9 landscape, the sizes cameras and video come in.
PRESETS: dict[str, tuple[int, int]] = {
    "240p": (426, 240),
    "360p": (640, 360),
    "480p": (854, 480),
    "540p": (960, 540),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "1440p": (2560, 1440),
    "2160p": (3840, 2160),
    "4k": (3840, 2160),
}
MIN_SIDE = 16  # the generator's smallest frame side
MAX_SIDE = 16384
MAX_TEXTURE_SCALE = 16.0  # --texture-scale: a 4000x3000 photo drawn at 250x188 is as coarse as it gets

_WXH = re.compile(r"(\d+)\s*[x*]\s*(\d+)")


def parse_size(text: str, what: str = "--size", minimum: int = MIN_SIDE, allow_square: bool = False) -> tuple[int, int]:
    """``"640x360"`` or ``"720p"`` (or ``"256"`` with ``allow_square``) -> (width, height).

    ``minimum`` is the smallest side accepted (engine profiles may go below a frame's 16 px).
    """
    key = str(text).strip().lower()
    if key in PRESETS:
        return PRESETS[key]
    match = _WXH.fullmatch(key)
    if match:
        width, height = int(match.group(1)), int(match.group(2))
    elif allow_square and key.isdigit():
        width = height = int(key)
    else:
        square = ", N for NxN" if allow_square else ""
        raise BadInputError(
            f"{what}: bad frame size {text!r}: use WIDTHxHEIGHT such as 1280x720{square}, "
            f"or a preset ({', '.join(PRESETS)})"
        )
    if min(width, height) < minimum:
        raise BadInputError(f"{what} {width}x{height} is below the minimum of {minimum} px per side")
    if max(width, height) > MAX_SIDE:
        raise BadInputError(f"{what} {width}x{height} is above the maximum of {MAX_SIDE} px per side")
    return width, height


def parse_sizes(text: str, what: str = "--sizes", allow_square: bool = True) -> list[tuple[int, int]]:
    """A comma list of sizes -> [(width, height), ...], at least one."""
    sizes = [parse_size(item, what, allow_square=allow_square) for item in str(text).split(",") if item.strip()]
    if not sizes:
        raise BadInputError(f"{what} is empty")
    return sizes


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """Processing size for ``--scale``: even sides (video codecs want them), at least MIN_SIDE."""
    if not 0.0 < scale <= 8.0:
        raise BadInputError(f"--scale must be in (0, 8] (got {scale})")
    w = max(MIN_SIDE, int(round(width * scale / 2)) * 2)
    h = max(MIN_SIDE, int(round(height * scale / 2)) * 2)
    return w, h


def texture_scaled_size(width: int, height: int, texture_scale: float) -> tuple[int, int]:
    """The size the generator sees under ``--texture-scale``: the frame shrunk by it, at least MIN_SIDE
    a side (never more than the frame). The style's texture comes out ``texture_scale`` times larger."""
    check_texture_scale(texture_scale)
    w = min(width, max(MIN_SIDE, round(width / texture_scale)))
    h = min(height, max(MIN_SIDE, round(height / texture_scale)))
    return w, h


def check_texture_scale(texture_scale: float) -> float:
    """``texture_scale`` when it is a number in [1, MAX_TEXTURE_SCALE]; a one-line error otherwise."""
    if not (isinstance(texture_scale, (int, float)) and math.isfinite(texture_scale)
            and 1.0 <= texture_scale <= MAX_TEXTURE_SCALE):
        raise BadInputError(f"--texture-scale must be a number from 1 to {MAX_TEXTURE_SCALE:g} (got {texture_scale})")
    return float(texture_scale)


def grid_padded_size(width: int, height: int, grid: int) -> tuple[int, int]:
    """(width, height) of a frame padded for the grid anchor (``runtime.grid_anchor``): room for any
    top/left offset below ``grid``, rounded up to the grid; the same for every offset, so a stream
    keeps one shape (and an engine profile knows the size it must take)."""
    return -(-(width + grid - 1) // grid) * grid, -(-(height + grid - 1) // grid) * grid


__all__ = ["PRESETS", "MIN_SIDE", "MAX_SIDE", "MAX_TEXTURE_SCALE", "parse_size", "parse_sizes", "scaled_size",
           "texture_scaled_size", "check_texture_scale", "grid_padded_size"]
