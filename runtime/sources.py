"""Frame sources: where frames come from (files, folders, cameras, streams, raw pipes).

A source is any object with ``read() -> frame | None`` (HWC uint8 RGB; ``None`` at the
end), ``close()`` and a few attributes the pipeline reads (``live``, ``fps``, ``size``,
``frame_count``). ``live`` sources (cameras, network streams) are read as fast as they
produce and the newest frame wins; the others are read in order and nothing is dropped.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import BinaryIO, Callable, Protocol, runtime_checkable

import cv2
import numpy as np

from stylize_rt.errors import BadInputError, StylizeError
from stylize_rt.imageio import IMAGE_SUFFIXES, read_image
from stylize_rt.runtime.frames import bgr_to_rgb, quiet_opencv

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".flv", ".wmv")
# Network protocols FFmpeg (through OpenCV) opens; live ones get latest-frame-wins reading.
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "udp", "rtp", "srt", "tcp")
FILE_LIKE_SCHEMES = ("http", "https")
PIX_FMTS = ("rgb24", "bgr24")
# Containers may estimate their frame count; fewer decoded frames than this share short of
# it (and more than 2 frames short) means the file is cut short or damaged.
_TRUNCATION_TOLERANCE = 0.02


@runtime_checkable
class Source(Protocol):
    """What the pipeline needs from a frame source; implement it to feed your own frames."""

    name: str
    live: bool  # True: drop stale frames, keep latency low. False: every frame, in order.
    fps: float | None  # frames per second if known (written into video outputs)
    size: tuple[int, int] | None  # (width, height) of the frames, if known before reading
    frame_count: int | None  # number of frames, if known (progress bars, truncation checks)

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


def _open_capture(target, api: int, params: list[int] | None = None):
    quiet_opencv()
    cap = cv2.VideoCapture(target, api, params or [])
    return cap if cap.isOpened() else None


class VideoFileSource:
    """A video file decoded by OpenCV's FFmpeg backend; frames in order, none dropped."""

    live = False

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        if not self.path.exists():
            raise BadInputError(f"input not found: {self.path}")
        if self.path.is_dir():
            raise BadInputError(f"input {self.path} is a folder, not a video")
        self._cap = _open_capture(str(self.path), cv2.CAP_FFMPEG)
        if self._cap is None:
            raise BadInputError(
                f"cannot read video {self.path}: not a format FFmpeg can decode, or the file is "
                "truncated/corrupt (an .mp4 cut short loses its index)"
            )
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else None
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None
        w, h = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (w, h) if w > 0 and h > 0 else None
        self.frames_read = 0

    def read(self) -> np.ndarray | None:
        ok, frame = self._cap.read() if self._cap is not None else (False, None)
        if ok and frame is not None:
            self.frames_read += 1
            return bgr_to_rgb(frame)
        self._check_complete()
        return None

    def _check_complete(self) -> None:
        """The container said N frames and fewer decoded: the file is cut short or damaged."""
        if self.frames_read == 0:
            raise BadInputError(f"cannot read video {self.path}: no frame could be decoded (truncated or corrupt file)")
        expected = self.frame_count
        if expected and self.frames_read < expected - max(2, int(expected * _TRUNCATION_TOLERANCE)):
            raise BadInputError(
                f"video {self.path} ended early: decoded {self.frames_read} of {expected} frames "
                "(truncated or corrupt file); the frames before the damage were processed"
            )

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageSource:
    """One still image: a single frame."""

    live = False
    fps = None
    frame_count = 1

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        if not self.path.is_file():
            raise BadInputError(f"input not found: {self.path}")
        self._frame: np.ndarray | None = read_image(self.path)
        self.size = (self._frame.shape[1], self._frame.shape[0])
        self.frame_name = self.path.stem

    def read(self) -> np.ndarray | None:
        frame, self._frame = self._frame, None
        return frame

    def close(self) -> None:
        self._frame = None


