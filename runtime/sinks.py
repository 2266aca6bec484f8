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

import cv2
import numpy as np

from stylize_rt.errors import BadInputError, OutputError
from stylize_rt.fileio import check_writable_dir, output_error, shareable_mode
from stylize_rt.imageio import IMAGE_SUFFIXES, write_image
from stylize_rt.runtime.frames import resize, rgb_to_bgr
from stylize_rt.runtime.sources import PIX_FMTS

# Container -> codec OpenCV's FFmpeg writer has in every build (no patent-encumbered H.264).
# ``--codec FOURCC`` picks another (e.g. avc1 where the OpenCV build has an H.264 encoder).
VIDEO_FOURCCS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG", ".webm": "VP80"}
# Stop writing a video while this much room is left, so the container index still fits.
DEFAULT_MIN_FREE_BYTES = 32 * 1024 * 1024


@dataclass
class FrameInfo:
    """What the pipeline knows about a frame besides its pixels."""

    index: int  # 0-based position in the source
    captured_at: float  # time.perf_counter() when the source returned it
    name: str | None = None  # source file stem (image folders), for output names
    original: np.ndarray | None = None  # the unstylized frame (before resizing, with keep_original)
    stats: Any = None  # the run's live RunStats (readouts in windows)


@runtime_checkable
class Sink(Protocol):
    """What the pipeline needs from a frame sink; implement it to take frames yourself.

    A sink may also have a ``quit`` attribute: when it turns true (a window's viewer pressed
    q), the run ends after that frame.
    """

    def write(self, frame: np.ndarray, info: FrameInfo) -> None: ...

    def close(self) -> None: ...


class VideoFileSink:
    """A video file written by OpenCV's FFmpeg writer at the source's frame rate.

    OpenCV's writer reports no write errors, so free disk space is checked before each
    frame: below ``min_free_bytes`` the file is finalized (its index written while there is
    still room) and the run stops with a disk-full error instead of leaving a broken file.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float | None = None,
                 min_free_bytes: int = DEFAULT_MIN_FREE_BYTES, fourcc: str | None = None) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_FOURCCS:
            raise BadInputError(
                f"cannot write video {self.path.name!r}: use one of {', '.join(VIDEO_FOURCCS)}"
            )
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.min_free_bytes = min_free_bytes
        self.frames_written = 0
        self.size: tuple[int, int] | None = None
        if fourcc is not None and len(fourcc) != 4:
            raise BadInputError(f"--codec must be a four-character code such as mp4v, avc1, MJPG (got {fourcc!r})")
        self._fourcc = fourcc or VIDEO_FOURCCS[suffix]
        self._writer = None
        self._tmp: Path | None = None
        check_writable_dir(self.path.parent)
        if self.path.is_dir():
            raise OutputError(f"cannot write video {self.path}: it is a folder")

    def _open(self, width: int, height: int) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".partial{self.path.suffix}", dir=self.path.parent)
        os.close(fd)
        os.chmod(tmp, shareable_mode())
        self._tmp = Path(tmp)
        writer = cv2.VideoWriter(tmp, cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*self._fourcc), self.fps, (width, height))
        if not writer.isOpened():
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
            raise OutputError(
                f"cannot write video {self.path}: this OpenCV build cannot encode {self._fourcc} "
                f"into {self.path.suffix} at {width}x{height} (try --codec mp4v, or another container)"
            )
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
        self._writer.write(rgb_to_bgr(frame))
        self.frames_written += 1

    def close(self) -> None:
        """Finalize: write the container index, then rename the file into place."""
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        tmp, self._tmp = self._tmp, None
        try:
            if self.frames_written == 0:
                tmp.unlink(missing_ok=True)
                return
            os.replace(tmp, self.path)
        except OSError as exc:
            raise output_error(self.path, exc) from None


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


class ImageFolderSink:
    """One image per frame in a folder: the source's file names when it has them, else numbered."""

    def __init__(self, folder: str | os.PathLike[str], suffix: str = ".png") -> None:
        self.folder = Path(folder)
        self.suffix = suffix
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputError(f"cannot write frames into {self.folder}: it is a file")
        check_writable_dir(self.folder)
        self.frames_written = 0

    def write(self, frame: np.ndarray, info: FrameInfo | None = None) -> None:
        index = info.index if info is not None else self.frames_written
        name = info.name if info is not None and info.name else f"{index:06d}"
        write_image(self.folder / f"{name}{self.suffix}", frame)
        self.frames_written += 1

    def close(self) -> None:
        """Nothing to finalize: each frame was written atomically by ``write``."""


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
            frame = frame[..., ::-1]
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


def open_sink(spec: str, fps: float | None = None, pix_fmt: str = "rgb24", single_image: bool = False,
              stdout: BinaryIO | None = None, codec: str | None = None) -> Sink:
    """The sink for ``--output PATH|-``: a video, an image, a folder, or raw frames on stdout."""
    if spec == "-":
        return RawPipeSink(stdout or sys.stdout.buffer, pix_fmt)
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix in VIDEO_FOURCCS:
        return VideoFileSink(path, fps, fourcc=codec)
    if suffix in IMAGE_SUFFIXES:
        if not single_image:
            raise BadInputError(
                f"output {path.name} is one image but the input is a stream of frames: "
                "write to a video (.mp4) or a folder instead"
            )
        return ImageFileSink(path)
    if suffix and not path.is_dir():
        raise BadInputError(
            f"cannot tell what to write for {path.name!r}: use a video ({', '.join(VIDEO_FOURCCS)}), "
            f"an image ({', '.join(IMAGE_SUFFIXES)}) or a folder"
        )
    return ImageFolderSink(path)
