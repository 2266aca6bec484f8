"""``stylize-rt batch``: planning, the local job, resuming, and the same job on a local Ray cluster.

The Ray tests share one ``ray.init(num_cpus=2, include_dashboard=False)`` for the module and
kill a real actor process mid-job. Outputs are read back with independent readers (PIL for
images, OpenCV for the video) and compared with the local ONNX Runtime stylizer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import netns
import numpy as np
import pytest
from PIL import Image
from video_helpers import audio_packets, clip_with_audio, ffprobe, frame_times, stream, vfr_clip

from stylize_rt.errors import EXIT_SKIPPED, BadInputError
from stylize_rt.imageio import write_image
from stylize_rt.runtime.batch import REPORT_FILE, BatchConfig, plan_batch, run_batch
from stylize_rt.runtime.session import ModelChoice, open_stylizer

ONE_THREAD = ModelChoice(threads=1)


def _images(folder, count, height=48, width=64, seed=0, prefix="img"):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        write_image(folder / f"{prefix}{i:02d}.png", rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """6 PNGs, a JPEG in a subfolder, a 10-frame video, a corrupt PNG and a text file."""
    root = tmp_path_factory.mktemp("batch_in") / "in"
    _images(root, 6)
    write_image(root / "sub" / "photo.jpg", np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8))
    writer = cv2.VideoWriter(str(root / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 12, (64, 48))
    rng = np.random.default_rng(2)
    for _ in range(10):
        writer.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    writer.release()
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def stylizer():
    s = open_stylizer(ONE_THREAD)
    yield s
    s.close()


def _frames(video) -> int:
    cap = cv2.VideoCapture(str(video))
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    return count


def _stamps(folder) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file() and p.name != REPORT_FILE}


def test_plan_keeps_structure_and_refuses_collisions(inputs, tmp_path):
    plan = plan_batch([str(inputs)], tmp_path / "out")
    outputs = sorted(os.path.relpath(i.output, tmp_path / "out") for i in plan.todo)
    assert outputs == ["broken.png", "clip.mp4", *[f"img{i:02d}.png" for i in range(6)], "sub/photo.jpg"]
    assert [i.kind for i in plan.todo if i.source.endswith(".mp4")] == ["video"]
    assert plan.ignored == [str(inputs / "notes.txt")]
    same = plan_batch([str(inputs), str(inputs / "img*.png")], tmp_path / "out")  # a file named twice runs once
    assert len(same.todo) == len(plan.todo)
    (tmp_path / "a").mkdir()
    write_image(tmp_path / "a" / "img00.png", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(BadInputError, match="would both write"):
        plan_batch([str(inputs / "img00.png"), str(tmp_path / "a" / "img00.png")], tmp_path / "out")
    with pytest.raises(BadInputError, match="overwritten by its own output"):
        plan_batch([str(tmp_path / "a" / "img00.png")], tmp_path / "a")
    with pytest.raises(BadInputError, match="input not found"):
        plan_batch([str(tmp_path / "nope")], tmp_path / "out")
    with pytest.raises(BadInputError, match="no files match"):
        plan_batch([str(tmp_path / "*.webp")], tmp_path / "out")


def test_local_job_stylizes_skips_bad_inputs_and_resumes(inputs, stylizer, tmp_path):
    out = tmp_path / "out"
    config = BatchConfig(inputs=(str(inputs),), output=str(out), model=ONE_THREAD, batch=4, progress=False)
    summary = run_batch(config)
    assert summary.count("done") == 8 and [r.source for r in summary.failed] == [str(inputs / "broken.png")]
    assert "cannot read image" in summary.failed[0].error
    for i in range(6):
        source = np.asarray(Image.open(inputs / f"img{i:02d}.png"))
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"img{i:02d}.png")), stylizer(source))
    assert Image.open(out / "sub" / "photo.jpg").size == (56, 40)
    assert _frames(out / "clip.mp4") == 10
    assert not (out / "broken.png").exists()
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["counts"] == {"done": 8, "already_done": 0, "failed": 1, "kept": 0}
    before = _stamps(out)

    again = run_batch(config)  # resumed: nothing left but the broken input
    assert again.count("done") == 0 and len(again.plan.done_before) == 8 and len(again.failed) == 1
    assert _stamps(out) == before

    (out / "img03.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # an output cut short by someone else's tool
    kept = run_batch(config)
    assert [item.output for item, _ in kept.plan.kept] == [str(out / "img03.png")]
    assert (out / "img03.png").read_bytes() == b"\x89PNG\r\n\x1a\n"  # reported, not overwritten
    redo = run_batch(BatchConfig(inputs=(str(inputs / "img03.png"),), output=str(out), model=ONE_THREAD,
                                 overwrite=True, progress=False))
    assert redo.count("done") == 1 and Image.open(out / "img03.png").size == (64, 48)


def test_videos_keep_their_audio_and_frame_times(tmp_path):
    """A batch video output is what ``stylize-rt run`` makes: the input's audio copied, its frame times kept."""
    src = tmp_path / "in"
    src.mkdir()
    clip_with_audio(src / "talk.mp4", seconds=1.0, size="64x48")
    times = [0.0, 0.04, 0.2, 0.24, 0.5, 0.9]
    vfr_clip(src / "vfr.mp4", times)
    summary = run_batch(BatchConfig(inputs=(str(src),), output=str(tmp_path / "out"), model=ONE_THREAD, batch=4,
                                    progress=False))
    assert summary.count("done") == 2 and not summary.failed
    talk = tmp_path / "out" / "talk.mp4"
    assert stream(ffprobe(talk), "audio")["codec_name"] == "aac"
    assert [data for _, data in audio_packets(talk)] == [data for _, data in audio_packets(src / "talk.mp4")]
    assert frame_times(ffprobe(tmp_path / "out" / "vfr.mp4", frames=True)) == pytest.approx(times, abs=1e-4)