class ImageFolderSource:
    """The images in a folder, in name order; unreadable files are skipped and counted."""

    live = False
    fps = None

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.name = str(self.folder)
        if not self.folder.is_dir():
            raise BadInputError(f"input folder not found: {self.folder}")
        self._paths = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._paths:
            raise BadInputError(f"no images in {self.folder} (looked for {', '.join(IMAGE_SUFFIXES)})")
        self.frame_count = len(self._paths)
        self.skipped: list[str] = []
        self.frame_name: str | None = None
        self._next = 0
        first = read_image(self._paths[0])
        self.size = (first.shape[1], first.shape[0])

    def read(self) -> np.ndarray | None:
        while self._next < len(self._paths):
            path = self._paths[self._next]
            self._next += 1
            try:
                frame = read_image(path)
            except BadInputError:
                self.skipped.append(path.name)
                print(f"stylize-rt: warning: skipped unreadable image {path}", file=sys.stderr)
                continue
            self.frame_name = path.stem
            return frame
        if len(self.skipped) == len(self._paths):
            raise BadInputError(f"none of the {len(self._paths)} images in {self.folder} could be read")
        return None

    def close(self) -> None:
        self._paths = []


class RawPipeSource:
    """Raw frames on a byte stream (stdin): exactly W*H*3 bytes per frame, rgb24 or bgr24.

    This is what ``ffmpeg -f rawvideo -pix_fmt rgb24 -`` writes; a stream whose length is
    not a whole number of frames means ``--raw-size`` is wrong or the writer died mid-frame.
    """

    live = False
    frame_name = None

    def __init__(self, stream: BinaryIO, size: tuple[int, int], pix_fmt: str = "rgb24", fps: float | None = None) -> None:
        if pix_fmt not in PIX_FMTS:
            raise BadInputError(f"--pix-fmt must be one of {', '.join(PIX_FMTS)} (got {pix_fmt!r})")
        self._stream = stream
        self.size = size
        self.pix_fmt = pix_fmt
        self.fps = fps
        self.frame_count = None
        self.name = "stdin"
        self.frames_read = 0
        self._frame_bytes = size[0] * size[1] * 3

    def read(self) -> np.ndarray | None:
        buffer = bytearray(self._frame_bytes)
        view = memoryview(buffer)
        got = 0
        while got < self._frame_bytes:
            n = self._stream.readinto(view[got:])
            if not n:
                break
            got += n
        if got == 0:
            return None
        if got < self._frame_bytes:
            w, h = self.size
            raise BadInputError(
                f"raw input ended in the middle of frame {self.frames_read + 1}: got {got} of "
                f"{self._frame_bytes} bytes ({w}x{h}x3); check --raw-size and --pix-fmt "
                f"({self.frames_read} whole frames were processed)"
            )
        self.frames_read += 1
        frame = np.frombuffer(buffer, np.uint8).reshape(self.size[1], self.size[0], 3)
        return np.ascontiguousarray(frame[..., ::-1]) if self.pix_fmt == "bgr24" else frame

    def close(self) -> None:
        pass


class ReconnectingCapture:
    """An OpenCV capture that reopens after read failures, with exponential backoff.

    Cameras get unplugged and network streams drop; a live run should ride out a short
    outage and end with a clear message after a long one, not hang or crash. ``opener``
    returns an opened ``cv2.VideoCapture`` or ``None``.
    """

    def __init__(self, opener: Callable[[], object | None], what: str, backoff_s: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)) -> None:
        self._opener = opener
        self.what = what
        self.backoff_s = backoff_s
        self.reconnects = 0
        self._cap = opener()
        if self._cap is None:
            raise BadInputError(f"cannot open {what}")

    @property
    def capture(self):
        return self._cap

    def read(self) -> np.ndarray:
        ok, frame = self._cap.read() if self._cap is not None else (False, None)
        if ok and frame is not None:
            return frame
        waited = 0.0
        for delay in self.backoff_s:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            print(f"stylize-rt: warning: lost {self.what}; reconnecting in {delay:g} s", file=sys.stderr)
            time.sleep(delay)
            waited += delay
            self._cap = self._opener()
            if self._cap is None:
                continue
            ok, frame = self._cap.read()
            if ok and frame is not None:
                self.reconnects += 1
                print(f"stylize-rt: {self.what} is back", file=sys.stderr)
                return frame
        raise StylizeError(f"lost {self.what} and it did not come back after {waited:g} s of retries")

    def release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _camera_api() -> int:
    if sys.platform.startswith("linux"):
        return cv2.CAP_V4L2
    if sys.platform == "win32":
        return cv2.CAP_MSMF
    if sys.platform == "darwin":
        return cv2.CAP_AVFOUNDATION
    return cv2.CAP_ANY


