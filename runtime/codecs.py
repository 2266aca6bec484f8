"""Which FFmpeg encoder writes a video output, with which pixel format and options.

One table decides it (container -> codec family -> encoders), and every choice is checked
by opening the encoder once before any frame is processed (a capability check, not a
version string): an unknown ``--codec``, a preset the encoder rejects, or an NVENC that the
driver cannot open is known at start-up. ``--hwaccel auto|cuda`` prefers the NVIDIA
encoders and falls back to software with a one-line note; ``none`` never tries them.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from dataclasses import dataclass, field
from fractions import Fraction

import av
import av.codec

from stylize_rt.errors import BadInputError, first_line

HWACCELS = ("auto", "cuda", "none")


@dataclass(frozen=True)
class ContainerSpec:
    """An output container: FFmpeg muxer, default codec family, fallback audio codec."""

    format: str
    video: str  # default codec family
    audio: str | None  # audio encoder when the input's audio cannot be copied (None: no audio)
    constant_rate: bool = False  # the container has no per-frame timestamps (AVI)


# File outputs by suffix. H.264 yuv420p plays everywhere (browsers, phones, editors);
# WebM is VP9 (AV1 where the FFmpeg build has no VP9 encoder); AVI keeps MJPEG.
CONTAINERS: dict[str, ContainerSpec] = {
    ".mp4": ContainerSpec("mp4", "h264", "aac"),
    ".m4v": ContainerSpec("mp4", "h264", "aac"),
    ".mov": ContainerSpec("mov", "h264", "aac"),
    ".mkv": ContainerSpec("matroska", "h264", "aac"),
    ".webm": ContainerSpec("webm", "vp9", "libopus"),
    ".ts": ContainerSpec("mpegts", "h264", "aac"),
    ".avi": ContainerSpec("avi", "mjpeg", "libmp3lame", constant_rate=True),
}
# Network outputs by URL scheme: MPEG-TS over UDP/SRT/TCP, FLV over RTMP, RTSP push (ANNOUNCE).
STREAM_CONTAINERS: dict[str, ContainerSpec] = {
    "udp": ContainerSpec("mpegts", "h264", None),
    "srt": ContainerSpec("mpegts", "h264", None),
    "tcp": ContainerSpec("mpegts", "h264", None),
    "rtmp": ContainerSpec("flv", "h264", None),
    "rtmps": ContainerSpec("flv", "h264", None),
    "rtsp": ContainerSpec("rtsp", "h264", None),
}

# Codec family -> software encoders (first available wins) and NVIDIA encoders.
SOFTWARE_ENCODERS: dict[str, tuple[str, ...]] = {
    "h264": ("libx264",),
    "hevc": ("libx265",),
    "vp9": ("libvpx-vp9",),
    "av1": ("libsvtav1", "libaom-av1"),
    "vp8": ("libvpx",),
    "mjpeg": ("mjpeg",),
    "mpeg4": ("mpeg4",),
}
NVIDIA_ENCODERS: dict[str, str] = {"h264": "h264_nvenc", "hevc": "hevc_nvenc", "av1": "av1_nvenc"}
FAMILY_ALIASES = {"avc": "h264", "x264": "h264", "h265": "hevc", "x265": "hevc", "mjpg": "mjpeg", "mp4v": "mpeg4"}
# .webm takes only these families; the fallback when the build lacks the default encoder.
WEBM_FAMILIES = ("vp9", "av1", "vp8")

# Defaults: files favour speed that keeps up with a live pipeline (veryfast is ~1.8x medium
# at 720p for ~4% more bytes); network outputs add zerolatency (no B-frames, no lookahead).
DEFAULT_CRF = {"libx264": 23, "libx265": 28, "libvpx-vp9": 32, "libsvtav1": 35, "libaom-av1": 32}
QSCALE_ENCODERS = ("mjpeg", "mpeg4")
QSCALE_DEFAULT = 3  # 2 (best) .. 31
QP2LAMBDA = 118  # FFmpeg's FF_QP2LAMBDA: global_quality is in lambda units
# Speed settings for a real-time pipeline where the encoder has no presets;
# x265 logs its banner to stderr unless told (errors still surface through FFmpeg).
DEFAULT_OPTIONS = {"libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "row-mt": "1"},
                   "libvpx": {"deadline": "realtime", "cpu-used": "8"},
                   "libx265": {"x265-params": "log-level=error"}}
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
DEFAULT_PRESET = {"libx264": "veryfast", "libx265": "veryfast", "libsvtav1": "10", "h264_nvenc": "p4",
                  "hevc_nvenc": "p4", "av1_nvenc": "p4"}


@dataclass
class EncodeOptions:
    """``--codec --crf --bitrate --preset --hwaccel``: what a user may ask of the encoder."""

    codec: str | None = None  # a codec family (h264, hevc, vp9, av1, mjpeg) or an FFmpeg encoder name
    crf: float | None = None
    bitrate: str | None = None  # "4M", "800k", or bits/s
    preset: str | None = None
    hwaccel: str = "auto"

    def check(self) -> None:
        """Values that are wrong whatever the encoder (exit 2 before anything opens)."""
        if self.hwaccel not in HWACCELS:
            raise BadInputError(f"--hwaccel must be one of {', '.join(HWACCELS)} (got {self.hwaccel!r})")
        if self.crf is not None and not (math.isfinite(self.crf) and 0 <= self.crf <= 63):
            raise BadInputError(f"--crf must be in 0..63 (got {self.crf:g})")
        if self.crf is not None and self.bitrate is not None:
            raise BadInputError("give --crf (constant quality) or --bitrate (target rate), not both")
        if self.bitrate is not None:
            parse_bitrate(self.bitrate)


@dataclass
class EncoderChoice:
    """The encoder that was picked and how it is set up (printed once per output)."""

    name: str  # FFmpeg encoder, e.g. libx264
    pix_fmt: str
    options: dict[str, str] = field(default_factory=dict)
    bit_rate: int | None = None
    qscale: int | None = None  # fixed quantizer for encoders without a quality mode (MJPEG, MPEG-4 Part 2)
    notes: list[str] = field(default_factory=list)  # fallbacks and odd-size handling, one line each

    def describe(self) -> str:
        settings = [f"{k} {v}" for k, v in self.options.items() if k in ("crf", "cq", "preset", "tune")]
        if self.bit_rate:
            settings.append(f"{self.bit_rate / 1e6:g} Mbit/s")
        if self.qscale:
            settings.append(f"q {self.qscale}")
        return f"{self.name} {self.pix_fmt}" + (f" ({', '.join(settings)})" if settings else "")


def parse_bitrate(text: str) -> int:
    """``"4M"``, ``"800k"``, ``"2500000"`` -> bits per second."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*(?:b(?:it)?(?:/s|ps)?)?\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise BadInputError(f"--bitrate must be a rate such as 4M, 800k or 2500000 (got {text!r})")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)


