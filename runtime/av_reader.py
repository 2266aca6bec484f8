"""Decoding through PyAV: open a file or URL (NVDEC where asked and able), frames as upright RGB.

Frames are converted with the matrix and range the stream declares (a full-range phone clip
is not crushed), and turned the way the container's display matrix says (a portrait phone
clip comes out portrait, as players show it). ``--hwaccel cuda|auto`` decodes on NVDEC
through FFmpeg's CUDA device where the driver has one; when it cannot be opened the file is
decoded in software, with a one-line note.
"""

from __future__ import annotations

import sys

import av
import numpy as np
from av.codec.hwaccel import HWAccel

from stylize_rt.errors import first_line
from stylize_rt.runtime.codecs import nvidia_driver_present

RANGE_JPEG = 2


def _note(text: str) -> None:
    print(f"stylize-rt: note: {text}", file=sys.stderr)


def open_input(target, hwaccel: str = "auto", options: dict[str, str] | None = None,
               timeout: float | tuple[float, float] | None = None):
    """``av.open`` for reading, with NVDEC when ``hwaccel`` asks for it and it opens; else software."""
    kwargs = {"options": options or {}, "timeout": timeout}
    want = hwaccel == "cuda" or (hwaccel == "auto" and nvidia_driver_present())
    if want:
        try:
            return av.open(target, hwaccel=HWAccel("cuda", allow_software_fallback=True), **kwargs)
        except (av.error.FFmpegError, OSError, ValueError, RuntimeError) as exc:
            _note(f"--hwaccel {hwaccel}: NVDEC cannot decode here ({getattr(exc, 'strerror', None) or first_line(exc)}); "
                  "decoding in software")
    return av.open(target, **kwargs)


def frame_to_rgb(frame) -> np.ndarray:
    """A decoded frame as HxWx3 uint8 RGB, in the stream's colour range, turned upright."""
    kwargs = {}
    if frame.color_range == RANGE_JPEG and not frame.format.name.startswith("yuvj"):
        kwargs["src_color_range"] = "JPEG"
    rgb = frame.to_ndarray(format="rgb24", **kwargs)
    turns = round((frame.rotation or 0) / 90) % 4  # counterclockwise quarter turns, as players apply them
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


__all__ = ["frame_to_rgb", "open_input"]
