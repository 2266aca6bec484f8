"""Captioned image sets: the in-memory form both data sources produce, and the COCO loader.

COCO caption format (``captions_train2017.json`` and friends)::

    {"images": [{"id": 1, "file_name": "a.jpg"}, ...],
     "annotations": [{"image_id": 1, "caption": "A dog on a couch."}, ...]}

Images are read with OpenCV, converted to RGB and resized to a square
(``INTER_AREA``, no crop: a crop could cut away what the captions talk about).
Bad input is a one-line ``BadInputError``: missing or corrupt JSON, no captions,
an image that cannot be read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stylize_rt.errors import BadInputError
from stylize_rt.imageio import read_image


@dataclass
class CaptionData:
    """``images[i]`` (S x S x 3 uint8 RGB) is described by every caption in ``references[i]``."""

    images: np.ndarray
    references: list[list[str]]
    names: list[str]

    def __post_init__(self) -> None:
        if len(self.images) != len(self.references) or len(self.images) != len(self.names):
            raise ValueError("images, references and names differ in length")

    def __len__(self) -> int:
        return len(self.images)

    def all_captions(self) -> list[str]:
        return [c for refs in self.references for c in refs]


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def load_coco_captions(
    json_path: str | os.PathLike[str], image_dir: str | os.PathLike[str], image_size: int = 64
) -> CaptionData:
    """Load a COCO-format caption file and its images (resized to ``image_size``)."""
    json_path, image_dir = Path(json_path), Path(image_dir)
    if not json_path.is_file():
        raise BadInputError(f"caption file not found: {json_path}")
    if json_path.stat().st_size == 0:
        raise BadInputError(f"caption file is empty: {json_path}")
    try:
        data = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"corrupt caption file {json_path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(
        data.get("annotations"), list
    ):
        raise BadInputError(f"{json_path} is not COCO caption format (needs 'images' and 'annotations' lists)")
    if not data["annotations"]:
        raise BadInputError(f"caption file has no captions: {json_path}")
    if not image_dir.is_dir():
        raise BadInputError(f"image folder not found: {image_dir}")

    files: dict = {}
    for entry in data["images"]:
        try:
            files[entry["id"]] = str(entry["file_name"])
        except (TypeError, KeyError):
            raise BadInputError(f"{json_path}: an image entry lacks 'id' or 'file_name'") from None
    captions: dict = {}
    for ann in data["annotations"]:
        try:
            image_id, text = ann["image_id"], ann["caption"]
        except (TypeError, KeyError):
            raise BadInputError(f"{json_path}: an annotation lacks 'image_id' or 'caption'") from None
        if image_id not in files:
            raise BadInputError(f"{json_path}: caption for unknown image id {image_id!r}")
        if isinstance(text, str) and text.strip():
            captions.setdefault(image_id, []).append(text.strip())
    if not captions:
        raise BadInputError(f"caption file has no non-empty captions: {json_path}")

    ids = [i for i in files if i in captions]  # images without captions teach nothing
    images = np.empty((len(ids), image_size, image_size, 3), np.uint8)
    for k, image_id in enumerate(ids):
        images[k] = resize_square(read_image(image_dir / files[image_id]), image_size)
    return CaptionData(images, [captions[i] for i in ids], [files[i] for i in ids])


__all__ = ["CaptionData", "load_coco_captions", "resize_square"]
