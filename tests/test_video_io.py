"""Video files users can ship: ``stylize-rt run`` as a subprocess, outputs read back by ffprobe.

H.264 yuv420p + faststart by default, the input's timestamps (VFR) and audio kept, odd sizes
kept, encoder options and hardware fallback, and the faults (double Ctrl-C, closed stdio).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_runtime_cli import CLI, _env, _error_line, like_a_terminal, run_cli
from test_runtime_helpers import coded_frame, decode_index, identity_onnx, read_video, write_video
from video_helpers import audio_packets, clip_with_audio, ffprobe, frame_times, raw_clip, rotate_mp4, stream, vfr_clip


@pytest.fixture(scope="module")
def identity(tmp_path_factory) -> Path:
    return identity_onnx(tmp_path_factory.mktemp("video_identity") / "identity.onnx")


def _ok(result) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stderr.decode()


def test_default_mp4_is_h264_yuv420p_faststart_and_says_so(identity, tmp_path):
    src = write_video(tmp_path / "in.mp4", 12)
    out = tmp_path / "out.mp4"
    stderr = _ok(run_cli("--engine", identity, "--input", src, "--output", out, "--no-progress"))
    video = stream(ffprobe(out), "video")
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p" and video["profile"] == "High"
    assert video["color_space"] == "bt709"
    head = out.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))
    lines = [line for line in stderr.splitlines() if line.startswith("stylize-rt: writing")]
    assert len(lines) == 1 and "libx264 yuv420p" in lines[0]  # encoder and pixel format, printed once
    assert [decode_index(f) for f in read_video(out)] == list(range(12))


def test_variable_frame_rate_timestamps_are_kept(identity, tmp_path):
    times = [0.0, 0.04, 0.08, 0.2, 0.23, 0.5, 0.55, 0.6, 1.0, 1.04]
    src = vfr_clip(tmp_path / "vfr.mp4", times)
    out = tmp_path / "out.mp4"
    _ok(run_cli("--engine", identity, "--input", src, "--output", out, "--no-progress"))
    got, want = ffprobe(out, frames=True), ffprobe(src, frames=True)
    assert frame_times(want) == pytest.approx(times, abs=1e-4)
    assert frame_times(got) == pytest.approx(times, abs=1e-4)
    frame = 0.04
    assert abs(float(got["format"]["duration"]) - float(want["format"]["duration"])) <= frame


def test_audio_is_copied_packet_for_packet_and_in_sync(identity, tmp_path):
    src = clip_with_audio(tmp_path / "talk.mp4", seconds=2.0)
    out = tmp_path / "talk_styled.mp4"
    stderr = _ok(run_cli("--engine", identity, "--input", src, "--output", out, "--no-progress"))
    assert "audio: aac 48000 Hz mono copied" in stderr
    info, source = ffprobe(out), ffprobe(src)
    audio, video = stream(info, "audio"), stream(info, "video")
    assert audio["codec_name"] == "aac" and int(video["nb_frames"]) == 50
    assert abs(float(audio["duration"]) - float(stream(source, "audio")["duration"])) <= 0.04
    copied, original = audio_packets(out), audio_packets(src)
    assert len(copied) >= len(original) - 1
    # Same bytes at the same times: remuxed, not re-encoded, and not shifted against the video.
    for (t_out, data_out), (t_in, data_in) in zip(copied, original):
        assert data_out == data_in and t_out == pytest.approx(t_in, abs=1e-3)


def test_no_audio_and_max_frames_cut_the_audio(identity, tmp_path):
    src = clip_with_audio(tmp_path / "in.mp4", seconds=2.0)
    silent = tmp_path / "silent.mp4"
    _ok(run_cli("--engine", identity, "--input", src, "--output", silent, "--no-audio", "--no-progress"))
    assert stream(ffprobe(silent), "audio") is None
    short = tmp_path / "short.mp4"
    _ok(run_cli("--engine", identity, "--input", src, "--output", short, "--max-frames", "10", "--no-progress"))
    info = ffprobe(short)
    assert int(stream(info, "video")["nb_frames"]) == 10
    assert float(stream(info, "audio")["duration"]) == pytest.approx(10 / 25, abs=0.03)  # one AAC packet


def test_audio_the_container_cannot_hold_is_re_encoded(identity, tmp_path):
    src = clip_with_audio(tmp_path / "in.mp4", seconds=1.0)
    out = tmp_path / "out.webm"  # WebM takes Opus/Vorbis only: AAC is re-encoded as Opus
    stderr = _ok(run_cli("--engine", identity, "--input", src, "--output", out, "--no-progress"))
    info = ffprobe(out)
    assert stream(info, "video")["codec_name"] == "vp9" and stream(info, "audio")["codec_name"] == "opus"
    assert "re-encoded as libopus" in stderr
    assert float(info["format"]["duration"]) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("suffix, codec, pix_fmt", [(".mp4", "h264", "yuv444p"), (".webm", "vp9", "yuv420p")])
def test_odd_sizes_are_kept_exactly(identity, tmp_path, suffix, codec, pix_fmt):
    rng = np.random.default_rng(0)
    src = raw_clip(tmp_path / "odd.mkv", rng.integers(0, 255, (10, 239, 321, 3), dtype=np.uint8))
    out = tmp_path / f"out{suffix}"
    stderr = _ok(run_cli("--engine", identity, "--input", src, "--output", out, "--no-progress"))
    video = stream(ffprobe(out), "video")
    assert (video["width"], video["height"]) == (321, 239)
    assert video["codec_name"] == codec and video["pix_fmt"] == pix_fmt
    if codec == "h264":  # 4:2:0 H.264 cannot: one warning naming what was done
        assert "321x239 has an odd side" in stderr and "--codec vp9" in stderr


def test_rotated_phone_clip_comes_out_upright(identity, tmp_path):
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:8, :8] = 255  # a white corner at the top left
    src = raw_clip(tmp_path / "portrait.mp4", np.stack([frame] * 5), 25, "-c:v", "libx264", "-pix_fmt", "yuv420p")
    rotate_mp4(src)
    assert stream(ffprobe(src), "video")["side_data_list"][0]["rotation"] == -90
    out = tmp_path / "out.mp4"
    _ok(run_cli("--engine", identity, "--input", src, "--output", out, "--no-progress"))
    first = read_video(out)[0]
    assert first.shape == (64, 48, 3)  # turned a quarter clockwise, as players show it
    assert first[:8, -8:].mean() > 200 and first[-8:, :8].mean() < 50


def test_hwaccel_cuda_without_nvidia_falls_back_with_one_note(identity, tmp_path):
    from stylize_rt.runtime.codecs import nvidia_driver_present

    if nvidia_driver_present():
        pytest.skip("an NVIDIA driver is present: the NVIDIA path is the GPU check's")
    src = write_video(tmp_path / "in.mp4", 6)
    out = tmp_path / "out.mp4"
    stderr = _ok(run_cli("--engine", identity, "--input", src, "--output", out, "--hwaccel", "cuda", "--no-progress"))
    notes = [line for line in stderr.splitlines() if "--hwaccel cuda" in line]
    assert len(notes) == 2, stderr  # one for NVDEC (decode), one for NVENC (encode)
    assert "decoding in software" in notes[0] and "encoding in software with libx264" in notes[1]
    assert stream(ffprobe(out), "video")["codec_name"] == "h264"
    quiet = _ok(run_cli("--engine", identity, "--input", src, "--output", out, "--hwaccel", "auto", "--no-progress"))
    assert "--hwaccel" not in quiet  # auto on a machine without an NVIDIA driver: nothing to say


@pytest.mark.parametrize("args, message", [
    (["--codec", "XXXX"], "no such video encoder"),
    (["--preset", "warp9"], "presets are"),
    (["--codec", "mjpeg", "--crf", "20"], "no constant-quality mode"),
    (["--crf", "20", "--bitrate", "4M"], "not both"),
    (["--bitrate", "lots"], "--bitrate"),
    (["--scale", "0"], "--scale must be a number above 0"),
    (["--fps", "-5"], "--fps must be a number above 0"),
    (["--reconnect", "-1"], "--reconnect"),
])
def test_bad_encoder_and_rate_options_are_exit_2(identity, tmp_path, args, message):
    src = write_video(tmp_path / "in.mp4", 3)
    out = tmp_path / "out.mp4"
    result = run_cli("--engine", identity, "--input", src, "--output", out, *args)
    assert result.returncode == 2, result.stderr.decode()
    assert message in _error_line(result)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_crf_bitrate_and_preset_reach_the_encoder(identity, tmp_path):
    src = write_video(tmp_path / "in.mp4", 10)
    low, high = tmp_path / "low.mp4", tmp_path / "high.mp4"
    stderr = _ok(run_cli("--engine", identity, "--input", src, "--output", low, "--crf", "45", "--preset",
                         "ultrafast", "--no-progress"))
    assert "preset ultrafast" in stderr and "crf 45" in stderr
    _ok(run_cli("--engine", identity, "--input", src, "--output", high, "--bitrate", "2M", "--no-progress"))
    assert low.stat().st_size < high.stat().st_size
    hevc = tmp_path / "hevc.mkv"
    _ok(run_cli("--engine", identity, "--input", src, "--output", hevc, "--codec", "hevc", "--no-progress"))
    assert stream(ffprobe(hevc), "video")["codec_name"] == "hevc"


def test_fps_re_times_the_output_and_leaves_the_audio_out(identity, tmp_path):
    src = clip_with_audio(tmp_path / "in.mp4", seconds=1.0)
    out = tmp_path / "out.mp4"
    stderr = _ok(run_cli("--engine", identity, "--input", src, "--output", out, "--fps", "50", "--no-progress"))
    info = ffprobe(out)
    assert stream(info, "audio") is None and "would drift" in stderr
    assert float(info["format"]["duration"]) == pytest.approx(25 / 50, abs=0.021)


def test_two_ctrl_c_20ms_apart_still_leave_a_playable_file(identity, tmp_path):
    """The second press lands while the file is being finalized: it must not abandon it."""
    rng = np.random.default_rng(0)
    frames = np.stack([coded_frame(i, 320, 240) for i in range(40)])
    frames[:, 120:] = rng.integers(0, 255, frames[:, 120:].shape, dtype=np.uint8)  # noise: real encoder work
    frame_bytes = frames.tobytes()
    for attempt in range(3):
        out = tmp_path / f"out{attempt}.mp4"
        proc = subprocess.Popen([*CLI, "--engine", str(identity), "--input", "-", "--raw-size", "320x240",
                                 "--output", str(out), "--no-progress", "--preset", "medium"],
                                stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), preexec_fn=like_a_terminal)
        proc.stdin.write(frame_bytes)
        proc.stdin.flush()  # stdin stays open: the run waits for more frames, as a live pipe would
        deadline = time.time() + 30
        while not list(tmp_path.glob(f".out{attempt}.*partial.mp4")) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        proc.stdin.close()
        text = stderr.decode()
        assert proc.returncode == 130, text
        assert "Traceback" not in text and "terminate called" not in text
        frames = read_video(out)
        assert frames and [decode_index(f) for f in frames] == list(range(len(frames)))
        assert int(stream(ffprobe(out), "video")["nb_frames"]) == len(frames)
        assert not list(tmp_path.glob(f".out{attempt}.*"))


def test_closed_stdout_and_stdin_are_one_line_errors(identity, tmp_path):
    src = write_video(tmp_path / "clip.mp4", 3)
    closed_out = subprocess.run(f"{sys.executable} -m stylize_rt --engine {identity} --input {src} --output - >&-",
                                shell=True, capture_output=False, stderr=subprocess.PIPE, timeout=60, env=_env())
    assert closed_out.returncode == 3 and "stdout is closed" in _error_line(closed_out)
    closed_in = subprocess.run(f"{sys.executable} -m stylize_rt --engine {identity} --input - --raw-size 64x48 "
                               f"--output {tmp_path / 'o.mp4'} <&-", shell=True, stderr=subprocess.PIPE,
                               timeout=60, env=_env())
    assert closed_in.returncode == 2 and "stdin is closed" in _error_line(closed_in)


def test_virtualcam_without_a_device_says_what_to_install(identity, tmp_path):
    pytest.importorskip("pyvirtualcam")
    from stylize_rt.runtime.virtualcam import loopback_devices

    if sys.platform.startswith("linux") and loopback_devices():
        pytest.skip("this machine has a v4l2loopback device")
    src = write_video(tmp_path / "in.mp4", 3)
    result = run_cli("--engine", identity, "--input", src, "--output", "virtualcam")
    assert result.returncode == 2
    line = _error_line(result)
    assert "modprobe v4l2loopback" in line and "v4l2loopback-dkms" in line
    blocked = ("import sys; sys.modules['pyvirtualcam'] = None\nfrom stylize_rt.cli import main\n"
               f"sys.exit(main(['--engine', {str(identity)!r}, '--input', {str(src)!r}, '--output', 'virtualcam']))")
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, timeout=60, env=_env())
    assert result.returncode == 2 and "pip install 'stylize-rt[virtualcam]'" in _error_line(result)


def test_transcode_in_memory_times_decode_model_and_encode(identity):
    from stylize_rt.runtime.pipeline import PipelineConfig
    from stylize_rt.runtime.session import open_stylizer
    from stylize_rt.runtime.transcode import encode_clip, transcode_in_memory

    clip = encode_clip([coded_frame(i, 128, 96) for i in range(16)], fps=25)
    stylizer = open_stylizer(identity)
    try:
        times = transcode_in_memory(stylizer, clip, PipelineConfig(progress=False, batch=2))
    finally:
        stylizer.close()
    assert times.frames == 16 and times.bytes_out > 1000 and times.encoder.startswith("libx264")
    assert times.decode_s > 0 and times.encode_s > 0 and 0 < times.codec_share < 1


def test_writer_errors_are_one_line_output_errors():
    """FFmpeg's own write errors (here ENOSPC from /dev/full) become one-line output errors."""
    from stylize_rt.errors import OutputError
    from stylize_rt.runtime.av_writer import VideoWriter
    from stylize_rt.runtime.codecs import CONTAINERS, EncodeOptions

    writer = VideoWriter("/dev/full", CONTAINERS[".ts"], EncodeOptions(hwaccel="none"), 25.0, "/dev/full", ".ts")
    rng = np.random.default_rng(0)
    with pytest.raises(OutputError, match="disk full while writing /dev/full") as caught:
        writer.open(320, 240)
        for i in range(60):
            writer.write(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), i / 25, 1 / 25)
        writer.close()
    assert "\n" not in str(caught.value)