def has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except (av.error.FFmpegError, ValueError):  # unknown encoder in this FFmpeg build
        return False
    return True


def nvidia_driver_present() -> bool:
    """An NVIDIA kernel driver is loaded (Linux) or its tool is installed (elsewhere); no CUDA load."""
    return os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi") is not None


def _family(codec: str) -> str | None:
    key = codec.strip().lower()
    key = FAMILY_ALIASES.get(key, key)
    return key if key in SOFTWARE_ENCODERS else None


def _encoders_for(options: EncodeOptions, container: ContainerSpec, suffix: str) -> tuple[list[str], str | None]:
    """Candidate encoders in order, and the family they implement (None: an explicit encoder name)."""
    if options.codec:
        family = _family(options.codec)
        if family is None:
            if not has_encoder(options.codec):
                known = ", ".join(sorted(SOFTWARE_ENCODERS))
                raise BadInputError(f"--codec {options.codec!r}: no such video encoder in this FFmpeg build "
                                    f"(use a codec such as {known}, or an FFmpeg encoder name such as libx264)")
            return [options.codec], None
    else:
        family = container.video
        if suffix == ".webm" and not any(has_encoder(e) for e in SOFTWARE_ENCODERS[family]):
            family = next((f for f in WEBM_FAMILIES if any(has_encoder(e) for e in SOFTWARE_ENCODERS[f])), family)
    if container.format == "webm" and family not in WEBM_FAMILIES:
        raise BadInputError(f"--codec {options.codec}: .webm holds only {', '.join(WEBM_FAMILIES)} video; "
                            "use .mp4 or .mkv for other codecs")
    candidates = [e for e in SOFTWARE_ENCODERS[family] if has_encoder(e)]
    if options.hwaccel != "none" and family in NVIDIA_ENCODERS and has_encoder(NVIDIA_ENCODERS[family]):
        candidates.insert(0, NVIDIA_ENCODERS[family])
    if not candidates:
        raise BadInputError(f"this FFmpeg build has no {family} encoder (looked for "
                            f"{', '.join(SOFTWARE_ENCODERS[family])}); pick another --codec or container")
    return candidates, family


