"""Content folders with awkward files, style loading, built-in and held-out photos."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from stylize_rt.errors import BadInputError  # noqa: E402
from stylize_rt.imageio import decode_image  # noqa: E402
from stylize_rt.training.data import (  # noqa: E402
    BUILTIN_CONTENT,
    ContentImages,
    held_out_photos,
    load_style,
    random_crop,
)


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // max(w, 1), yy * 255 // max(h, 1), (xx ^ yy) % 256], -1).astype(np.uint8)
    return np.clip(img + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def messy_folder(tmp_path):
    root = tmp_path / "coco"
    (root / "a" / "b").mkdir(parents=True)
    cv2.imwrite(str(root / "rgb.jpg"), _photo(60, 80)[..., ::-1])
    cv2.imwrite(str(root / "a" / "gray.png"), _photo(50, 70)[..., 0])
    rgba = np.dstack([_photo(48, 64)[..., ::-1], np.full((48, 64), 128, np.uint8)])
    cv2.imwrite(str(root / "a" / "b" / "rgba.png"), rgba)
    cv2.imwrite(str(root / "a" / "deep16.png"), _photo(40, 40).astype(np.uint16) * 257)
    cv2.imwrite(str(root / "tiny.png"), _photo(8, 8))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "notes.txt").write_text("not an image")
    return root


def test_messy_folder_is_converted_or_skipped_with_counts(messy_folder):
    data = ContentImages.from_folder(messy_folder)
    s = data.stats
    assert s.found == 6  # the .txt is not an image candidate
    assert s.used == 4
    assert s.skipped == {"unreadable": 1, "smaller than 32px": 1}
    assert s.converted["grayscale"] == 1 and s.converted["alpha"] == 1 and s.converted["16-bit"] == 1
    assert all(im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3 for im in data.images)
    assert "4 of 6 images used" in s.summary()
    batch = data.batch(np.random.default_rng(0), 3, 32)
    assert batch.shape == (3, 32, 32, 3) and batch.dtype == np.uint8


def test_sixteen_bit_is_scaled_not_truncated(tmp_path):
    img16 = np.full((40, 40, 3), 65535, np.uint16)
    cv2.imwrite(str(tmp_path / "white16.png"), img16)
    img, notes = decode_image(tmp_path / "white16.png")
    assert img.dtype == np.uint8 and int(img.min()) == 255 and "16-bit" in notes


def test_rgba_is_rgb_order_and_composited(tmp_path):
    bgra = np.zeros((40, 40, 4), np.uint8)
    bgra[..., 2] = 255  # red in BGR order
    bgra[..., 3] = 255
    cv2.imwrite(str(tmp_path / "red.png"), bgra)
    img, notes = decode_image(tmp_path / "red.png")
    assert tuple(img[0, 0]) == (255, 0, 0) and "alpha" in notes


def test_empty_and_missing_folders_are_clear_errors(tmp_path):
    with pytest.raises(BadInputError, match="no images in content folder"):
        ContentImages.from_folder(tmp_path)
    with pytest.raises(BadInputError, match="content folder not found"):
        ContentImages.from_folder(tmp_path / "nope")
    (tmp_path / "bad.png").write_bytes(b"junk")
    with pytest.raises(BadInputError, match="no usable content images: 0 of 1 images used"):
        ContentImages.from_folder(tmp_path)


def test_style_loading(tmp_path):
    with pytest.raises(BadInputError, match="style image not found"):
        load_style(str(tmp_path / "missing.jpg"))
    cv2.imwrite(str(tmp_path / "s.png"), _photo(20, 20))
    with pytest.raises(BadInputError, match="too small"):
        load_style(str(tmp_path / "s.png"))
    assert load_style("mosaic", size=96).shape == (96, 96, 3)


def test_random_crop_grows_small_images_and_is_seeded():
    img = _photo(40, 50)
    a = random_crop(img, np.random.default_rng(1), 64)
    b = random_crop(img, np.random.default_rng(1), 64)
    assert a.shape == (64, 64, 3) and np.array_equal(a, b)


def test_builtin_and_held_out_photos_are_disjoint():
    data = ContentImages.builtin()
    assert data.names == list(BUILTIN_CONTENT) and data.stats.used == len(BUILTIN_CONTENT)
    held = held_out_photos()
    assert set(held) == {"china", "flower"}
    for photo in held.values():
        assert not any(im.shape == photo.shape and np.array_equal(im, photo) for im in data.images)


def test_large_folders_are_read_lazily_with_the_same_counts(messy_folder, monkeypatch):
    from stylize_rt.training import data as data_mod

    monkeypatch.setattr(data_mod, "PRELOAD_LIMIT", 0)  # treat the tiny folder as a COCO-sized one
    data = ContentImages.from_folder(messy_folder)
    assert all(not isinstance(item, np.ndarray) for item in data.images)  # nothing decoded yet
    s = data.stats
    assert s.used == 4 and s.skipped == {"unreadable": 1, "smaller than 32px": 1}
    assert s.converted["grayscale"] == 1 and s.converted["alpha"] == 1 and s.converted["16-bit"] == 1
    batch = data.batch(np.random.default_rng(0), 4, 32)
    assert batch.shape == (4, 32, 32, 3)
    # a file that goes bad after the scan is counted and replaced, not fatal
    (messy_folder / "rgb.jpg").write_bytes(b"gone")
    data.batch(np.random.default_rng(1), 8, 32)
    assert data.stats.skipped["unreadable at load"] >= 1


def test_big_style_images_are_downsized(tmp_path):
    cv2.imwrite(str(tmp_path / "big.png"), _photo(300, 900))
    assert load_style(str(tmp_path / "big.png"), size=256).shape == (85, 256, 3)
