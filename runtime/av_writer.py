"""One encoded video output through PyAV: a container, a video stream with the frames' own
timestamps, and the input's audio beside it.

Frames arrive as RGB with their presentation time (seconds from the source's start) and
duration; each becomes a frame at that time in a 1/90000 time base (AVI, which has no
timestamps, gets one tick per frame at the stream's rate), so a variable-frame-rate input
keeps its timing and the last frame keeps its length. Colour is converted once, RGB to
BT.709 limited-range YUV (full-range BT.601 for MJPEG), and tagged so players decode it back.
Every FFmpeg error becomes a one-line ``OutputError``.
"""

from __future__ import annotations

import contextlib
import errno
import sys
from fractions import Fraction

import av
import numpy as np

from stylize_rt.errors import BadInputError, OutputError, first_line
from stylize_rt.runtime.codecs import ContainerSpec, EncodeOptions, EncoderChoice, choose_encoder, configure

TIME_BASE = Fraction(1, 90000)
STREAM_GOP_S = 2.0  # keyframe interval of network outputs
BT709 = 1  # AVCOL_SPC/PRI/TRC_BT709
BT470BG = 5  # AVCOL_SPC_BT470BG: the BT.601 matrix that JPEG uses
RANGE_MPEG, RANGE_JPEG = 1, 2


def writer_error(label: str, exc: BaseException) -> OutputError:
    """One line for an FFmpeg failure while writing ``label``; a full disk and a closed peer say so."""
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC:
        return OutputError(f"disk full while writing {label}")
    if code in (errno.EPIPE, errno.ECONNRESET, errno.ECONNREFUSED):
        return OutputError(f"cannot write {label}: the receiver closed the connection "
                           f"({getattr(exc, 'strerror', None) or first_line(exc)})")
    return OutputError(f"cannot write {label}: {getattr(exc, 'strerror', None) or first_line(exc)}")