def _pix_fmt(encoder: str, width: int, height: int) -> tuple[str, str | None]:
    """The pixel format for ``encoder`` at this size, and a note when the default does not fit.

    4:2:0 is what every player decodes, but H.264/HEVC crop in 2-pixel units there, so an
    odd side cannot be kept exactly: those encoders get 4:4:4 (exact size, a warning about
    players); VP9/AV1 code odd sizes in 4:2:0 directly.
    """
    supported = _supported_pix_fmts(encoder)
    if encoder == "mjpeg":
        return "yuvj420p", None
    odd = width % 2 or height % 2
    exact_420 = encoder.startswith(("libvpx", "libaom", "libsvtav1", "av1"))
    if not odd or exact_420:
        if not supported or "yuv420p" in supported:
            return "yuv420p", None
        return supported[0], None
    for fmt in ("yuv444p", "gbrp"):
        if not supported or fmt in supported:
            return fmt, (f"{width}x{height} has an odd side, which 4:2:0 H.264/HEVC cannot store: encoded as {fmt} "
                         "at the exact size, which browsers and phones do not play; --codec vp9 keeps the exact "
                         "size in 4:2:0 (browsers play it), --size with even sides keeps H.264 4:2:0")
    return supported[0], None


def _supported_pix_fmts(encoder: str) -> list[str]:
    try:
        formats = av.codec.Codec(encoder, "w").video_formats or []
    except (av.error.FFmpegError, ValueError):
        return []
    return [f.name for f in formats]


def _has_option(encoder: str, name: str) -> bool:
    """The encoder has this private AVOption (crf, preset, tune)."""
    codec = av.codec.Codec(encoder, "w")
    if hasattr(codec, "descriptor"):  # PyAV <= 17
        options = codec.descriptor.options
    else:  # PyAV 18 lists them on a codec context
        options = av.CodecContext.create(encoder, "w").supported_options.private
    return any(o.name == name for o in options)


def _encoder_options(encoder: str, options: EncodeOptions, stream: bool) -> tuple[dict[str, str], int | None]:
    opts: dict[str, str] = dict(DEFAULT_OPTIONS.get(encoder, {}))
    bit_rate = parse_bitrate(options.bitrate) if options.bitrate else None
    preset = options.preset or DEFAULT_PRESET.get(encoder)
    if preset is not None:
        if not _has_option(encoder, "preset"):
            raise BadInputError(f"--preset: the {encoder} encoder has no presets")
        if encoder in ("libx264", "libx265") and preset not in X264_PRESETS:
            raise BadInputError(f"--preset {preset!r}: {encoder} presets are {', '.join(X264_PRESETS)}")
        opts["preset"] = str(preset)
    if bit_rate is None:
        crf = options.crf if options.crf is not None else DEFAULT_CRF.get(encoder)
        if crf is not None:
            if encoder.endswith("_nvenc"):
                opts.update({"rc": "vbr", "cq": f"{crf:g}"})
            elif _has_option(encoder, "crf"):
                opts["crf"] = f"{crf:g}"
                if encoder == "libvpx-vp9":
                    opts["b"] = "0"  # constant quality, not a capped rate
            elif options.crf is not None:
                raise BadInputError(f"--crf: the {encoder} encoder has no constant-quality mode; use --bitrate")
    if stream and _has_option(encoder, "tune") and encoder in ("libx264", "libx265"):
        opts["tune"] = "zerolatency"
    if stream and encoder.endswith("_nvenc"):
        opts["zerolatency"] = "1"
    return opts, bit_rate