def _nvidia() -> bool:
    from stylize_rt.runtime.codecs import nvidia_driver_present

    return nvidia_driver_present()


@pytest.mark.skipif(not _nvidia(), reason="no NVIDIA driver: NVDEC/NVENC are checked on GPU machines (-k nvidia)")
def test_nvidia_decode_and_encode_or_one_line_fallback(identity, tmp_path):
    """On an NVIDIA machine: NVDEC decodes the clip, and NVENC encodes it (or, on a GPU without
    NVENC such as H100/H200, the run says so in one line and encodes in software)."""
    from stylize_rt.runtime.av_reader import open_input
    from stylize_rt.runtime.codecs import CONTAINERS, EncodeOptions, choose_encoder

    src = write_video(tmp_path / "in.mp4", 20)
    with open_input(str(src), "cuda") as container:
        assert container.streams.video[0].codec_context.is_hwaccel, "NVDEC was not used"
        assert sum(1 for _ in container.decode(video=0)) == 20
    choice = choose_encoder(EncodeOptions(hwaccel="cuda"), CONTAINERS[".mp4"], ".mp4", (64, 48))
    assert choice.name == "h264_nvenc" or any("h264_nvenc cannot open" in n for n in choice.notes), choice
    out = tmp_path / "out.mp4"
    stderr = _ok(run_cli("--engine", identity, "--input", src, "--output", out, "--hwaccel", "cuda", "--no-progress"))
    assert f"writing {out}: {choice.name}" in stderr
    assert [decode_index(f) for f in read_video(out)] == list(range(20))