class VideoWriter:
    """``write(rgb, pts_s, duration_s)`` frames into ``target`` (a path or URL); ``close()`` finalizes."""

    def __init__(self, target: str, container: ContainerSpec, options: EncodeOptions, fps: float,
                 label: str, suffix: str = "", audio=None, container_options: dict[str, str] | None = None,
                 stream: bool = False, format_options: dict[str, str] | None = None) -> None:
        self.target = target
        self.container = container
        self.options = options
        self.fps = fps
        self.label = label
        self.suffix = suffix
        self.audio = audio  # AudioCopy / PcmEncode or None
        self.container_options = container_options or {}
        self.format_options = format_options or {}
        self.stream_output = stream
        self.choice: EncoderChoice | None = None
        self.audio_labels: list[str] = []
        self.size: tuple[int, int] | None = None
        self.frames_written = 0
        self.end_s = 0.0
        self._output = None
        self._stream = None
        self._time_base = TIME_BASE
        self._last_ticks = -1
        self._durations: dict[int, int] = {}
        self._colour: dict[str, object] = {}

    # -- opening ------------------------------------------------------------------------
    def open(self, width: int, height: int) -> None:
        """Pick the encoder for this size and write the container header."""
        self.choice = choose_encoder(self.options, self.container, self.suffix, (width, height), self.stream_output)
        try:
            self._output = av.open(self.target, "w", format=self.container.format,
                                   options=self.format_options, container_options=self.container_options)
        except (av.error.FFmpegError, OSError) as exc:
            raise writer_error(self.label, exc) from None
        try:
            self._add_video(width, height)
            if self.audio is not None:
                self.audio_labels = self.audio.add_streams(self._output)
            self._output.start_encoding()
        except BadInputError:
            self._abandon()
            raise
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._abandon()
            raise writer_error(self.label, exc) from None
        self.size = (width, height)

    def _add_video(self, width: int, height: int) -> None:
        choice = self.choice
        if self.container.constant_rate:
            rate = Fraction(self.fps).limit_denominator(1001)
            self._time_base = 1 / rate
            stream = self._output.add_stream(choice.name, rate=rate)
        else:
            stream = self._output.add_stream(choice.name, rate=Fraction(self.fps).limit_denominator(1001))
            stream.time_base = TIME_BASE
        ctx = stream.codec_context
        configure(ctx, choice, width, height)
        ctx.time_base = self._time_base
        if self.stream_output:
            ctx.gop_size = max(1, round(STREAM_GOP_S * self.fps))  # a receiver that joins late waits <= 2 s
        jpeg = choice.pix_fmt.startswith("yuvj")
        matrix, value_range = (BT470BG, RANGE_JPEG) if jpeg else (BT709, RANGE_MPEG)
        if not choice.pix_fmt.startswith("gbr"):
            ctx.colorspace, ctx.color_range = matrix, value_range
            self._colour = {"dst_colorspace": "ITU601" if jpeg else "ITU709",
                            "dst_color_range": "JPEG" if jpeg else "MPEG"}
        ctx.color_primaries = ctx.color_trc = BT709
        self._stream = stream

    # -- writing ------------------------------------------------------------------------
    def write(self, rgb: np.ndarray, pts_s: float, duration_s: float) -> None:
        if self._output is None:
            raise OutputError(f"cannot write {self.label}: the output is closed")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = frame.reformat(format=self.choice.pix_fmt, **self._colour)
        ticks = max(self._last_ticks + 1, round(pts_s / self._time_base))
        length = max(1, round(duration_s / self._time_base))
        frame.pts, frame.time_base = ticks, self._time_base
        self._last_ticks = ticks
        self._durations[ticks] = length
        try:
            self._mux(self._stream.encode(frame))
            if self.audio is not None:
                self.audio.mux_until(self._output, float(ticks * self._time_base))
        except (av.error.FFmpegError, OSError) as exc:
            raise writer_error(self.label, exc) from None
        self.frames_written += 1
        self.end_s = float((ticks + length) * self._time_base)

    def _mux(self, packets) -> None:
        for packet in packets:
            duration = self._durations.pop(packet.pts, None)
            if duration:
                packet.duration = duration
            self._output.mux(packet)

    # -- finishing ----------------------------------------------------------------------
    def close(self) -> None:
        """Flush the encoder, audio up to the last frame's end, the container index."""
        if self._output is None:
            return
        try:
            self._mux(self._stream.encode(None))
            if self.audio is not None:
                self.audio.finish(self._output, self.end_s)
            output, self._output = self._output, None
            output.close()
        except (av.error.FFmpegError, OSError) as exc:
            self._abandon()
            raise writer_error(self.label, exc) from None
        finally:
            if self.audio is not None:
                self.audio.close()

    def _abandon(self) -> None:
        """Close without finishing (after an error): release the file handle, ignore further errors."""
        output, self._output = self._output, None
        if output is not None:
            with contextlib.suppress(av.error.FFmpegError, OSError):
                output.close()
        if self.audio is not None:
            self.audio.close()
            self.audio = None

    def describe(self) -> str:
        w, h = self.size or (0, 0)
        audio = "; audio: " + ", ".join(self.audio_labels) if self.audio_labels else ""
        return f"{self.label}: {self.choice.describe()} {w}x{h}{audio}"

    def notes(self) -> list[str]:
        dropped = getattr(self.audio, "dropped", []) if self.audio is not None else []
        out = list(self.choice.notes if self.choice else [])
        out += [f"audio {d} cannot go into {self.label} and was left out" for d in dropped]
        return out


def report(writer: VideoWriter) -> None:
    """The encoder, pixel format and audio in one line (and each fallback note), once per output."""
    for note in writer.notes():
        print(f"stylize-rt: note: {note}", file=sys.stderr)
    print(f"stylize-rt: writing {writer.describe()}", file=sys.stderr)


__all__ = ["TIME_BASE", "VideoWriter", "report", "writer_error"]
