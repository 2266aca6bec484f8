"""Helpers for the video tests: inputs made by FFmpeg itself, outputs read back by ffprobe.

ffprobe (Debian's ffmpeg, installed by ``make test`` where apt-get and root are available)
is a reader independent of the PyAV build the runtime writes with; tests that need it skip
with the reason where it is missing.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

NO_FFMPEG = "ffmpeg/ffprobe not installed (make test installs Debian's ffmpeg where apt-get and root are available)"


def need_ffmpeg() -> None:
    if shutil.which("ffprobe") is None or shutil.which("ffmpeg") is None:
        pytest.skip(NO_FFMPEG)


def ffprobe(path: Path, frames: bool = False) -> dict:
    """ffprobe's view of a file: streams, format, and (``frames``) every video frame's timestamp."""
    need_ffmpeg()
    args = ["ffprobe", "-v", "error", "-of", "json", "-show_streams", "-show_format"]
    if frames:
        args += ["-select_streams", "v:0", "-show_entries", "frame=pts_time,duration_time"]
    result = subprocess.run([*args, str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def stream(info: dict, kind: str) -> dict | None:
    return next((s for s in info["streams"] if s["codec_type"] == kind), None)


def frame_times(info: dict) -> list[float]:
    return [float(f["pts_time"]) for f in info.get("frames", []) if "pts_time" in f]


def ffmpeg(*args: str) -> None:
    """Run the ffmpeg CLI (to make inputs the way a user's tools would)."""
    need_ffmpeg()
    result = subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def clip_with_audio(path: Path, seconds: float = 2.0, size: str = "160x120", rate: int = 25,
                    audio_codec: str = "aac") -> Path:
    """A test pattern with a 440 Hz tone, encoded by the ffmpeg CLI (H.264 + ``audio_codec``)."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}", "-f", "lavfi", "-i",
           "sine=frequency=440:sample_rate=48000", "-t", str(seconds), "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-c:a", audio_codec, str(path))
    return path


def vfr_clip(path: Path, times: list[float], width: int = 64, height: int = 48) -> Path:
    """A variable-frame-rate H.264 clip: frame i at ``times[i]`` seconds, a bright square moving."""
    import av

    out = av.open(str(path), "w")
    video = out.add_stream("libx264")
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.time_base = video.codec_context.time_base = Fraction(1, 90000)
    for i, t in enumerate(times):
        rgb = np.full((height, width, 3), 40, np.uint8)
        x = (i * 5) % (width - 8)
        rgb[10:18, x : x + 8] = 230
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = round(t * 90000), video.time_base
        for packet in video.encode(frame):
            out.mux(packet)
    for packet in video.encode(None):
        out.mux(packet)
    out.close()
    return path


def raw_clip(path: Path, frames: np.ndarray, fps: int = 25, *encoder: str) -> Path:
    """Encode RGB frames (N, H, W, 3) with the ffmpeg CLI (default: libx264 yuv444p, any size)."""
    raw = path.with_suffix(".rgb")
    raw.write_bytes(np.ascontiguousarray(frames).tobytes())
    n, h, w = frames.shape[:3]
    ffmpeg("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", raw,
           *(encoder or ("-c:v", "libx264", "-pix_fmt", "yuv444p")), path)
    raw.unlink()
    return path


def rotate_mp4(path: Path) -> Path:
    """Give an .mp4 a portrait phone's display matrix (shown turned 90 degrees clockwise), in place.

    The matrix lives in each track header (``tkhd``), as iPhones write it; FFmpeg 5.1's CLI
    has no option for it, so the bytes are set directly.
    """
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    while at != -1:
        offset = at + 4 + (52 if data[at + 4] == 1 else 40)
        width, height = (struct.unpack(">I", data[offset + k : offset + k + 4])[0] >> 16 for k in (36, 40))
        if width and height:  # the video track (audio tracks have no size)
            one, minus_one = 0x00010000, 0xFFFF0000
            data[offset : offset + 36] = struct.pack(">9I", 0, one, 0, minus_one, 0, 0, height << 16, 0, 0x40000000)
        at = data.find(b"tkhd", at + 4)
    path.write_bytes(bytes(data))
    return path


def audio_packets(path: Path) -> list[tuple[float, bytes]]:
    """(time, payload) of every audio packet, demuxed by PyAV (to compare copies byte for byte)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        return [(float(p.pts * p.time_base), bytes(p)) for p in container.demux(audio=0) if p.pts is not None]
