"""Audio beside the stylized video: the input's audio streams copied (or re-encoded) in sync.

The video stage never touches audio: a file input's audio is demuxed a second time, from its
own handle on the file, and interleaved into the output as video frames are written, each
packet at its input time minus the video's start (``origin_s``), so A/V sync is the input's.
Packets are copied where the output container takes the codec (no quality loss, no CPU);
otherwise they are decoded and re-encoded with the container's audio codec (AAC, Opus for
WebM). Whatever ends the run, the audio stops at the end of the last written frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from stylize_rt.errors import first_line

# Containers whose muxer does not answer avformat_query_codec: what they are known to carry.
KNOWN_AUDIO_CODECS = {"mpegts": {"aac", "mp3", "mp2", "ac3", "eac3", "opus"}}
# Encoders with a fixed sample rate.
FIXED_RATES = {"libopus": 48000, "opus": 48000}


@dataclass(frozen=True)
class AudioInput:
    """A file input's audio streams, to be carried into the output."""

    path: str
    streams: tuple[int, ...]  # container stream indexes
    origin_s: float  # the input time that is output time 0 (the first video frame's)
    labels: tuple[str, ...]  # "aac 48000 Hz stereo", one per stream


@dataclass(frozen=True)
class PcmAudio:
    """Audio samples to encode with the video (the demo's generated track): float32 (channels, n)."""

    samples: np.ndarray
    rate: int

    @property
    def label(self) -> str:
        return f"pcm {self.rate} Hz {self.samples.shape[0]} ch"


def describe_stream(stream) -> str:
    ctx = stream.codec_context
    layout = getattr(getattr(ctx, "layout", None), "name", None) or f"{ctx.channels} ch"
    return f"{ctx.name} {ctx.sample_rate} Hz {layout}"


def _takes(output, codec: str) -> bool:
    known = KNOWN_AUDIO_CODECS.get(output.format.name.split(",")[0])
    return codec in (known if known is not None else output.supported_codecs)


class _Track:
    """One output audio stream fed from one input stream (copied) or from decoded frames (encoded)."""

    def __init__(self, output, template, fallback: str | None) -> None:
        self.input = template
        self.copy = _takes(output, template.codec_context.name)
        if self.copy:
            self.out = output.add_stream_from_template(template)
        else:
            ctx = template.codec_context
            rate = FIXED_RATES.get(fallback, ctx.sample_rate)
            self.out = output.add_stream(fallback, rate=rate)
            self.out.layout = "stereo" if ctx.channels >= 2 else "mono"
        self.mode = "copied" if self.copy else f"re-encoded as {self.out.codec_context.name}"


class AudioCopy:
    """Carry ``audio``'s streams into an output container (see the module doc)."""

    def __init__(self, audio: AudioInput, fallback_codec: str | None) -> None:
        self.audio = audio
        self.fallback_codec = fallback_codec
        self._input = av.open(audio.path)
        self._tracks: dict[int, _Track] = {}
        self._packets = None
        self._pending = None
        self.dropped: list[str] = []

    def add_streams(self, output) -> list[str]:
        """Add the output streams (before the header is written); returns one description per stream."""
        described = []
        for index, label in zip(self.audio.streams, self.audio.labels):
            stream = self._input.streams[index]
            if self.fallback_codec is None and not _takes(output, stream.codec_context.name):
                self.dropped.append(label)
                continue
            try:
                track = _Track(output, stream, self.fallback_codec)
            except (av.error.FFmpegError, ValueError) as exc:
                self.dropped.append(f"{label} ({first_line(exc)})")
                continue
            self._tracks[index] = track
            described.append(f"{label} {track.mode}")
        if self._tracks:
            self._packets = self._input.demux([self._input.streams[i] for i in self._tracks])
        return described

    def mux_until(self, output, until_s: float) -> None:
        """Mux every audio packet that starts before ``until_s`` (output time)."""
        while self._packets is not None:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                self._packets = None
                break
            if packet.pts is None or packet.stream.index not in self._tracks:
                continue  # a demuxer flush packet
            start = float(packet.pts * packet.time_base) - self.audio.origin_s
            if start >= until_s:
                self._pending = packet
                break
            self._write(output, self._tracks[packet.stream.index], packet, start, until_s)

    def finish(self, output, end_s: float) -> None:
        """Audio up to the end of the last frame, then flush the encoders."""
        self.mux_until(output, end_s)
        for track in self._tracks.values():
            if not track.copy:
                for out in track.out.encode(None):
                    output.mux(out)

    def _write(self, output, track: _Track, packet, start: float, end_s: float) -> None:
        duration = float(packet.duration * packet.time_base) if packet.duration else 0.0
        if start + duration < 0:
            return  # wholly before the first video frame (the packet ending at 0 is the decoder's priming: kept)
        if track.copy:
            shift = round(self.audio.origin_s / packet.time_base)
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = track.out
            output.mux(packet)
            return
        for frame in packet.decode():
            _encode_frame(output, track.out, frame, self.audio.origin_s, end_s)

    def close(self) -> None:
        self._packets = None
        self._input.close()


