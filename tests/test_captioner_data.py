"""Synthetic scenes and the COCO-format loader (real files written and read back)."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from stylize_rt.errors import BadInputError
from stylize_rt.training.coco import load_coco_captions
from stylize_rt.training.scenes import TEMPLATES, make_scenes, render_scenes, scene_dataset


def test_scenes_are_reproducible_from_the_seed():
    a, b = make_scenes(20, seed=3), make_scenes(20, seed=3)
    assert [s.captions() for s in a] == [s.captions() for s in b]
    assert np.array_equal(render_scenes(a), render_scenes(b))
    assert [s.captions() for s in make_scenes(20, seed=4)] != [s.captions() for s in a]


def test_held_out_split_is_never_the_training_stream():
    train = scene_dataset(300, seed=0, split="train")
    test = scene_dataset(100, seed=0, split="test")
    train_hashes = {img.tobytes() for img in train.images}
    assert not any(img.tobytes() in train_hashes for img in test.images)
    assert train.references[:5] != test.references[:5]


def test_captions_are_casual_varied_and_match_the_scene():
    for scene in make_scenes(60, seed=1):
        refs = scene.captions()
        assert len(refs) == len(TEMPLATES[scene.layout]) == len(set(refs))  # several phrasings
        for thing in scene.things:
            assert all(thing.color in r and thing.size in r for r in refs)
        if scene.layout == "beside":
            # the first thing is drawn on the left
            assert scene.centers[0][0] < scene.centers[1][0]
            assert any("to the left of" in r for r in refs)
        if scene.layout == "stacked":
            assert scene.centers[0][1] < scene.centers[1][1]
    assert any(r.startswith("oh, there's") for s in make_scenes(10, 0) for r in s.captions())


def test_rendered_scene_has_the_named_color_where_the_thing_is():
    scene = next(s for s in make_scenes(50, seed=2) if s.layout == "single" and s.things[0].size == "big")
    img = scene.render(64).astype(int)
    cx, cy = (int(v * 64) for v in scene.centers[0])
    expected = {"red": 0, "green": 1, "blue": 2}.get(scene.things[0].color)
    if expected is not None:
        assert img[cy, cx].argmax() == expected


@pytest.fixture
def coco_dir(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(40, 60), (64, 64), (31, 17)]):
        cv2.imwrite(str(images / f"img{i}.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    data = {
        "images": [{"id": 10 + i, "file_name": f"img{i}.png"} for i in range(3)] + [{"id": 99, "file_name": "nocap.png"}],
        "annotations": [
            {"id": 1, "image_id": 10, "caption": "A dog on a couch."},
            {"id": 2, "image_id": 10, "caption": "oh, a doggy!"},
            {"id": 3, "image_id": 11, "caption": "a red bus"},
            {"id": 4, "image_id": 12, "caption": "two cats"},
        ],
    }
    (tmp_path / "captions.json").write_text(json.dumps(data))
    return tmp_path


def test_coco_loader_reads_a_tiny_written_dataset(coco_dir):
    data = load_coco_captions(coco_dir / "captions.json", coco_dir / "images", image_size=32)
    assert len(data) == 3  # the image without captions is skipped
    assert data.images.shape == (3, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.references[0] == ["A dog on a couch.", "oh, a doggy!"]
    assert data.names == ["img0.png", "img1.png", "img2.png"]
    # RGB order: OpenCV wrote BGR, the loader must swap back
    raw = cv2.imread(str(coco_dir / "images" / "img1.png"))[..., ::-1]
    assert np.array_equal(cv2.resize(raw, (32, 32), interpolation=cv2.INTER_AREA), data.images[1])


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty"),
        ("{", "corrupt"),
        (json.dumps({"images": [], "annotations": []}), "no captions"),
        (json.dumps({"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "caption": " "}]}),
         "no non-empty captions"),
        (json.dumps({"foo": 1}), "not COCO"),
    ],
)
def test_bad_caption_files(coco_dir, content, message):
    bad = coco_dir / "bad.json"
    bad.write_text(content)
    with pytest.raises(BadInputError, match=message):
        load_coco_captions(bad, coco_dir / "images")


def test_unreadable_image_in_dataset(coco_dir):
    (coco_dir / "images" / "img1.png").write_bytes(b"this is not a png")
    with pytest.raises(BadInputError, match="img1.png"):
        load_coco_captions(coco_dir / "captions.json", coco_dir / "images")


def test_empty_caption_file_via_cli_is_one_line(coco_dir, tmp_path):
    (coco_dir / "empty.json").write_text("")
    proc = subprocess.run(
        [sys.executable, "-m", "stylize_rt", "train", "captioner", "-o", str(tmp_path / "ckpt"),
         "--coco", str(coco_dir / "empty.json"), "--coco-images", str(coco_dir / "images")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"stylize-rt: error: caption file is empty: {coco_dir / 'empty.json'}"]
    assert not (tmp_path / "ckpt").exists()


def test_rescaled_training_scenes_are_reproducible_and_close_to_native():
    a = scene_dataset(12, seed=5, split="train", size=32, max_scale=3.0)
    b = scene_dataset(12, seed=5, split="train", size=32, max_scale=3.0)
    native = scene_dataset(12, seed=5, split="train", size=32)
    assert a.images.shape == (12, 32, 32, 3) and np.array_equal(a.images, b.images)
    assert a.references == native.references  # same scenes, only drawn differently
    assert not np.array_equal(a.images, native.images)
    # drawn bigger and downsampled, the picture is still the same picture
    diff = np.abs(a.images.astype(int) - native.images.astype(int)).mean()
    assert diff < 20, diff