def configure(ctx, choice: EncoderChoice, width: int, height: int) -> None:
    """Apply an encoder choice to a (not yet opened) video codec context."""
    ctx.width, ctx.height = width, height
    ctx.pix_fmt = choice.pix_fmt
    if choice.bit_rate:
        ctx.bit_rate = choice.bit_rate
    if choice.qscale:
        ctx.qscale = True
        if hasattr(ctx, "global_quality"):  # PyAV 18
            ctx.global_quality = choice.qscale * QP2LAMBDA
        else:  # PyAV 17: pin the quantizer range instead
            ctx.qmin = ctx.qmax = choice.qscale
    ctx.options = dict(choice.options)


def probe_encoder(choice: EncoderChoice, width: int = 64, height: int = 64) -> None:
    """Open the chosen encoder once with these settings; raises the FFmpeg error when it cannot."""
    ctx = av.CodecContext.create(choice.name, "w")
    configure(ctx, choice, width, height)
    ctx.time_base = Fraction(1, 30)
    ctx.framerate = Fraction(30, 1)
    ctx.open()


def choose_encoder(options: EncodeOptions, container: ContainerSpec, suffix: str, size: tuple[int, int] | None,
                   stream: bool = False) -> EncoderChoice:
    """The first candidate encoder that really opens; NVENC failures fall back with a note."""
    options.check()
    width, height = size or (64, 64)
    candidates, family = _encoders_for(options, container, suffix)
    notes: list[str] = []
    hardware_wanted = options.hwaccel == "cuda" or (options.hwaccel == "auto" and nvidia_driver_present())
    last_error: Exception | None = None
    for encoder in candidates:
        nvenc = encoder.endswith("_nvenc")
        if nvenc and family is not None and not hardware_wanted:
            continue  # auto without an NVIDIA driver: do not even try
        pix_fmt, odd_note = _pix_fmt(encoder, width, height)
        opts, bit_rate = _encoder_options(encoder, options, stream)
        qscale = QSCALE_DEFAULT if encoder in QSCALE_ENCODERS and bit_rate is None else None
        choice = EncoderChoice(encoder, pix_fmt, opts, bit_rate, qscale, notes)
        if encoder == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner to stderr unless told
        try:
            probe_encoder(choice, width, height)
        except (av.error.FFmpegError, ValueError) as exc:
            last_error = exc
            if nvenc and family is not None and encoder is not candidates[-1]:
                notes.append(f"--hwaccel {options.hwaccel}: {encoder} cannot open here ({_ffmpeg_reason(exc)}: "
                             f"no NVIDIA driver, or a GPU without NVENC); encoding in software with {candidates[-1]}")
                continue
            what = f"--preset {options.preset} / " if options.preset else ""
            raise BadInputError(f"the {encoder} encoder rejected these settings ({what}{pix_fmt} {width}x{height}): "
                                f"{_ffmpeg_reason(exc)}") from None
        if odd_note:
            notes.append(odd_note)
        return choice
    raise BadInputError(f"no usable video encoder: {_ffmpeg_reason(last_error) if last_error else 'none found'}")


def _ffmpeg_reason(exc: BaseException) -> str:
    """FFmpeg errors quote the whole call; keep the part a user can act on."""
    return getattr(exc, "strerror", None) or first_line(exc)


__all__ = ["CONTAINERS", "HWACCELS", "STREAM_CONTAINERS", "ContainerSpec", "EncodeOptions", "EncoderChoice",
           "choose_encoder", "configure", "has_encoder", "nvidia_driver_present", "parse_bitrate"]