def _encode_frame(output, stream, frame, origin_s: float, end_s: float) -> None:
    """Re-encode one decoded frame at its output time, trimmed to [0, end_s)."""
    rate = frame.sample_rate
    start = int(round((float(frame.pts * frame.time_base) - origin_s) * rate)) if frame.pts is not None else None
    if start is None:
        return
    samples = frame.to_ndarray()
    if frame.format.is_planar is False:  # packed (1, n*ch): make it (ch, n)
        samples = samples.reshape(-1, len(frame.layout.channels)).T
    lo, hi = max(0, -start), min(frame.samples, int(math.floor(end_s * rate)) - start)
    if hi <= lo:
        return
    trimmed = np.ascontiguousarray(samples[:, lo:hi])
    fmt = frame.format.name if frame.format.is_planar else frame.format.name + "p"
    out = av.AudioFrame.from_ndarray(trimmed, format=fmt, layout=frame.layout.name)
    out.sample_rate = rate
    out.pts = start + lo
    out.time_base = Fraction(1, rate)
    for packet in stream.encode(out):
        output.mux(packet)


class PcmEncode:
    """Encode ``PcmAudio`` into the output, in step with the video, cut at its end."""

    block = 1024

    def __init__(self, pcm: PcmAudio, codec: str | None) -> None:
        self.pcm = pcm
        self.codec = codec
        self._stream = None
        self._next = 0
        self.dropped: list[str] = []

    def add_streams(self, output) -> list[str]:
        if self.codec is None:
            self.dropped.append(self.pcm.label)
            return []
        self._stream = output.add_stream(self.codec, rate=FIXED_RATES.get(self.codec, self.pcm.rate))
        self._stream.layout = "stereo" if self.pcm.samples.shape[0] >= 2 else "mono"
        return [f"{self.pcm.label} encoded as {self._stream.codec_context.name}"]

    def mux_until(self, output, until_s: float) -> None:
        if self._stream is None:
            return
        stop = min(self.pcm.samples.shape[1], int(until_s * self.pcm.rate))
        layout = "stereo" if self.pcm.samples.shape[0] >= 2 else "mono"
        while self._next < stop:
            end = min(stop, self._next + self.block)
            chunk = np.ascontiguousarray(self.pcm.samples[:2, self._next:end], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = self.pcm.rate
            frame.pts = self._next
            frame.time_base = Fraction(1, self.pcm.rate)
            for packet in self._stream.encode(frame):
                output.mux(packet)
            self._next = end

    def finish(self, output, end_s: float) -> None:
        self.mux_until(output, end_s)
        if self._stream is not None:
            for packet in self._stream.encode(None):
                output.mux(packet)

    def close(self) -> None:
        self._stream = None


__all__ = ["AudioCopy", "AudioInput", "PcmAudio", "PcmEncode", "describe_stream"]
