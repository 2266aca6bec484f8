"""The stream runner with real ONNX Runtime sessions and real video files written and read back."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from test_runtime_helpers import SlowBackend, coded_frame, decode_index, identity_onnx, read_video, write_video

from stylize_rt.errors import BadInputError, OutputError, StylizeError
from stylize_rt.runtime.backends import OnnxRuntimeBackend
from stylize_rt.runtime.caption_sink import CaptionSink
from stylize_rt.runtime.caption_worker import CaptionWorker
from stylize_rt.runtime.codecs import EncodeOptions
from stylize_rt.runtime.pipeline import PipelineConfig, StreamRunner, run_stream
from stylize_rt.runtime.sinks import FrameInfo, ImageFolderSink, NullSink, VideoFileSink
from stylize_rt.runtime.sources import ImageFolderSource, ReconnectingCapture, VideoFileSource
from stylize_rt.runtime.stylizer import Stylizer


@pytest.fixture(scope="module")
def identity_path(tmp_path_factory) -> Path:
    return identity_onnx(tmp_path_factory.mktemp("identity") / "identity.onnx")


@pytest.fixture
def identity(identity_path) -> Stylizer:
    stylizer = Stylizer(OnnxRuntimeBackend(identity_path, threads=1))
    yield stylizer
    stylizer.close()


class CollectSinkStandIn:
    """A user-written sink: keeps frames and their infos."""

    def __init__(self) -> None:
        self.frames, self.infos, self.times, self.closed = [], [], [], False

    def write(self, frame, info):
        self.frames.append(frame)
        self.infos.append(info)
        self.times.append(time.perf_counter())

    def close(self):
        self.closed = True


class TimedLiveSource:
    """A user-written live source: a new coded frame every ``interval_s`` (like a camera)."""

    live = True
    frame_count = None
    name = "timed"

    def __init__(self, count: int, interval_s: float) -> None:
        self.count, self.interval_s, self.i = count, interval_s, 0
        self.fps = 1.0 / interval_s
        self.size = (64, 48)
        self._next = time.perf_counter()

    def read(self):
        if self.i >= self.count:
            return None
        self._next += self.interval_s
        time.sleep(max(0.0, self._next - time.perf_counter()))
        frame = coded_frame(self.i % 256)
        self.i += 1
        return frame

    def close(self):
        pass


@pytest.mark.parametrize("batch", [1, 4])
def test_video_file_round_trip_keeps_every_frame_in_order(tmp_path, identity, batch):
    src = write_video(tmp_path / "in.mp4", 37, fps=12.5)
    out = tmp_path / "out.mp4"
    source = VideoFileSource(src)
    stats = run_stream(identity, source, VideoFileSink(out, source.fps), PipelineConfig(batch=batch, progress=False))
    frames = read_video(out)
    assert stats.frames_in == stats.frames_out == 37
    assert [decode_index(f) for f in frames] == list(range(37))
    assert frames[0].shape == (48, 64, 3)
    check = VideoFileSource(out)
    assert check.fps == pytest.approx(12.5, rel=0.01)
    check.close()
    assert not list(tmp_path.glob(".*partial*")), "temporary file left behind"


def test_processing_size_and_max_frames(tmp_path, identity):
    src = write_video(tmp_path / "in.mp4", 20)
    out = tmp_path / "out.avi"
    config = PipelineConfig(size=(32, 24), max_frames=7, progress=False)
    stats = run_stream(identity, VideoFileSource(src), VideoFileSink(out, 25), config)
    frames = read_video(out)
    assert stats.frames_out == 7 and len(frames) == 7
    assert frames[0].shape == (24, 32, 3)


def test_tiny_generator_video_to_video(tmp_path, tiny_onnx):
    stylizer = Stylizer(OnnxRuntimeBackend(tiny_onnx["uint8_nhwc"], threads=1))
    src = write_video(tmp_path / "in.mp4", 6)
    stats = run_stream(stylizer, VideoFileSource(src), VideoFileSink(tmp_path / "out.mp4", 25), PipelineConfig(progress=False))
    frames = read_video(tmp_path / "out.mp4")
    assert stats.frames_out == 6 and len(frames) == 6 and frames[0].shape == (48, 64, 3)
    assert np.abs(frames[0].astype(int) - coded_frame(0).astype(int)).mean() > 5  # it was stylized


def test_image_folder_to_folder_keeps_names_and_skips_unreadable(tmp_path, identity):
    import cv2

    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i, name in enumerate(["b", "a", "c"]):
        cv2.imwrite(str(src / f"{name}.png"), coded_frame(i + 1)[..., ::-1])
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    source = ImageFolderSource(src)
    run_stream(identity, source, ImageFolderSink(dst), PipelineConfig(progress=False))
    assert sorted(p.name for p in dst.iterdir()) == ["a.png", "b.png", "c.png"]
    assert source.skipped == ["broken.jpg"]
    assert decode_index(cv2.imread(str(dst / "a.png"))[..., ::-1]) == 2


def test_live_source_latest_frame_wins_under_slow_model(identity_path):
    """A 100 frames/s source and a 40 ms model: stale frames are dropped, latency stays near one model time."""
    delay = 0.04
    stylizer = Stylizer(SlowBackend(OnnxRuntimeBackend(identity_path, threads=1), delay))
    source = TimedLiveSource(count=60, interval_s=0.01)
    sink = CollectSinkStandIn()
    stats = StreamRunner(stylizer, source, sink, PipelineConfig(warm_up=False)).run()
    indices = [decode_index(f) for f in sink.frames]
    assert stats.frames_in == 60
    assert stats.dropped_capture > 20, stats.to_dict()
    assert len(sink.frames) < 30
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    latency = np.median(stats.stage("latency").samples)
    # Bounded by model time + one frame interval (+ scheduling slack); a FIFO would reach ~1.5 s here.
    assert latency < 2.5 * delay, latency
    assert "live latency budget" in stats.report()
    assert sink.closed


def test_file_source_under_slow_model_drops_nothing(identity_path, tmp_path):
    stylizer = Stylizer(SlowBackend(OnnxRuntimeBackend(identity_path, threads=1), 0.01))
    src = write_video(tmp_path / "in.mp4", 25)
    sink = CollectSinkStandIn()
    stats = StreamRunner(stylizer, VideoFileSource(src), sink, PipelineConfig(progress=False)).run()
    assert [decode_index(f) for f in sink.frames] == list(range(25))
    assert stats.dropped_capture == 0


def test_slow_captioner_never_stalls_frames(identity_path, tmp_path):
    """A captioner that takes 0.3 s per call beside a ~10 ms/frame stream: frames flow at model speed."""
    calls = []

    def slow_caption(frame: np.ndarray) -> str:
        time.sleep(0.3)
        calls.append(decode_index(frame))
        return f"frame {calls[-1]}"

    def run(captions):
        stylizer = Stylizer(SlowBackend(OnnxRuntimeBackend(identity_path, threads=1), 0.01))
        sink = CollectSinkStandIn()
        source = VideoFileSource(write_video(tmp_path / "in.mp4", 60))
        StreamRunner(stylizer, source, CaptionSink(sink, captions) if captions else sink,
                     PipelineConfig(progress=False)).run()
        return sink, sink.times[-1] - sink.times[0]

    plain_sink, plain_s = run(None)
    worker = CaptionWorker(slow_caption, interval_s=0.0)
    sink, with_captions_s = run(worker)
    assert len(sink.frames) == len(plain_sink.frames) == 60
    assert with_captions_s < plain_s * 1.3 + 0.1, (plain_s, with_captions_s)
    assert max(np.diff(sink.times)) < 0.15  # no frame waited for a 0.3 s caption
    assert 1 <= worker.captions_made < 10
    assert worker.offers == 60
    # The captions were drawn: some late frames differ from the plain run (text band at the bottom).
    assert any(np.abs(a.astype(int) - b.astype(int)).max() > 50 for a, b in zip(sink.frames[-10:], plain_sink.frames[-10:]))


def test_failing_captioner_is_switched_off_and_frames_continue(identity, tmp_path):
    def broken(frame):
        raise RuntimeError("decoder exploded")

    worker = CaptionWorker(broken, interval_s=0.0)
    sink = CollectSinkStandIn()
    source = VideoFileSource(write_video(tmp_path / "in.mp4", 10))
    StreamRunner(identity, source, CaptionSink(sink, worker), PipelineConfig(progress=False)).run()
    assert len(sink.frames) == 10
    assert worker.error == "RuntimeError: decoder exploded"


def test_truncated_video_processes_what_it_can_then_errors(identity, tmp_path):
    src = write_video(tmp_path / "in.avi", 60)
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.mp4"
    with pytest.raises(BadInputError, match="ended early"):
        run_stream(identity, VideoFileSource(src), VideoFileSink(out, 25), PipelineConfig(progress=False))
    frames = read_video(out)  # finalized and playable, holding the frames before the damage
    assert 5 < len(frames) < 60
    assert [decode_index(f) for f in frames] == list(range(len(frames)))


def test_truncated_mp4_is_a_clear_error(tmp_path):
    src = write_video(tmp_path / "in.mp4", 30)
    src.write_bytes(src.read_bytes()[:2000])
    with pytest.raises(BadInputError, match="truncated"):
        VideoFileSource(src).read()  # opens (the header survived) but nothing decodes


def test_disk_full_finalizes_video(identity, tmp_path):
    out = tmp_path / "out.mp4"
    sink = VideoFileSink(out, 25)
    for i in range(5):
        sink.write(coded_frame(i), FrameInfo(i, 0.0))
    sink.min_free_bytes = 1 << 62  # more than any disk has: the next write sees a full disk
    with pytest.raises(OutputError, match="disk full"):
        sink.write(coded_frame(5), FrameInfo(5, 0.0))
    assert [decode_index(f) for f in read_video(out)] == [0, 1, 2, 3, 4]


def test_sink_error_stops_the_run_and_finalizes(identity, tmp_path):
    class FailingAfter(CollectSinkStandIn):
        def write(self, frame, info):
            if len(self.frames) == 3:
                raise OutputError("disk full while writing x")
            super().write(frame, info)

    sink = FailingAfter()
    with pytest.raises(OutputError):
        run_stream(identity, VideoFileSource(write_video(tmp_path / "in.mp4", 30)), sink, PipelineConfig(progress=False))
    assert len(sink.frames) == 3 and sink.closed


def test_reconnecting_capture_backs_off_then_gives_up(tmp_path):
    import cv2

    clip = write_video(tmp_path / "cam.mp4", 3)
    opens = []

    def opener():
        opens.append(time.perf_counter())
        if len(opens) > 2:  # "unplugged" after one reconnect
            return None
        return cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)

    cap = ReconnectingCapture(opener, "test camera", backoff_s=(0.01, 0.02, 0.04))
    for _ in range(3):
        cap.read()
    cap.read()  # end of clip = a dropped camera: reopened once, first frame again
    assert cap.reconnects == 1
    for _ in range(2):
        cap.read()
    with pytest.raises(StylizeError, match="did not come back"):
        cap.read()
    assert len(opens) == 5
    assert opens[-1] - opens[-3] >= 0.02 + 0.04 - 0.005


def test_null_sink_and_stats_report(identity, tmp_path):
    stats = run_stream(identity, VideoFileSource(write_video(tmp_path / "in.mp4", 10)), NullSink(), PipelineConfig(progress=False))
    report = stats.report()
    assert "model" in report and "latency" in report and stats.frames_out == 10
    assert stats.to_dict()["stages"][2]["count"] == 10


def test_http_stream_is_read_like_a_file(identity, tmp_path):
    import functools
    import http.server
    import threading

    from stylize_rt.runtime.sources import StreamSource

    write_video(tmp_path / "clip.mp4", 15)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.mp4"
        source = StreamSource(url)
        assert not source.live
        sink = CollectSinkStandIn()
        run_stream(identity, source, sink, PipelineConfig(progress=False))
        assert [decode_index(f) for f in sink.frames] == list(range(15))
        with pytest.raises(BadInputError, match="cannot open stream"):
            StreamSource(url.replace("clip", "missing"))
    finally:
        server.shutdown()


def test_refused_rtsp_stream_is_a_clear_error():
    from stylize_rt.runtime.sources import StreamSource

    started = time.perf_counter()
    with pytest.raises(BadInputError, match="cannot open stream rtsp://127.0.0.1:9/live"):
        StreamSource("rtsp://127.0.0.1:9/live", timeout_s=2.0)
    assert time.perf_counter() - started < 5


def test_pacing_and_webm(identity, tmp_path):
    """pace_fps (a file previewed in a window) plays at the given rate; .webm is written as VP9."""
    src = write_video(tmp_path / "in.mp4", 10)
    out = tmp_path / "out.webm"
    started = time.perf_counter()
    run_stream(identity, VideoFileSource(src), VideoFileSink(out, 25), PipelineConfig(pace_fps=50.0, progress=False))
    assert time.perf_counter() - started >= 9 / 50.0
    assert [decode_index(f) for f in read_video(out)] == list(range(10))


def test_unknown_codec_is_bad_input_before_anything_is_written(tmp_path):
    with pytest.raises(BadInputError, match="no such video encoder"):
        VideoFileSink(tmp_path / "out.mp4", 25, codec="ZZZZ")
    with pytest.raises(BadInputError, match="presets are"):
        VideoFileSink(tmp_path / "out.mp4", 25, encode=EncodeOptions(preset="warp"))
    assert not list(tmp_path.iterdir())
