"""Decode -> stylize -> encode in memory: what a file-to-file run really costs, codec included.

The end-to-end benchmark's raw-pipe step leaves the codec out on purpose; this one puts it
back, through the same objects a ``--input in.mp4 --output out.mp4`` run uses (the PyAV
``VideoFileSource`` reading an in-memory H.264 clip, the stream runner, a ``VideoWriter``
into memory), so users see what their pipeline will run at and how much of it is codec.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from stylize_rt.errors import StylizeError
from stylize_rt.runtime.av_writer import VideoWriter
from stylize_rt.runtime.codecs import CONTAINERS, EncodeOptions
from stylize_rt.runtime.pipeline import PipelineConfig, run_stream
from stylize_rt.runtime.sinks import FrameInfo, frame_time
from stylize_rt.runtime.sources import VideoFileSource
from stylize_rt.runtime.stylizer import Stylizer


def encode_clip(frames: Iterable[np.ndarray], fps: float = 30.0, encode: EncodeOptions | None = None) -> bytes:
    """RGB frames -> an in-memory .mp4 (H.264 by default), as a camera or phone would hand it over."""
    buffer = io.BytesIO()
    writer = None
    for i, frame in enumerate(frames):
        if writer is None:
            writer = VideoWriter(buffer, CONTAINERS[".mp4"], encode or EncodeOptions(hwaccel="none"), fps,
                                 "<memory>", ".mp4")
            writer.open(frame.shape[1], frame.shape[0])
        writer.write(frame, i / fps, 1 / fps)
    if writer is None:
        raise StylizeError("encode_clip: no frames")
    writer.close()
    return buffer.getvalue()


class MemoryVideoSink:
    """Encodes into an in-memory .mp4 (the benchmark's sink: the encoder's real work, no disk)."""

    def __init__(self, fps: float, encode: EncodeOptions | None = None) -> None:
        self.fps = fps
        self.encode = encode or EncodeOptions(hwaccel="none")
        self.buffer = io.BytesIO()
        self.frames_written = 0
        self.encoder = ""
        self._writer: VideoWriter | None = None

    def write(self, frame: np.ndarray, info: FrameInfo | None = None) -> None:
        if self._writer is None:
            self._writer = VideoWriter(self.buffer, CONTAINERS[".mp4"], self.encode, self.fps, "<memory>", ".mp4")
            self._writer.open(frame.shape[1], frame.shape[0])
            self.encoder = self._writer.choice.describe()
        self._writer.write(frame, *frame_time(info, self.frames_written, self.fps, True))
        self.frames_written += 1

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()


@dataclass
class TranscodeTimes:
    """One decode -> stylize -> encode run: busy seconds per stage and the codec's share of them."""

    frames: int
    wall_s: float
    decode_s: float  # the capture stage: demux + decode + YUV->RGB
    model_s: float
    encode_s: float  # the output stage: RGB->YUV + encode + mux
    bytes_out: int
    encoder: str

    @property
    def codec_share(self) -> float:
        """Decode + encode as a share of all stage work (the stages overlap in threads)."""
        busy = self.decode_s + self.model_s + self.encode_s
        return (self.decode_s + self.encode_s) / busy if busy else 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s else 0.0


def transcode_in_memory(stylizer: Stylizer, clip: bytes, config: PipelineConfig | None = None,
                        encode: EncodeOptions | None = None) -> TranscodeTimes:
    """Decode ``clip`` (an encoded video, e.g. from :func:`encode_clip`), stylize every frame and
    encode the result in memory, through the runtime's stream runner; the stage timings."""
    source = VideoFileSource(io.BytesIO(clip), hwaccel=(encode.hwaccel if encode else "none"))
    sink = MemoryVideoSink(source.fps or 30.0, encode)
    stats = run_stream(stylizer, source, sink, config or PipelineConfig(progress=False))
    return TranscodeTimes(stats.frames_out, stats.wall_s, stats.stage("capture").total_s, stats.stage("model").total_s,
                          stats.stage("output").total_s, len(sink.buffer.getvalue()), sink.encoder)


__all__ = ["MemoryVideoSink", "TranscodeTimes", "encode_clip", "transcode_in_memory"]
