"""Frame sinks: where stylized frames go (video files, images, folders, raw pipes).

A sink is any object with ``write(frame, info)`` and ``close()``. ``close`` is called on
every exit path (end of input, error, Ctrl-C, SIGTERM) and finalizes the output: video
files are written under a temporary name and renamed into place when closed, so a
finished or interrupted run leaves a playable file holding every frame written so far,
and a run that wrote nothing leaves no half-file behind.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

import numpy as np

from stylize_rt.errors import BadInputError, OutputError
from stylize_rt.fileio import check_writable_dir, output_error, shareable_mode
from stylize_rt.imageio import IMAGE_SUFFIXES, write_image
from stylize_rt.runtime.av_audio import AudioCopy, AudioInput, PcmAudio, PcmEncode
from stylize_rt.runtime.av_writer import VideoWriter, report
from stylize_rt.runtime.codecs import CONTAINERS, STREAM_CONTAINERS, EncodeOptions, choose_encoder
from stylize_rt.runtime.frames import resize, rgb_to_bgr
from stylize_rt.runtime.signals import deferred_signals
from stylize_rt.runtime.sources import PIX_FMTS
from stylize_rt.runtime.virtualcam import VirtualCameraSink

# Stop writing a video while this much room is left, so the container index still fits.
DEFAULT_MIN_FREE_BYTES = 32 * 1024 * 1024


@dataclass
class FrameInfo:
    """What the pipeline knows about a frame besides its pixels."""

    index: int  # 0-based position in the source
    captured_at: float  # time.perf_counter() when the source returned it (live sources: received it)
    name: str | None = None  # source file name (images), for output names
    original: np.ndarray | None = None  # the unstylized frame (before resizing, with keep_original)
    stats: Any = None  # the run's live RunStats (readouts in windows)
    pts: float | None = None  # presentation time in seconds from the source's start (None: no clock)
    duration: float | None = None  # how long the frame is shown, seconds


@runtime_checkable
class Sink(Protocol):
    """What the pipeline needs from a frame sink; implement it to take frames yourself.

    A sink may also have a ``quit`` attribute: when it turns true (a window's viewer pressed
    q), the run ends after that frame.
    """

    def write(self, frame: np.ndarray, info: FrameInfo) -> None: ...

    def close(self) -> None: ...


class VideoFileSink:
    """A video file encoded by FFmpeg through PyAV (H.264 ``yuv420p`` + faststart by default).

    Frames keep the source's timestamps (``info.pts``; ``use_source_times=False`` or a source
    without a clock: frame index / ``fps``), and ``audio`` (an input's streams, or generated
    samples) is carried alongside in sync. The file is written under a hidden temporary name
    and renamed into place by ``close``, so a finished or interrupted run leaves a playable
    file, and a run that wrote nothing leaves none. Free disk space is checked before each
    frame: below ``min_free_bytes`` the file is finalized while its index still fits and the
    run stops with a disk-full error.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float | None = None,
                 min_free_bytes: int = DEFAULT_MIN_FREE_BYTES, codec: str | None = None,
                 encode: EncodeOptions | None = None, audio: AudioInput | PcmAudio | None = None,
                 use_source_times: bool = True) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in CONTAINERS:
            raise BadInputError(f"cannot write video {self.path.name!r}: use one of {', '.join(CONTAINERS)}")
        self.container = CONTAINERS[suffix]
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.min_free_bytes = min_free_bytes
        self.encode = encode or EncodeOptions(codec=codec)
        self.audio = audio
        self.use_source_times = use_source_times
        self.frames_written = 0
        self.size: tuple[int, int] | None = None
        # Check the encoder and its settings now: a bad --codec/--preset is exit 2 before any work.
        choose_encoder(self.encode, self.container, suffix, None)
        self._writer: VideoWriter | None = None
        self._tmp: Path | None = None
        check_writable_dir(self.path.parent)
        if self.path.is_dir():
            raise OutputError(f"cannot write video {self.path}: it is a folder")

    def _audio_writer(self):
        if isinstance(self.audio, AudioInput):
            return AudioCopy(self.audio, self.container.audio)
        if isinstance(self.audio, PcmAudio):
            return PcmEncode(self.audio, self.container.audio)
        return None

    def _open(self, width: int, height: int) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".partial{self.path.suffix}",
                                   dir=self.path.parent)
        os.close(fd)
        os.chmod(tmp, shareable_mode())
        self._tmp = Path(tmp)
        options = {"movflags": "+faststart"} if self.container.format in ("mp4", "mov") else {}
        writer = VideoWriter(tmp, self.container, self.encode, self.fps, str(self.path), self.path.suffix.lower(),
                             self._audio_writer(), container_options=options)
        try:
            writer.open(width, height)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
            raise
        report(writer)
        self._writer = writer
        self.size = (width, height)

    def write(self, frame: np.ndarray, info: FrameInfo | None = None) -> None:
        if self._writer is None:
            self._open(frame.shape[1], frame.shape[0])
        free = shutil.disk_usage(self.path.parent).free
        if free < self.min_free_bytes:
            written = self.frames_written
            self.close()
            raise OutputError(
                f"disk full while writing {self.path}: {free // (1024 * 1024)} MiB left; "
                f"stopped and finalized after {written} frames"
            )
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = resize(frame, *self.size)  # a video has one size; image folders may not
        pts, duration = frame_time(info, self.frames_written, self.fps, self.use_source_times)
        self._writer.write(frame, pts, duration)
        self.frames_written += 1

    def close(self) -> None:
        """Finalize: flush the encoder, audio to the last frame's end, the index; rename into place.

        A Ctrl-C arriving meanwhile waits until the file is complete (then it ends the run)."""
        if self._writer is None:
            return
        with deferred_signals() as received:
            writer, self._writer = self._writer, None
            tmp, self._tmp = self._tmp, None
            try:
                writer.close()
            except OutputError:
                tmp.unlink(missing_ok=True) if writer.frames_written == 0 else self._keep(tmp)
                raise
            self._keep(tmp)
        if received:
            raise KeyboardInterrupt

    def _keep(self, tmp: Path) -> None:
        try:
            if self.frames_written == 0:
                tmp.unlink(missing_ok=True)
                return
            os.replace(tmp, self.path)
        except OSError as exc:
            raise output_error(self.path, exc) from None


