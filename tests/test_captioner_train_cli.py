"""`stylize-rt train captioner` end to end (tiny runs): synthetic facts (the default), scenes, COCO."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import pytest


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "stylize_rt", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_train_fact_captioner_cli_is_the_default_and_needs_no_images(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "ckpt"
    proc = run_cli("train", "captioner", "-o", out, "--steps", 3, "--batch-size", 8, "--eval-facts", 10,
                   "--gan-steps", 1, "--disc-pretrain", 1, "--threads", 1)
    assert proc.returncode == 0, proc.stderr
    assert "held-out after MLE: BLEU-1" in proc.stdout and "held-out after GAN: BLEU-1" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["captioner.safetensors", "config.json", "nouns.json",
                                                     "tokenizer.json"]
    card = json.loads((out / "config.json").read_text())
    assert card["captioner"]["input"] == "facts" and card["report"]["data"] == "facts"
    assert len(card["facts"]["vocab"]) == card["captioner"]["fact_tokens"]
    again = run_cli("train", "captioner", "-o", tmp_path / "ft", "--init", out, "--steps", 2, "--batch-size", 4,
                    "--eval-facts", 4, "--threads", 1)
    assert again.returncode == 0, again.stderr
    wrong = run_cli("train", "captioner", "-o", tmp_path / "x", "--init", out, "--data", "scenes", "--steps", 1,
                    "--scenes", 4, "--eval-scenes", 2)
    assert wrong.returncode == 2 and "fact captioner" in wrong.stderr


@pytest.mark.slow
def test_train_captioner_cli_writes_a_checkpoint_with_mle_and_gan_scores(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "ckpt"
    proc = run_cli("train", "captioner", "-o", out, "--data", "scenes", "--scenes", 64, "--eval-scenes", 8,
                   "--steps", 3,
                   "--batch-size", 8, "--gan-steps", 1, "--disc-pretrain", 1, "--threads", 1, "--image-size", 32)
    assert proc.returncode == 0, proc.stderr
    assert "held-out after MLE: BLEU-1" in proc.stdout and "held-out after GAN: BLEU-1" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["captioner.safetensors", "config.json", "tokenizer.json"]
    card = json.loads((out / "config.json").read_text())
    assert card["kind"] == "captioner" and card["captioner"]["image_size"] == 32
    assert card["train"]["steps"] == 3 and "gan" in card["report"]
    assert not list(tmp_path.glob("*.tmp"))


def test_train_captioner_cli_rejects_bad_numbers(tmp_path):
    proc = run_cli("train", "captioner", "-o", tmp_path / "x", "--steps", 0)
    assert proc.returncode == 2 and proc.stderr.startswith("stylize-rt: error:")
    proc = run_cli("train", "captioner", "-o", tmp_path / "x", "--coco", tmp_path / "a.json")
    assert proc.returncode == 2 and "go together" in proc.stderr


def test_unwritable_checkpoint_path_fails_before_training(tmp_path):
    pytest.importorskip("torch")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    proc = run_cli("train", "captioner", "-o", blocker / "ckpt", "--steps", 1, "--eval-facts", 2)
    assert proc.returncode == 3 and proc.stderr.startswith("stylize-rt: error: cannot write checkpoint")
    assert "mle" not in proc.stderr  # no training happened


@pytest.mark.slow
def test_train_captioner_on_a_tiny_coco_folder(tmp_path):
    pytest.importorskip("torch")
    import numpy as np

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    anns = []
    for i in range(4):
        cv2.imwrite(str(images / f"{i}.jpg"), rng.integers(0, 255, (30 + i, 40, 3), dtype=np.uint8))
        anns += [{"image_id": i, "caption": f"oh, a noisy picture number {i}"}, {"image_id": i, "caption": "some noise"}]
    (tmp_path / "caps.json").write_text(json.dumps({"images": [{"id": i, "file_name": f"{i}.jpg"} for i in range(4)],
                                                    "annotations": anns}))
    out = tmp_path / "ckpt"
    proc = run_cli("train", "captioner", "-o", out, "--coco", tmp_path / "caps.json", "--coco-images", images,
                   "--steps", 2, "--batch-size", 4, "--image-size", 32, "--threads", 1)
    assert proc.returncode == 0, proc.stderr
    card = json.loads((out / "config.json").read_text())
    assert card["report"]["train_images"] == 3 and card["report"]["held_out_images"] == 1
    vocab = json.loads((out / "tokenizer.json").read_text())["vocab"]
    assert "noisy" in vocab and "2" in vocab and "3" not in vocab  # held-out words do not leak into the vocabulary
