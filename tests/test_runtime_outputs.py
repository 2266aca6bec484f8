"""Outputs never destroy inputs or each other: ``stylize-rt run`` as a subprocess on real files.

Output = input by any name is refused before anything opens (exit 2, input untouched);
folder outputs keep every input's result and say what was written; unreadable images are
skipped, named, and give exit 4; ``.pgm`` is written as grey.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_runtime_cli import CLI, _env, _error_line, run_cli
from test_runtime_helpers import coded_frame, identity_onnx, write_video


@pytest.fixture(scope="module")
def identity(tmp_path_factory) -> Path:
    return identity_onnx(tmp_path_factory.mktemp("outputs_identity") / "identity.onnx")


def _png(path: Path, index: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), coded_frame(index)[..., ::-1])
    return path


def _refused(result, *inputs: Path, before: dict[Path, bytes]) -> str:
    assert result.returncode == 2, result.stderr.decode()
    line = _error_line(result)
    assert "would destroy" in line
    for path in inputs:
        assert path.read_bytes() == before[path]  # the input is untouched
    return line


def test_image_output_equal_to_input_is_refused_by_any_name(identity, tmp_path):
    photo = _png(tmp_path / "same" / "coffee.png", 7)
    before = {photo: photo.read_bytes()}
    os.symlink(photo, tmp_path / "link.png")
    os.link(photo, tmp_path / "hard.png")
    for output in (photo, tmp_path / "same" / ".." / "same" / "coffee.png", tmp_path / "link.png",
                   tmp_path / "hard.png", tmp_path / "same"):  # the last: a folder output landing on it
        result = run_cli("--engine", identity, "--input", photo, "--output", output)
        _refused(result, photo, before=before)
    assert sorted(p.name for p in (tmp_path / "same").iterdir()) == ["coffee.png"]  # nothing else written


def test_video_output_equal_to_input_is_refused(identity, tmp_path):
    clip = write_video(tmp_path / "clip.mp4", 5)
    before = {clip: clip.read_bytes()}
    _refused(run_cli("--engine", identity, "--input", clip, "--output", clip), clip, before=before)
    _refused(run_cli("--engine", identity, "--input", clip, "--output", tmp_path / "o.mp4", "--caption-log", clip),
             clip, before=before)
    assert not list(tmp_path.glob(".clip*"))  # no temp file was ever opened


def test_folder_written_into_itself_is_refused(identity, tmp_path):
    folder = tmp_path / "photos"
    inputs = [_png(folder / f"p{i}.png", i) for i in range(3)]
    before = {p: p.read_bytes() for p in inputs}
    _refused(run_cli("--engine", identity, "--input", folder, "--output", folder), *inputs, before=before)
    _refused(run_cli("--engine", identity, "--input", folder, "--output", f"{folder}/"), *inputs, before=before)


def test_model_file_is_never_an_output(identity, tmp_path):
    clip = write_video(tmp_path / "clip.mp4", 3)
    model = tmp_path / "model.mp4"  # a model whose name looks like a video output
    model.write_bytes(identity.read_bytes())
    result = run_cli("--engine", model, "--input", clip, "--output", model)
    assert result.returncode == 2 and "would destroy" in _error_line(result)
    assert model.read_bytes() == identity.read_bytes()


def test_raw_stdin_file_is_not_overwritten(identity, tmp_path):
    frames = tmp_path / "frames.rgb"
    frames.write_bytes(np.stack([coded_frame(i) for i in range(3)]).tobytes())
    before = frames.read_bytes()
    with open(frames, "rb") as stdin:
        result = subprocess.run([*CLI, "--engine", str(identity), "--input", "-", "--raw-size", "64x48", "--output",
                                 str(frames.with_suffix(".mp4"))], stdin=stdin, capture_output=True, env=_env(),
                                timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    with open(frames, "rb") as stdin:  # now name the stdin file itself as the output (a .png is refused first)
        result = subprocess.run(f"{sys.executable} -m stylize_rt --engine {identity} --input - --raw-size 64x48 "
                                f"--output - >> {frames}", shell=True, stdin=stdin, capture_output=True, env=_env(),
                                timeout=60)
    assert result.returncode == 2 and "would destroy" in _error_line(result)
    assert frames.read_bytes() == before


def test_folder_output_keeps_every_input_and_says_what_was_written(identity, tmp_path):
    folder = tmp_path / "coll"
    jpg = tmp_path / "coll" / "photo.jpg"
    folder.mkdir()
    cv2.imwrite(str(jpg), coded_frame(3)[..., ::-1])
    png = _png(folder / "photo.png", 5)
    ppm = folder / "photo.ppm"
    cv2.imwrite(str(ppm), coded_frame(9)[..., ::-1])
    out = tmp_path / "styled"
    result = run_cli("--engine", identity, "--input", folder, "--output", out)
    assert result.returncode == 0, result.stderr.decode()
    assert sorted(p.name for p in out.iterdir()) == ["photo.jpg", "photo.png", "photo.ppm"]
    assert np.array_equal(cv2.imread(str(out / "photo.png")), cv2.imread(str(png)))  # identity model, lossless
    assert f"wrote 3 images to {out}" in result.stderr.decode()


def test_case_only_collisions_are_numbered():
    import tempfile

    from stylize_rt.runtime.sinks import FrameInfo, ImageFolderSink

    with tempfile.TemporaryDirectory() as tmp:
        sink = ImageFolderSink(tmp)
        for i, name in enumerate(["Photo.png", "photo.png", "photo.png"]):
            sink.write(coded_frame(i), FrameInfo(i, 0.0, name))
        sink.close()
        written = sorted(os.listdir(tmp))
        assert len(written) == 3 and sink.renamed == [("photo.png", "photo-1.png"), ("photo.png", "photo-2.png")]


def test_unreadable_images_are_skipped_named_and_exit_4(identity, tmp_path):
    folder = tmp_path / "batch"
    _png(folder / "a.png", 1)
    (folder / "b.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    _png(folder / "c.png", 2)
    (folder / "d.png").write_bytes(b"")
    out = tmp_path / "out"
    result = run_cli("--engine", identity, "--input", folder, "--output", out)
    assert result.returncode == 4, result.stderr.decode()
    stderr = result.stderr.decode()
    assert "skipped 2 unreadable input(s): b.jpg, d.png" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]


def test_pgm_output_is_written_as_grey(identity, tmp_path):
    photo = _png(tmp_path / "photo.png", 200)
    out = tmp_path / "photo.pgm"
    result = run_cli("--engine", identity, "--input", photo, "--output", out)
    assert result.returncode == 0, result.stderr.decode()
    grey = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert grey.ndim == 2 and grey.shape == (48, 64)
    expected = cv2.cvtColor(coded_frame(200), cv2.COLOR_RGB2GRAY)
    assert np.abs(grey.astype(int) - expected.astype(int)).max() <= 1
