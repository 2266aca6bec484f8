"""Reading and writing still images: one decoder for every stage.

Every image becomes HxWx3 uint8 RGB on read: grayscale is replicated, alpha is composited
over mid-grey, 16-bit is scaled to 8-bit, and what was converted is reported in ``notes``
(training counts it). Files are read with ``np.fromfile`` + ``cv2.imdecode`` so non-ASCII
paths work; writes are atomic (a reader never sees half a PNG).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from stylize_rt.errors import BadInputError, OutputError
from stylize_rt.fileio import atomic_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
GRAY_SUFFIXES = (".pgm",)  # written as 8-bit grey (the format holds one channel)


def to_rgb8(image: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Any decoded array (gray, gray+alpha, RGB, RGBA; uint8/uint16/float) -> HxWx3 uint8, plus notes."""
    notes: list[str] = []
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
        notes.append("16-bit")
    elif image.dtype.kind == "f":
        scale = 255.0 if float(np.nanmax(image, initial=0.0)) <= 1.0 else 1.0
        image = np.clip(np.nan_to_num(image) * scale, 0, 255).astype(np.uint8)
        notes.append("float")
    elif image.dtype != np.uint8:
        raise BadInputError(f"unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise BadInputError(f"unsupported image shape {image.shape}")
    if image.shape[2] in (2, 4):
        alpha = image[..., -1:].astype(np.float32) / 255.0
        color = image[..., :-1].astype(np.float32)
        image = np.rint(color * alpha + 128.0 * (1.0 - alpha)).astype(np.uint8)
        notes.append("alpha")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
        notes.append("grayscale")
    return np.ascontiguousarray(image), notes


def decode_image(path: str | os.PathLike[str]) -> tuple[np.ndarray, list[str]]:
    """Decode a file to HxWx3 uint8 RGB plus conversion notes, or raise a one-line ``BadInputError``."""
    path = Path(path)
    if path.is_dir():
        raise BadInputError(f"{path} is a folder, not an image")
    if not path.is_file():
        raise BadInputError(f"image not found: {path}")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise BadInputError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if data.size == 0:
        raise BadInputError(f"cannot read image {path}: the file is empty (0 bytes)")
    # JPEGs (no alpha, 8-bit) decode as colour so their EXIF orientation is applied, as a
    # viewer shows them; other formats decode unchanged, keeping 16-bit and alpha for to_rgb8.
    jpeg = bytes(data[:2]) == b"\xff\xd8"
    image = cv2.imdecode(data, cv2.IMREAD_COLOR if jpeg else cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise BadInputError(f"cannot read image {path}: not an image format OpenCV decodes, or corrupt")
    if image.ndim == 3 and image.shape[2] >= 3:
        image = image[..., [2, 1, 0, *range(3, image.shape[2])]]  # BGR(A) -> RGB(A)
    return to_rgb8(image)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode a file to HxWx3 uint8 RGB, or raise a one-line ``BadInputError``."""
    return decode_image(path)[0]


def write_image(path: str | os.PathLike[str], frame: np.ndarray) -> Path:
    """Encode an HxWx3 uint8 RGB frame by ``path``'s suffix and write it atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in GRAY_SUFFIXES:  # a grey-only format: its luma, as any converter writes it
        pixels = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    else:
        pixels = np.ascontiguousarray(frame[..., ::-1])
    ok, encoded = cv2.imencode(suffix, pixels)
    if not ok:
        raise OutputError(f"cannot encode {path.name}: OpenCV has no encoder for {path.suffix}")
    with atomic_file(path) as handle:
        handle.write(encoded.tobytes())
    return path


__all__ = ["IMAGE_SUFFIXES", "to_rgb8", "decode_image", "read_image", "write_image"]