def test_source_timestamps_reach_the_sink_and_the_latency_figures(identity, tmp_path):
    """A live source's capture stamp (here 80 ms before read() returns, as a slow driver would) is
    where the latency is measured from; its presentation times are what the file gets."""
    from stylize_rt.runtime.pipeline import PipelineConfig, run_stream
    from stylize_rt.runtime.session import open_stylizer
    from stylize_rt.runtime.sinks import VideoFileSink
    from stylize_rt.runtime.sources import FrameTiming

    class LateCamera:
        live, frame_count, name, fps, size = True, None, "late camera", 20.0, (64, 48)

        def __init__(self):
            self.i, self.timing = 0, None

        def read(self):
            if self.i >= 8:
                return None
            captured = time.perf_counter()
            time.sleep(0.08)
            self.timing = FrameTiming(0.1 * self.i, 0.1, captured)  # 10 fps of real time
            self.i += 1
            return coded_frame(self.i - 1)

        def close(self):
            pass

    out = tmp_path / "rec.mp4"
    stylizer = open_stylizer(identity)
    try:
        stats = run_stream(stylizer, LateCamera(), VideoFileSink(out, 20.0), PipelineConfig(progress=False))
    finally:
        stylizer.close()
    assert min(stats.stage("latency").samples) >= 0.08
    times = frame_times(ffprobe(out, frames=True))
    assert len(times) >= 2 and all(abs(t / 0.1 - round(t / 0.1)) < 1e-3 for t in times)  # 0.1 s steps, not 1/20
