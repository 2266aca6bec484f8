"""Network streams on loopback: FFmpeg itself (PyAV or the ffmpeg CLI) is the other side.

Everything binds 127.0.0.1, is bounded in time and is stopped by the test: UDP and RTSP
outputs received by a listening PyAV, a UDP input from an ffmpeg sender that stops and comes
back (the reconnect policy), and an HLS playlist served over HTTP.
"""

from __future__ import annotations

import functools
import http.server
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from test_runtime_cli import CLI, _env, run_cli
from test_runtime_helpers import decode_index, identity_onnx, read_video, write_video
from video_helpers import ffmpeg, ffprobe, frame_times, need_ffmpeg

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def identity(tmp_path_factory) -> Path:
    return identity_onnx(tmp_path_factory.mktemp("streams_identity") / "identity.onnx")


def _free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver(threading.Thread):
    """Listens on ``url`` with PyAV and decodes until the stream ends or ``timeout_s`` passes."""

    def __init__(self, url: str, options: dict[str, str] | None = None, timeout_s: float = 30.0) -> None:
        super().__init__(daemon=True)
        self.url, self.options, self.timeout_s = url, options or {}, timeout_s
        self.frames: list = []
        self.error: str | None = None
        self.codec: str | None = None

    def run(self) -> None:
        try:
            listening = "rtsp_flags" in self.options or "listen" in self.options  # FFmpeg's server side times out itself
            timeout = None if listening else (self.timeout_s, 5.0)
            with av.open(self.url, options=self.options, timeout=timeout) as container:
                self.codec = container.streams.video[0].codec_context.name
                for frame in container.decode(video=0):
                    self.frames.append(frame.to_ndarray(format="rgb24"))
        except av.error.FFmpegError as exc:
            if not self.frames:  # a read timeout after the last frame is how a UDP stream "ends"
                self.error = str(exc)


def test_udp_output_is_an_mpegts_h264_stream(identity, tmp_path):
    src = write_video(tmp_path / "in.mp4", 30, fps=30)
    url = f"udp://127.0.0.1:{_free_port(socket.SOCK_DGRAM)}"
    receiver = Receiver(url, timeout_s=20.0)
    receiver.start()
    time.sleep(0.5)  # the receiver binds the port first: UDP has no handshake
    result = run_cli("--engine", identity, "--input", src, "--output", url, "--no-progress", timeout=90)
    receiver.join(30)
    assert result.returncode == 0, result.stderr.decode()
    assert "zerolatency" in result.stderr.decode()
    assert receiver.error is None and receiver.codec == "h264"
    assert [decode_index(f) for f in receiver.frames] == list(range(30))


@pytest.mark.parametrize("scheme, listen", [("rtsp", {"rtsp_flags": "listen", "listen_timeout": "20"}),
                                            ("rtmp", {"listen": "1", "timeout": "20"})])
def test_rtsp_and_rtmp_outputs_push_to_a_listening_server(identity, tmp_path, scheme, listen):
    src = write_video(tmp_path / "in.mp4", 20, fps=20)
    url = f"{scheme}://127.0.0.1:{_free_port()}/live/stream"
    receiver = Receiver(url, listen)
    receiver.start()
    time.sleep(0.5)
    result = run_cli("--engine", identity, "--input", src, "--output", url, "--no-progress", timeout=90)
    receiver.join(30)
    assert result.returncode == 0, result.stderr.decode()
    assert receiver.error is None and receiver.codec == "h264"
    assert [decode_index(f) for f in receiver.frames] == list(range(20))


def test_refused_stream_output_is_a_one_line_output_error(identity, tmp_path):
    src = write_video(tmp_path / "in.mp4", 5)
    result = run_cli("--engine", identity, "--input", src, "--output", f"rtsp://127.0.0.1:{_free_port()}/none",
                     "--no-progress", timeout=60)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr.decode() and "cannot write rtsp://" in result.stderr.decode()


def _send(clip: Path, url: str) -> subprocess.Popen:
    """An ffmpeg sender playing ``clip`` in real time as MPEG-TS (what an encoder box or camera does)."""
    return subprocess.Popen(["ffmpeg", "-v", "error", "-re", "-i", str(clip), "-c:v", "libx264", "-preset", "ultrafast",
                             "-g", "10", "-f", "mpegts", f"{url}?pkt_size=1316"], stdin=subprocess.DEVNULL)


def test_udp_input_rides_out_a_sender_restart(identity, tmp_path):
    need_ffmpeg()
    first = write_video(tmp_path / "first.mp4", 40, fps=20)
    second = tmp_path / "second.mp4"
    from test_runtime_helpers import coded_frame

    from stylize_rt.runtime.sinks import FrameInfo, VideoFileSink

    sink = VideoFileSink(second, 20)
    for i in range(80):
        sink.write(coded_frame(100 + i), FrameInfo(i, 0.0))
    sink.close()
    port = _free_port(socket.SOCK_DGRAM)
    url = f"udp://127.0.0.1:{port}"
    out = tmp_path / "rec.mp4"
    proc = subprocess.Popen([*CLI, "--engine", str(identity), "--input", url, "--output", str(out), "--no-display",
                             "--timeout", "2", "--reconnect", "2"], stderr=subprocess.PIPE, env=_env())
    try:
        time.sleep(1.0)
        sender = _send(first, url)
        sender.wait(30)
        time.sleep(3.5)  # silence: the run notices after --timeout 2 and starts reconnecting
        sender = _send(second, url)
        sender.wait(30)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = stderr.decode()
    assert "reconnecting" in text and "is back" in text, text
    assert proc.returncode == 1 and "did not come back after 2 reconnect attempts" in text  # after the 2nd sender
    indexes = [decode_index(f) for f in read_video(out)]
    assert any(i < 40 for i in indexes) and any(i >= 100 for i in indexes)  # both bursts, in one file
    assert indexes == sorted(indexes)
    times = frame_times(ffprobe(out, frames=True))  # one timeline across the gap, real spacing throughout
    assert all(later - earlier >= 0.02 for earlier, later in zip(times, times[1:])), times


def test_hls_playlist_over_http_is_read_like_a_file(identity, tmp_path):
    clip = write_video(tmp_path / "clip.mp4", 50, fps=25)
    hls = tmp_path / "hls"
    hls.mkdir()
    ffmpeg("-i", clip, "-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod", hls / "index.m3u8")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(hls))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = tmp_path / "out.mp4"
        url = f"http://127.0.0.1:{server.server_address[1]}/index.m3u8"
        result = run_cli("--engine", identity, "--input", url, "--output", out, "--no-progress", timeout=90)
        assert result.returncode == 0, result.stderr.decode()
        assert [decode_index(f) for f in read_video(out)] == list(range(50))
    finally:
        server.shutdown()
