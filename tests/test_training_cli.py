"""``stylize-rt train generator`` as a user runs it: a real subprocess on a tiny folder."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")


def _cli(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stylize_rt", *args], capture_output=True, text=True, timeout=timeout)


TINY = ["--size", "32", "--batch", "1", "--channels", "4,8,8", "--res-blocks", "1", "--stem-kernel", "3",
        "--no-progress", "--log-every", "1", "--preview-every", "0"]


@pytest.fixture
def photo_dir(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for i in range(2):
        img = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "sub" / f"p{i}.png"), img)
    cv2.imwrite(str(root / "gray.png"), rng.integers(0, 256, (40, 40), dtype=np.uint8))
    return root


def test_train_generator_cli_runs_and_resumes(tmp_path, photo_dir):
    out = tmp_path / "run"
    r = _cli("train", "generator", "--content", str(photo_dir), "--style", "mosaic", "--out", str(out),
             "--steps", "2", "--stability", "1", "--adv", "hinge", *TINY)
    assert r.returncode == 0, r.stderr
    assert "3 of 3 images used; converted: 1 grayscale" in r.stderr
    assert "done at step 2" in r.stdout
    card = json.loads((out / "final" / "config.json").read_text())
    assert card["step"] == 2 and card["train"]["adv"] == "hinge" and card["perception"] == "efficientnet-lite0"
    r2 = _cli("train", "generator", "--out", str(out), "--steps", "3", "--resume", str(out / "final"), "--no-progress")
    assert r2.returncode == 0, r2.stderr
    assert "resuming at step 2" in r2.stderr and "done at step 3" in r2.stdout
    steps = [json.loads(line)["step"] for line in (out / "train.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--content", "{empty}", "--style", "mosaic", "--size", "32"], "no images in content folder"),
        (["--content", "{photos}", "--style", "{missing}", "--size", "32"], "style image not found"),
        (["--content", "{photos}", "--vgg-weights", "{missing}", "--size", "32"], "VGG weights file not found"),
        (["--content", "{photos}", "--size", "16"], "--size must be at least 32"),
        (["--content", "{photos}", "--size", "32", "--log-every", "0"], "--log-every must be >= 1"),
        (["--resume", "{missing}", "--size", "64"], "--size cannot change on --resume"),
        (["--resume", "{empty}"], "not a checkpoint"),
    ],
)
def test_train_generator_bad_inputs_are_one_line_errors(tmp_path, photo_dir, args, message):
    (tmp_path / "empty").mkdir()
    subs = {"{empty}": str(tmp_path / "empty"), "{photos}": str(photo_dir), "{missing}": str(tmp_path / "nope.jpg")}
    args = [subs.get(a, a) for a in args]
    r = _cli("train", "generator", "--out", str(tmp_path / "run"), "--steps", "1", *args, "--no-progress")
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path, photo_dir):
    import signal
    import time

    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stylize_rt", "train", "generator", "--content", str(photo_dir), "--out", str(out),
         "--steps", "100000", "--checkpoint-every", "0", *TINY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    log = out / "train.jsonl"
    deadline = time.monotonic() + 180
    while not (log.is_file() and log.read_text().count("\n") >= 2):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training never logged a step"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted at step" in stdout and "Traceback" not in stderr
    card = json.loads((out / "final" / "config.json").read_text())
    logged = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert card["step"] == logged[-1] >= 2  # the checkpoint holds exactly the completed steps
    assert (out / "final" / "training_state.pt").is_file()