def frame_time(info: FrameInfo | None, written: int, fps: float, use_source_times: bool) -> tuple[float, float]:
    """A frame's (presentation time, duration) in seconds: the source's clock, else its index at ``fps``."""
    step = 1.0 / fps
    if use_source_times and info is not None and info.pts is not None:
        return info.pts, info.duration or step
    index = info.index if info is not None else written
    return index * step, step


class StreamSink:
    """Encoded video sent to a network peer: MPEG-TS over ``udp://``/``srt://``/``tcp://``, FLV over
    ``rtmp://``, RTSP (ANNOUNCE/RECORD to a server) over ``rtsp://``.

    Low-latency settings (x264 ``zerolatency``: no B-frames, no lookahead); video only. The
    connection is made at the first frame; a peer that goes away is a one-line output error.
    """

    def __init__(self, url: str, fps: float | None = None, encode: EncodeOptions | None = None,
                 use_source_times: bool = True) -> None:
        self.url = url
        scheme = url.split("://", 1)[0].lower()
        if scheme not in STREAM_CONTAINERS:
            raise BadInputError(f"cannot stream to {url!r}: use {', '.join(s + '://' for s in STREAM_CONTAINERS)}")
        self.container = STREAM_CONTAINERS[scheme]
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.encode = encode or EncodeOptions()
        self.use_source_times = use_source_times
        self.frames_written = 0
        self.size: tuple[int, int] | None = None
        choose_encoder(self.encode, self.container, "", None, stream=True)
        self._format_options = {"rtsp_transport": "tcp"} if scheme.startswith("rtsp") else {}
        self._writer: VideoWriter | None = None

    def write(self, frame: np.ndarray, info: FrameInfo | None = None) -> None:
        if self._writer is None:
            writer = VideoWriter(self.url, self.container, self.encode, self.fps, self.url, stream=True,
                                 format_options=self._format_options)
            writer.open(frame.shape[1], frame.shape[0])
            report(writer)
            self._writer, self.size = writer, (frame.shape[1], frame.shape[0])
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = resize(frame, *self.size)
        pts, duration = frame_time(info, self.frames_written, self.fps, self.use_source_times)
        self._writer.write(frame, pts, duration)
        self.frames_written += 1

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with deferred_signals():
                writer.close()