class CameraSource:
    """A local camera: V4L2 on Linux, MJPG where offered, a driver buffer of one frame."""

    live = True
    frame_count = None
    frame_name = None

    def __init__(self, index: int, size: tuple[int, int] | None = None, fps: float | None = None,
                 backoff_s: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)) -> None:
        self.index = index
        self.name = f"camera {index}"
        self._requested = (size, fps)
        if index < 0:
            raise BadInputError(f"--camera must be a device index >= 0 (got {index})")
        if sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists():
            present = sorted(p.name for p in Path("/dev").glob("video*"))
            raise BadInputError(
                f"camera {index} not found: no /dev/video{index} "
                f"(present: {', '.join(present) if present else 'no video devices'})"
            )
        try:
            self._capture = ReconnectingCapture(self._open, f"camera {index}", backoff_s)
        except BadInputError:
            raise BadInputError(
                f"camera {index} exists but cannot be opened: in use by another program, no permission "
                "(Linux: is the user in the 'video' group?), or not a capture device"
            ) from None
        cap = self._capture.capture
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (w, h) if w > 0 and h > 0 else None
        got_fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = got_fps if 0 < got_fps < 1000 else fps

    def _open(self):
        cap = _open_capture(self.index, _camera_api())
        if cap is None:
            return None
        size, fps = self._requested
        # Order matters on V4L2: pixel format first, then size, then rate.
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        if size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    def read(self) -> np.ndarray | None:
        return bgr_to_rgb(self._capture.read())

    def close(self) -> None:
        self._capture.release()


class StreamSource:
    """A network stream (RTSP, RTMP, UDP, SRT, HTTP) through OpenCV's FFmpeg backend.

    RTSP-like streams are live (latest frame wins, reconnect on drop-outs); an HTTP(S) URL
    is read like a file, every frame in order.
    """

    frame_name = None

    def __init__(self, url: str, timeout_s: float = 10.0, backoff_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)) -> None:
        scheme = url.split("://", 1)[0].lower()
        if scheme not in LIVE_SCHEMES + FILE_LIKE_SCHEMES:
            raise BadInputError(
                f"unsupported URL scheme {scheme + '://'!r} in {url!r} "
                f"(supported: {', '.join(s + '://' for s in LIVE_SCHEMES + FILE_LIKE_SCHEMES)})"
            )
        self.url = url
        self.name = url
        self.live = scheme in LIVE_SCHEMES
        ms = int(timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        opener = lambda: _open_capture(url, cv2.CAP_FFMPEG, params)  # noqa: E731
        if self.live:
            self._capture = ReconnectingCapture(opener, f"stream {url}", backoff_s)
            cap = self._capture.capture
        else:
            cap = opener()
            if cap is None:
                raise BadInputError(f"cannot open stream {url}: unreachable, refused, or not a video")
            self._capture = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else None
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 and not self.live else None
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (w, h) if w > 0 and h > 0 else None

    def read(self) -> np.ndarray | None:
        if self.live:
            return bgr_to_rgb(self._capture.read())
        ok, frame = self._capture.read()
        return bgr_to_rgb(frame) if ok and frame is not None else None

    def close(self) -> None:
        self._capture.release()


def open_source(
    spec: str | None = None,
    camera: int | None = None,
    camera_size: tuple[int, int] | None = None,
    camera_fps: float | None = None,
    raw_size: tuple[int, int] | None = None,
    pix_fmt: str = "rgb24",
    fps: float | None = None,
    stdin: BinaryIO | None = None,
) -> Source:
    """The source for ``--camera N`` or ``--input PATH|URL|-`` (what the CLI calls)."""
    if camera is not None:
        return CameraSource(camera, camera_size, camera_fps)
    if spec is None:
        raise BadInputError("no input: give --camera N, --input PATH|URL, or --input - for raw frames on stdin")
    if spec == "-":
        if raw_size is None:
            raise BadInputError("--input - (raw frames on stdin) needs --raw-size WxH")
        if stdin is None and sys.stdin is not None and sys.stdin.isatty():
            raise BadInputError("--input - reads raw frames from stdin, but stdin is a terminal: pipe frames in "
                                "(e.g. ffmpeg -i in.mp4 -f rawvideo -pix_fmt rgb24 - | stylize-rt --input - ...)")
        return RawPipeSource(stdin or sys.stdin.buffer, raw_size, pix_fmt, fps or 30.0)
    if "://" in spec:
        return StreamSource(spec)
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path)
    return VideoFileSource(path)
