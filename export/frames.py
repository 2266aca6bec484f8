"""Frames that exports are checked and calibrated on: crops of real photos, or the user's own.

Calibration and parity use scikit-image's bundled photos; quality is measured on
scikit-learn's two bundled photos (held out), so it is never measured on calibration images.
Without either package the frames are synthetic scenes.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from stylize_rt import contract
from stylize_rt.errors import BadInputError
from stylize_rt.imageio import IMAGE_SUFFIXES, read_image

CALIBRATION_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")
HELD_OUT_PHOTOS = ("china.jpg", "flower.jpg")


@functools.lru_cache(maxsize=1)
def _calibration_photos() -> tuple[tuple[np.ndarray, ...], str]:
    try:
        import skimage.data  # the [export] extra's photos; synthetic frames without it
    except ImportError:
        return (), "none"
    photos = tuple(np.ascontiguousarray(getattr(skimage.data, name)()[..., :3]) for name in CALIBRATION_PHOTOS)
    return photos, "scikit-image photos"


@functools.lru_cache(maxsize=1)
def _held_out_photos() -> tuple[tuple[np.ndarray, ...], str]:
    try:
        from sklearn.datasets import load_sample_image  # likewise optional
    except ImportError:
        return (), "none"
    return tuple(load_sample_image(name) for name in HELD_OUT_PHOTOS), "scikit-learn china/flower photos"


def _synthetic_frame(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A photo-like frame (gradients, hard-edged shapes, sensor noise) when no photos are installed."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    a, b, c = rng.uniform(0.3, 1.0, 3)
    img = np.stack([xx / width * 255 * a, yy / height * 255 * b, (xx + yy) / (width + height) * 255 * c], -1)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(3, max(4, min(height, width) / 3))
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def sample_frames(
    count: int, height: int, width: int, seed: int = 0, held_out: bool = False, photos: Sequence[np.ndarray] | None = None
) -> tuple[np.ndarray, str]:
    """``count`` uint8 NHWC RGB frames: random crops of real photos, resized to ``height x width``.

    Calibration uses scikit-image's bundled photos; ``held_out=True`` uses scikit-learn's two
    bundled photos instead, so quality is never measured on the calibration images. Without
    either package the frames are synthetic scenes. Returns the frames and their source.
    """
    rng = np.random.default_rng(seed)
    if photos is not None:
        source = "user images"
    else:
        photos, source = _held_out_photos() if held_out else _calibration_photos()
    if not photos:
        return np.stack([_synthetic_frame(rng, height, width) for _ in range(count)]), "synthetic scenes"
    out = np.empty((count, height, width, 3), np.uint8)
    for i in range(count):
        photo = photos[int(rng.integers(len(photos)))]
        ph, pw = photo.shape[:2]
        scale = rng.uniform(0.35, 1.0) * min(ph / height, pw / width)
        ch, cw = max(1, int(height * scale)), max(1, int(width * scale))
        y, x = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
        crop = photo[y : y + ch, x : x + cw]
        interp = cv2.INTER_AREA if scale >= 1 else cv2.INTER_LINEAR
        out[i] = cv2.resize(crop, (width, height), interpolation=interp)
    return out, source


def read_image_folder(folder: str | os.PathLike[str], limit: int = 64) -> list[np.ndarray]:
    """Decodable images (>= 16x16) of a folder as RGB uint8 (calibration on the user's own footage)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInputError(f"calibration folder not found: {folder}")
    images = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            image = read_image(path)
        except BadInputError:
            continue  # an unreadable file is not calibration data; the others still are
        if min(image.shape[:2]) >= 16:
            images.append(image)
        if len(images) >= limit:
            break
    if not images:
        raise BadInputError(f"no decodable images (>= 16x16) in calibration folder {folder}")
    return images


def to_feed(frames: np.ndarray, io_layout: str) -> np.ndarray:
    """uint8 NHWC frames -> the graph's input tensor for ``io_layout``."""
    if io_layout == "uint8_nhwc":
        return np.ascontiguousarray(frames)
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)


def n_styles_of(model) -> int:
    """How many styles a generator graph (``ModelProto``) takes: its ``style`` input's width, else 1."""
    for value in model.graph.input:
        if value.name == contract.INPUT_STYLE:
            dims = value.type.tensor_type.shape.dim
            if len(dims) == 2 and dims[1].HasField("dim_value"):
                return int(dims[1].dim_value)
            raise BadInputError(f"the graph's {contract.INPUT_STYLE!r} input needs a fixed [batch, n_styles] shape")
    return 1


def control_feeds(batch: int, n_styles: int, style: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """The control inputs of a multi-style graph for ``batch`` frames.

    ``style`` given: that style's one-hot at full strength, colours not kept (calibration and
    statistics feed each style this way). ``None``: varied controls, so parity covers every
    path: random convex style blends, strengths 0, 1 and in between, colour preservation on
    every other frame.
    """
    if style is not None:
        weights = np.zeros((batch, n_styles), np.float32)
        weights[:, style] = 1.0
        strength, keep = np.ones(batch, np.float32), np.zeros(batch, np.float32)
    else:
        rng = np.random.default_rng(seed)
        weights = rng.dirichlet(np.ones(n_styles), batch).astype(np.float32)
        strength = np.array([(1.0, 0.0, 0.6, 1.0, 0.3)[i % 5] for i in range(batch)], np.float32)
        keep = np.array([(i + seed) % 2 for i in range(batch)], np.float32)
    return {contract.INPUT_STYLE: weights, contract.INPUT_STRENGTH: strength, contract.INPUT_PRESERVE_COLOR: keep}


def graph_feeds(frames: np.ndarray, io_layout: str, n_styles: int = 1, style: int | None = None,
                seed: int = 0) -> dict[str, np.ndarray]:
    """A generator graph's feed for ``frames``: the image input, plus the controls of a multi-style graph."""
    feed = {contract.INPUT_IMAGE: to_feed(frames, io_layout)}
    if n_styles > 1:
        feed.update(control_feeds(len(frames), n_styles, style, seed))
    return feed