class ImageFileSink:
    """One still image (for a single-image input)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in IMAGE_SUFFIXES:
            raise BadInputError(f"cannot write image {self.path.name!r}: use one of {', '.join(IMAGE_SUFFIXES)}")
        check_writable_dir(self.path.parent)
        self.frames_written = 0

    def write(self, frame: np.ndarray, info: FrameInfo | None = None) -> None:
        if self.frames_written:
            raise BadInputError(f"output {self.path.name} is one image but the input has more frames: "
                                "write to a video (.mp4) or a folder instead")
        write_image(self.path, frame)
        self.frames_written += 1

    def close(self) -> None:
        """Nothing to finalize: the image was written atomically by ``write``."""


def folder_file_name(name: str | None, index: int, suffix: str = ".png") -> str:
    """The file a frame becomes in a folder output: an input image's own name (and type),
    else ``name`` or the frame's index with ``suffix``."""
    if name and Path(name).suffix.lower() in IMAGE_SUFFIXES:
        return name
    return f"{name or f'{index:06d}'}{suffix}"


class ImageFolderSink:
    """One image per frame in a folder: an input image keeps its file name and type
    (``photo.jpg`` -> ``photo.jpg``), video frames are numbered (``000000.png``).

    Two inputs can never share an output: a name already written in this run (``Photo.JPG``
    after ``photo.jpg`` on a case-insensitive disk) gets a number (``Photo-1.JPG``) and a note.
    """

    def __init__(self, folder: str | os.PathLike[str], suffix: str = ".png") -> None:
        self.folder = Path(folder)
        self.suffix = suffix
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputError(f"cannot write frames into {self.folder}: it is a file")
        check_writable_dir(self.folder)
        self.frames_written = 0
        self.renamed: list[tuple[str, str]] = []
        self._used: set[str] = set()

    def _unique(self, name: str) -> str:
        stem, ext = os.path.splitext(name)
        candidate, n = name, 0
        while candidate.casefold() in self._used:
            n += 1
            candidate = f"{stem}-{n}{ext}"
        if candidate != name:
            self.renamed.append((name, candidate))
            print(f"stylize-rt: note: another input already became {self.folder / name}; wrote "
                  f"{self.folder / candidate}", file=sys.stderr)
        self._used.add(candidate.casefold())
        return candidate

    def write(self, frame: np.ndarray, info: FrameInfo | None = None) -> None:
        index = info.index if info is not None else self.frames_written
        name = self._unique(folder_file_name(info.name if info is not None else None, index, self.suffix))
        write_image(self.folder / name, frame)
        self.frames_written += 1

    def close(self) -> None:
        """Nothing to finalize (each frame was written atomically); say what was written."""
        if self.frames_written:
            renamed = f", {len(self.renamed)} renamed to stay apart" if self.renamed else ""
            print(f"stylize-rt: wrote {self.frames_written} images to {self.folder}{renamed}", file=sys.stderr)


