"""Frame sources: where frames come from (files, folders, cameras, streams, raw pipes).

A source is any object with ``read() -> frame | None`` (HWC uint8 RGB; ``None`` at the
end), ``close()`` and a few attributes the pipeline reads (``live``, ``fps``, ``size``,
``frame_count``). ``live`` sources (cameras, network streams) are read as fast as they
produce and the newest frame wins; the others are read in order and nothing is dropped.

Optional attributes, read with ``getattr``: ``timing`` (a :class:`FrameTiming` for the frame
``read`` returned last: its presentation time, and for live sources when it was captured),
``audio`` (a file's audio streams for video sinks to carry over), ``input_files`` (what the
run reads, so no output may replace it) and ``frame_name`` (the file name of the last frame).
Files and network streams are decoded by FFmpeg through PyAV; cameras and windows stay on
OpenCV.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Protocol, runtime_checkable

import av
import cv2
import numpy as np

from stylize_rt.errors import BadInputError, StylizeError, first_line
from stylize_rt.imageio import IMAGE_SUFFIXES, read_image
from stylize_rt.runtime.av_audio import AudioInput, describe_stream
from stylize_rt.runtime.av_reader import frame_to_rgb, open_input
from stylize_rt.runtime.frames import bgr_to_rgb, quiet_opencv

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".flv", ".wmv")
# Network protocols FFmpeg opens; live ones get latest-frame-wins reading.
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "udp", "rtp", "srt", "tcp")
FILE_LIKE_SCHEMES = ("http", "https")
PIX_FMTS = ("rgb24", "bgr24")
DEFAULT_RECONNECTS = 5  # --reconnect: attempts before a lost live stream ends the run
DEFAULT_TIMEOUT_S = 10.0  # --timeout: a network stream silent this long counts as lost
_MAX_STREAM_JUMP_S = 5.0  # a live stream's clock jumping further (or backwards) is a restarted sender
# Containers may estimate their frame count; fewer decoded frames than this share short of
# it (and more than 2 frames short) means the file is cut short or damaged.
_TRUNCATION_TOLERANCE = 0.02


@runtime_checkable
class Source(Protocol):
    """What the pipeline needs from a frame source; implement it to feed your own frames.

    Optional: ``continuous = True`` says consecutive frames are one shot (a camera, a video), so
    the pipeline may follow the camera's motion from frame to frame (``runtime.grid_anchor``).
    """

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


@dataclass(frozen=True)
class FrameTiming:
    """When the frame a source returned last belongs: what sinks stamp into video outputs."""

    pts: float | None  # presentation time, seconds from the source's first frame (None: no clock)
    duration: float | None  # how long it is shown, seconds
    captured_at: float | None = None  # time.perf_counter() when a live source received it


class VideoFileSource:
    """A video file (or an in-memory one) decoded by FFmpeg through PyAV; frames in order, none dropped.

    Each frame keeps the file's timestamp (``timing``), so a variable-frame-rate clip stays in
    sync; ``audio`` names the file's audio streams for a video sink to carry over. The first
    frame is decoded on opening: a file that opens but does not decode fails here, before
    any model is loaded.
    """

    live = False
    continuous = True

    def __init__(self, path: str | os.PathLike[str] | BinaryIO, hwaccel: str = "auto") -> None:
        in_memory = hasattr(path, "read")
        self.path = None if in_memory else Path(path)
        self.name = "<memory>" if in_memory else str(self.path)
        if self.path is not None:
            if not self.path.exists():
                raise BadInputError(f"input not found: {self.path}")
            if self.path.is_dir():
                raise BadInputError(f"input {self.path} is a folder, not a video")
        self.input_files = [self.path] if self.path is not None else []
        try:
            self._container = open_input(path if in_memory else str(self.path), hwaccel)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise BadInputError(
                f"cannot read video {self.name}: {_reason(exc)} (not a format FFmpeg can decode, or the file is "
                "truncated/corrupt: an .mp4 cut short loses its index)"
            ) from None
        try:
            self._open_stream()
        except BaseException:
            self.close()
            raise

    def _open_stream(self) -> None:
        container = self._container
        if not container.streams.video:
            raise BadInputError(f"cannot read video {self.name}: it has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads: decoding keeps up with the model
        self._stream = stream
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate and 0 < float(rate) < 1000 else None
        self.frame_count = stream.frames or None
        self.frames_read = 0
        self.timing: FrameTiming | None = None
        self._error: str | None = None
        self._frames = container.decode(stream)
        first = self._decode()
        if first is None:
            detail = f": {self._error}" if self._error else ""
            raise BadInputError(f"cannot read video {self.name}: no frame could be decoded (truncated or corrupt file)"
                                f"{detail}")
        start = stream.start_time
        self._origin = float(start * stream.time_base) if start is not None else (first.time or 0.0)
        self._next = first
        rgb = frame_to_rgb(first)
        self._next_rgb = rgb
        self.size = (rgb.shape[1], rgb.shape[0])
        self.audio = self._audio_input()

    def _audio_input(self) -> AudioInput | None:
        streams = [s for s in self._container.streams.audio if s.codec_context is not None]
        if self.path is None or not streams:
            return None
        return AudioInput(str(self.path), tuple(s.index for s in streams), self._origin,
                          tuple(describe_stream(s) for s in streams))

    def _decode(self):
        try:
            return next(self._frames, None)
        except (av.error.FFmpegError, OSError) as exc:  # damaged data mid-file: what came before counts
            self._error = _reason(exc)
            return None

    def read(self) -> np.ndarray | None:
        frame = self._next
        if frame is None:
            self._check_complete()
            return None
        rgb = self._next_rgb if self._next_rgb is not None else frame_to_rgb(frame)
        self._next_rgb = None
        self._next = self._decode()
        self.frames_read += 1
        self.timing = self._timing(frame)
        return rgb

    def _timing(self, frame) -> FrameTiming:
        default = 1.0 / self.fps if self.fps else None
        if frame.pts is None or frame.time_base is None:
            index = self.frames_read - 1
            return FrameTiming(index * default if default else None, default)
        duration = float(frame.duration * frame.time_base) if frame.duration else default
        return FrameTiming(float(frame.pts * frame.time_base) - self._origin, duration)

    def _check_complete(self) -> None:
        """The container said N frames and fewer decoded: the file is cut short or damaged."""
        expected = self.frame_count
        detail = f" ({self._error})" if self._error else ""
        if expected and self.frames_read < expected - max(2, int(expected * _TRUNCATION_TOLERANCE)):
            raise BadInputError(
                f"video {self.name} ended early: decoded {self.frames_read} of {expected} frames "
                f"(truncated or corrupt file{detail}); the frames before the damage were processed"
            )
        if self._error and not expected:
            raise BadInputError(f"video {self.name} ended early after {self.frames_read} frames: {self._error}; "
                                "the frames before the damage were processed")

    def close(self) -> None:
        container, self._container = getattr(self, "_container", None), None
        self._next = self._next_rgb = None
        if container is not None:
            container.close()


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or first_line(exc)


class ImageSource:
    """One still image: a single frame."""

    live = False
    continuous = False
    fps = None
    frame_count = 1

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        if not self.path.is_file():
            raise BadInputError(f"input not found: {self.path}")
        self._frame: np.ndarray | None = read_image(self.path)
        self.size = (self._frame.shape[1], self._frame.shape[0])
        self.frame_name = self.path.name  # folder outputs keep the input's file name
        self.input_files = [self.path]

    def read(self) -> np.ndarray | None:
        frame, self._frame = self._frame, None
        return frame

    def close(self) -> None:
        self._frame = None


class ImageFolderSource:
    """The images in a folder, in name order; unreadable files are skipped, counted and named
    in ``skipped`` (the run reports them and exits with its own code)."""

    live = False
    continuous = False
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
        self.input_files = list(self._paths)
        self.skipped: list[str] = []
        self.frame_name: str | None = None
        self._next = 0
        self.size = None  # the first readable image's (for the model's warm-up)
        for path in self._paths:
            try:
                first = read_image(path)
            except BadInputError:
                continue
            self.size = (first.shape[1], first.shape[0])
            break

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
            self.frame_name = path.name
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
    continuous = True
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
        return bgr_to_rgb(frame) if self.pix_fmt == "bgr24" else frame  # cv2: 30x a numpy flip at 720p

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

    def _grab(self) -> np.ndarray | None:
        """grab() dequeues the frame from the driver (its capture time), retrieve() decodes it."""
        if self._cap is None or not self._cap.grab():
            return None
        self.grabbed_at = time.perf_counter()
        ok, frame = self._cap.retrieve()
        return frame if ok else None

    grabbed_at: float | None = None

    def read(self) -> np.ndarray:
        frame = self._grab()
        if frame is not None:
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
            frame = self._grab()
            if frame is not None:
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
    continuous = True
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
        self.timing: FrameTiming | None = None
        self._first_at: float | None = None

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
        frame = bgr_to_rgb(self._capture.read())
        captured = self._capture.grabbed_at
        if self._first_at is None:
            self._first_at = captured
        # Output timestamps are the capture times: a recording keeps the camera's real pace.
        self.timing = FrameTiming(captured - self._first_at, 1.0 / self.fps if self.fps else None, captured)
        return frame

    def close(self) -> None:
        self._capture.release()


class StreamSource:
    """A network stream (RTSP, RTMP, UDP, SRT, HTTP/HLS) decoded by FFmpeg through PyAV.

    Live streams (RTSP/RTMP/UDP/SRT/TCP, and HTTP without a known duration, such as a live HLS
    playlist) are read as fast as they come, latest frame wins; when one stops delivering
    (``timeout_s`` without data, or its end) it is reopened up to ``reconnect`` times with
    backoff before the run ends with an error. An HTTP(S) file is read like a file, every
    frame in order (FFmpeg's HTTP reconnect options resume it after a dropped connection).
    """

    continuous = True

    frame_name = None
    input_files: list[Path] = []

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S, reconnect: int = DEFAULT_RECONNECTS,
                 hwaccel: str = "auto", backoff_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)) -> None:
        scheme = url.split("://", 1)[0].lower()
        if scheme not in LIVE_SCHEMES + FILE_LIKE_SCHEMES:
            raise BadInputError(
                f"unsupported URL scheme {scheme + '://'!r} in {url!r} "
                f"(supported: {', '.join(s + '://' for s in LIVE_SCHEMES + FILE_LIKE_SCHEMES)})"
            )
        if reconnect < 0:
            raise BadInputError(f"--reconnect must be >= 0 (got {reconnect})")
        self.url = url
        self.name = url
        self.scheme = scheme
        self.timeout_s = timeout_s
        self.reconnect = reconnect
        self.hwaccel = hwaccel
        self.backoff_s = backoff_s
        self.reconnects = 0
        self.timing: FrameTiming | None = None
        self.frames_read = 0
        self._last: FrameTiming | None = None
        self._origin: float | None = None
        self._open(first=True)
        stream = self._container.streams.video[0]
        self.live = scheme in LIVE_SCHEMES or self._container.duration is None
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate and 0 < float(rate) < 1000 else None
        self.frame_count = None if self.live else (stream.frames or None)
        ctx = stream.codec_context
        self.size = (ctx.width, ctx.height) if ctx.width and ctx.height else None

    def _options(self) -> dict[str, str]:
        options: dict[str, str] = {}
        if self.scheme in FILE_LIKE_SCHEMES and self.reconnect:
            options.update({"reconnect": "1", "reconnect_streamed": "1", "reconnect_on_network_error": "1",
                            "reconnect_delay_max": str(int(sum(self.backoff_s[: self.reconnect])) or 1)})
        if self.scheme in LIVE_SCHEMES:
            options["fflags"] = "nobuffer"  # hand frames over as they arrive: latency, not smoothness
        if self.scheme in ("rtsp", "rtsps"):
            options["rtsp_flags"] = "prefer_tcp"
        return options

    def _open(self, first: bool = False) -> bool:
        try:
            container = open_input(self.url, self.hwaccel, self._options(), timeout=(self.timeout_s, self.timeout_s))
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            if first:
                raise BadInputError(f"cannot open stream {self.url}: {self._why(exc)} "
                                    "(unreachable, refused, timed out, or not a video)") from None
            self._open_error = self._why(exc)
            return False
        if not container.streams.video:
            container.close()
            if first:
                raise BadInputError(f"stream {self.url} has no video")
            return False
        self._container = container
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        self._frames = container.decode(stream)
        self._origin: float | None = None
        return True

    def read(self) -> np.ndarray | None:
        while True:
            frame, error = self._decode()
            if frame is not None:
                return self._deliver(frame)
            if not self.live:
                if error:
                    raise BadInputError(f"stream {self.url} failed after {self.frames_read} frames: {error}")
                return None
            if not self._reopen(error or "the stream ended"):
                if self.reconnect == 0 and error is None:
                    return None  # a live stream that ended, with no reconnects asked for: the end
                raise StylizeError(f"lost stream {self.url} ({error or 'it ended'}) and it did not come back "
                                   f"after {self.reconnect} reconnect attempts")

    def _decode(self):
        try:
            return next(self._frames, None), None
        except (av.error.FFmpegError, OSError) as exc:
            return None, self._why(exc)

    def _why(self, exc: BaseException) -> str:
        if isinstance(exc, av.error.ExitError):  # PyAV's timeout interrupts FFmpeg's wait
            return f"no data for {self.timeout_s:g} s"
        return _reason(exc)

    def _deliver(self, frame) -> np.ndarray:
        now = time.perf_counter()
        rgb = frame_to_rgb(frame)
        default = 1.0 / self.fps if self.fps else None
        t = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base is not None else None
        if t is None:
            pts = (self._last.pts + (self._last.duration or 0)) if self._last and self._last.pts is not None else 0.0
        else:
            jumped = self._origin is not None and self._last is not None and not (
                self._last.pts < t - self._origin < self._last.pts + _MAX_STREAM_JUMP_S)
            if self._origin is None or jumped:  # a new connection, or the sender restarted its clock
                gap = now - self._last.captured_at if self._last and self._last.captured_at else 0.0
                base = (self._last.pts or 0.0) + max(gap, self._last.duration or 0.0) if self._last else 0.0
                self._origin = t - base  # the timeline continues by the arrival time in between
            pts = t - self._origin
        duration = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else default
        self.timing = self._last = FrameTiming(pts, duration, now)
        self.frames_read += 1
        return rgb

    def _reopen(self, reason: str) -> bool:
        self._close_container()
        for attempt in range(self.reconnect):
            delay = self.backoff_s[min(attempt, len(self.backoff_s) - 1)]
            print(f"stylize-rt: warning: lost stream {self.url} ({reason}); reconnecting in {delay:g} s", file=sys.stderr)
            reason = "reconnect failed"
            time.sleep(delay)
            if self._open():
                self.reconnects += 1
                print(f"stylize-rt: stream {self.url} is back", file=sys.stderr)
                return True
            reason = f"reopening failed: {self._open_error}"
        return False

    _open_error = ""

    def _close_container(self) -> None:
        container, self._container = getattr(self, "_container", None), None
        self._frames = iter(())
        if container is not None:
            with contextlib.suppress(av.error.FFmpegError, OSError):
                container.close()

    def close(self) -> None:
        self._close_container()


def open_source(
    spec: str | None = None,
    camera: int | None = None,
    camera_size: tuple[int, int] | None = None,
    camera_fps: float | None = None,
    raw_size: tuple[int, int] | None = None,
    pix_fmt: str = "rgb24",
    fps: float | None = None,
    stdin: BinaryIO | None = None,
    hwaccel: str = "auto",
    reconnect: int = DEFAULT_RECONNECTS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Source:
    """The source for ``--camera N`` or ``--input PATH|URL|-`` (what the CLI calls)."""
    if camera is not None:
        return CameraSource(camera, camera_size, camera_fps)
    if spec is None:
        raise BadInputError("no input: give --camera N, --input PATH|URL, or --input - for raw frames on stdin")
    if spec == "-":
        if raw_size is None:
            raise BadInputError("--input - (raw frames on stdin) needs --raw-size WxH")
        if stdin is None and sys.stdin is None:  # started with stdin closed (`<&-`)
            raise BadInputError("--input - reads raw frames from stdin, but stdin is closed: pipe frames in")
        if stdin is None and sys.stdin.isatty():
            raise BadInputError("--input - reads raw frames from stdin, but stdin is a terminal: pipe frames in "
                                "(e.g. ffmpeg -i in.mp4 -f rawvideo -pix_fmt rgb24 - | stylize-rt --input - ...)")
        return RawPipeSource(stdin or sys.stdin.buffer, raw_size, pix_fmt, fps or 30.0)
    if "://" in spec:
        return StreamSource(spec, timeout_s=timeout_s, reconnect=reconnect, hwaccel=hwaccel)
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path)
    return VideoFileSource(path, hwaccel=hwaccel)