def test_cli_summary_and_exit_codes(inputs, tmp_path):
    def batch(*args):
        return subprocess.run([sys.executable, "-m", "stylize_rt", "batch", "--no-progress", "--threads", "1", *args],
                              capture_output=True, text=True, timeout=300)

    result = batch("--input", str(inputs / "img0*.png"), "--output", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    assert "6 stylized, 0 already done, 0 failed" in result.stderr
    result = batch("--input", str(inputs), "--output", str(tmp_path / "o"))
    assert result.returncode == EXIT_SKIPPED
    assert "failed: " in result.stderr and "broken.png" in result.stderr and "Traceback" not in result.stderr
    result = batch("--input", str(tmp_path / "missing"), "--output", str(tmp_path / "o"))
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].endswith(
        f"input not found: {tmp_path / 'missing'}")


# -- Ray ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_ray_jobs_in_a_private_network_namespace():
    """tests/ray_batch_checks.py on a local Ray cluster, in a network namespace with only loopback:
    Ray's servers bind every interface of their node, so the cluster gets a node that has no other."""
    pytest.importorskip("ray", reason="the Ray tests need ray[data] (pip install 'stylize-rt[scale]')")
    prefix, reason = netns.loopback_only_prefix()
    if prefix is None:
        pytest.skip(reason)
    checks = Path(__file__).with_name("ray_batch_checks.py")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", STYLIZE_RT_LOOPBACK_NETNS="1")
    result = subprocess.run([*prefix, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(checks)],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-3000:]


def test_batch_draws_the_style_options_and_anchors_videos(tmp_path, stylizer):
    """--style/--strength/--texture-scale reach every worker; a shaking video goes through the grid
    anchor as in ``stylize-rt run`` (read back by OpenCV, shift flicker against the model alone)."""
    from video_helpers import need_ffmpeg, raw_clip

    from stylize_rt.benchmarks.quality import jitter_offsets, jittered_frames, shift_flicker_ratio
    from stylize_rt.runtime.session import StyleChoice
    from stylize_rt.runtime.style_controls import StyleControls, one_hot
    from stylize_rt.training.data import held_out_photos

    need_ffmpeg()
    src = tmp_path / "in"
    src.mkdir()
    photo = held_out_photos()["flower"]
    write_image(src / "flower.png", photo)
    offsets = jitter_offsets(8, seed=7)
    frames = jittered_frames(photo, offsets, seed=8)
    raw_clip(src / "shaky.mp4", frames, 25, "-c:v", "libx264", "-pix_fmt", "yuv444p", "-qp", "0")
    style = StyleChoice(style="hatching", strength=0.9, texture_scale=1.5)
    summary = run_batch(BatchConfig(inputs=(str(src),), output=str(tmp_path / "out"), model=ONE_THREAD,
                                    style=style, progress=False))
    assert summary.count("done") == 2 and not summary.failed
    controls = StyleControls(one_hot(stylizer.styles, "hatching"), strength=0.9)
    stylizer.texture_scale = 1.5
    try:
        expected = stylizer(photo, controls)
        alone = stylizer.stylize_batch(frames, controls)  # the model alone, frame by frame
    finally:
        stylizer.texture_scale = 1.0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "flower.png")), expected)
    cap = cv2.VideoCapture(str(tmp_path / "out" / "shaky.mp4"))
    out = []
    while (frame := cap.read()[1]) is not None:
        out.append(frame[..., ::-1])
    cap.release()
    anchored, plain = shift_flicker_ratio(frames, np.stack(out), offsets), shift_flicker_ratio(frames, alone, offsets)
    assert anchored < 0.5 * plain, (anchored, plain)


def test_batch_cli_style_options(tmp_path):
    from stylize_rt.cli import build_parser
    from stylize_rt.runtime.batch_cli import batch_config

    args = build_parser().parse_args(["batch", "--input", "in", "--output", "o", "--mix", "mosaic=0.5,waves=0.5",
                                      "--preserve-color", "--texture-scale", "3"])
    style = batch_config(args).style
    assert (style.mix, style.preserve_color, style.texture_scale) == ("mosaic=0.5,waves=0.5", True, 3.0)
    _images(tmp_path / "in", 1)
    result = subprocess.run([sys.executable, "-m", "stylize_rt", "batch", "--no-progress", "--threads", "1",
                             "--input", str(tmp_path / "in"), "--output", str(tmp_path / "o"), "--style", "nosuch"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "nosuch" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "o" / "img00.png").exists()