class RawPipeSink:
    """Raw frames on a byte stream (stdout) for ffmpeg: W*H*3 bytes each, rgb24 or bgr24.

    Every frame keeps the first frame's size (the reader was told one ``-s WxH``).
    """

    def __init__(self, stream: BinaryIO, pix_fmt: str = "rgb24") -> None:
        if pix_fmt not in PIX_FMTS:
            raise BadInputError(f"--pix-fmt must be one of {', '.join(PIX_FMTS)} (got {pix_fmt!r})")
        self._stream = stream
        self.pix_fmt = pix_fmt
        self.size: tuple[int, int] | None = None
        self.frames_written = 0

    def write(self, frame: np.ndarray, info: FrameInfo | None = None) -> None:
        if self.size is None:
            self.size = (frame.shape[1], frame.shape[0])
        elif (frame.shape[1], frame.shape[0]) != self.size:
            frame = resize(frame, *self.size)
        if self.pix_fmt == "bgr24":
            frame = rgb_to_bgr(frame)  # cv2 (any strides): 30x a numpy flip at 720p
        try:
            self._stream.write(np.ascontiguousarray(frame).data)
        except BrokenPipeError:
            raise OutputError("output pipe closed by the reader") from None
        except OSError as exc:
            raise output_error("stdout", exc) from None
        self.frames_written += 1

    def close(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            pass
        except OSError as exc:
            raise output_error("stdout", exc) from None


class NullSink:
    """Discards frames: for ``--no-display`` runs that only measure (``--stats``)."""

    frames_written = 0

    def write(self, frame: np.ndarray, info: FrameInfo | None = None) -> None:
        self.frames_written += 1

    def close(self) -> None:
        """Nothing to finalize: frames are only counted."""


class TeeSink:
    """Several sinks at once (a camera shown in a window and recorded to a file)."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = list(sinks)

    @property
    def quit(self) -> bool:
        return any(getattr(sink, "quit", False) for sink in self.sinks)

    def write(self, frame: np.ndarray, info: FrameInfo) -> None:
        for sink in self.sinks:
            sink.write(frame, info)

    def close(self) -> None:
        errors = []
        for sink in self.sinks:
            try:
                sink.close()
            except OutputError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


VIRTUALCAM = "virtualcam"


def output_kind(spec: str) -> str:
    """What ``--output SPEC`` writes: raw, stream, virtualcam, video, image or folder (or a one-line error)."""
    if spec == "-":
        return "raw"
    if spec == VIRTUALCAM:
        return "virtualcam"
    if "://" in spec:
        return "stream"
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix in CONTAINERS:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix and not path.is_dir():
        raise BadInputError(
            f"cannot tell what to write for {path.name!r}: use a video ({', '.join(CONTAINERS)}), "
            f"an image ({', '.join(IMAGE_SUFFIXES)}), a folder, a stream URL "
            f"({', '.join(s + '://' for s in STREAM_CONTAINERS)}), {VIRTUALCAM}, or - for raw frames"
        )
    return "folder"


def open_sink(spec: str, fps: float | None = None, pix_fmt: str = "rgb24", single_image: bool = False,
              stdout: BinaryIO | None = None, encode: EncodeOptions | None = None,
              audio: AudioInput | None = None, use_source_times: bool = True) -> Sink:
    """The sink for ``--output PATH|URL|virtualcam|-``: a video, an image, a folder, a network
    stream, a virtual camera, or raw frames on stdout."""
    kind = output_kind(spec)
    if kind == "raw":
        if stdout is None and sys.stdout is None:  # started with stdout closed (`>&-`)
            raise OutputError("--output - writes raw frames to stdout, but stdout is closed: "
                              "pipe it into a reader or write to a file")
        return RawPipeSink(stdout or sys.stdout.buffer, pix_fmt)
    if kind == "virtualcam":
        return VirtualCameraSink(fps)
    if kind == "stream":
        return StreamSink(spec, fps, encode, use_source_times)
    path = Path(spec)
    if kind == "video":
        return VideoFileSink(path, fps, encode=encode, audio=audio, use_source_times=use_source_times)
    if kind == "image":
        if not single_image:
            raise BadInputError(
                f"output {path.name} is one image but the input is a stream of frames: "
                "write to a video (.mp4) or a folder instead"
            )
        return ImageFileSink(path)
    return ImageFolderSink(path)
