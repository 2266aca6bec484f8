"""Training data: content photos (a folder or the built-in set) and style images.

Images are normalized to HxWx3 uint8 RGB on load: grayscale is replicated, alpha is
composited over mid-grey, 16-bit is scaled to 8-bit. Files that cannot be decoded or are
tiny are skipped, and every skip or conversion is counted so the trainer can report it.
Sampling is a pure function of ``(seed, step)``, so a resumed run sees the same batches.

``builtin`` content is scikit-image's bundled photos (all offline). scikit-learn's two
bundled photos (china, flower) are held out: they are never used for training and serve
as the evaluation set of :mod:`stylize_rt.benchmarks.quality`.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from stylize_rt.errors import BadInputError
from stylize_rt.imageio import IMAGE_SUFFIXES, decode_image, to_rgb8
from stylize_rt.progress import progress_bar
from stylize_rt.training.style_images import BUILTIN_STYLES, builtin_style

IMAGE_EXTENSIONS = set(IMAGE_SUFFIXES)
MIN_IMAGE_SIDE = 32  # smaller images carry no usable texture at any crop size; skipped
PRELOAD_LIMIT = 2000  # folders with more files are read lazily (headers checked up front)
BUILTIN_CONTENT = (
    "astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry",
    "hubble_deep_field", "retina", "camera", "brick", "grass", "gravel",
)
HELD_OUT = ("china", "flower")


_PIL_NOTES = {"L": ["grayscale"], "1": ["grayscale"], "LA": ["alpha", "grayscale"], "RGBA": ["alpha"],
              "PA": ["alpha"], "I;16": ["16-bit", "grayscale"], "I;16B": ["16-bit", "grayscale"],
              "I": ["16-bit", "grayscale"], "F": ["float", "grayscale"]}


def _probe(path: Path) -> tuple[tuple[int, int], list[str]]:
    """(height, width) and conversion notes from the file header only (no pixel decode)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            width, height = im.size
            notes = list(_PIL_NOTES.get(im.mode, []))
            # Pillow reports 16-bit RGB(A) as 8-bit modes; the bit depth is in the header
            if im.format == "PNG":
                with open(path, "rb") as fh:
                    deep = fh.read(26)[24:25] == b"\x10"  # IHDR bit depth
            elif im.format == "TIFF":
                bits = im.tag_v2.get(258, (8,))
                deep = max(bits if isinstance(bits, tuple) else (bits,)) == 16
            else:
                deep = False
            if deep and "16-bit" not in notes:
                notes.append("16-bit")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadInputError(f"cannot read image header {path}: {exc}") from None
    return (height, width), notes


@dataclass
class ContentStats:
    """What happened to the files found: used as-is, converted, or skipped and why."""

    found: int = 0
    used: int = 0
    converted: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        conv = ", ".join(f"{n} {k}" for k, n in sorted(self.converted.items())) or "none"
        skip = ", ".join(f"{n} {k}" for k, n in sorted(self.skipped.items())) or "none"
        return f"{self.used} of {self.found} images used; converted: {conv}; skipped: {skip}"

    def to_dict(self) -> dict:
        return {"found": self.found, "used": self.used, "converted": dict(self.converted),
                "skipped": dict(self.skipped)}


class ContentImages:
    """Content photos, sampled as random crops + flips.

    Small folders (up to ``PRELOAD_LIMIT`` files) are decoded once up front and held in
    memory: bad files are counted before training starts and each step only crops.
    Larger folders (COCO's 118k photos would need ~100 GB decoded) are checked by reading
    each file's header at start (unreadable and tiny images are counted and dropped) and
    decoded when sampled; a file that fails to decode then is counted and replaced by
    another draw. ``max_side`` downsizes big images on load.
    """

    def __init__(self, images: Sequence[np.ndarray | Path], names: Sequence[str], stats: ContentStats,
                 max_side: int = 640) -> None:
        if not images:
            raise BadInputError("no usable content images: " + stats.summary())
        self.images = list(images)
        self.names = list(names)
        self.stats = stats
        self.max_side = max_side

    def __len__(self) -> int:
        return len(self.images)

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` as HxWx3 uint8 RGB (decoded now for a large, lazily read folder)."""
        item = self.images[index]
        if isinstance(item, np.ndarray):
            return item
        image, _ = decode_image(item)
        if min(image.shape[:2]) < MIN_IMAGE_SIDE:
            raise BadInputError(f"{item} is smaller than {MIN_IMAGE_SIDE}px")
        return _limit_side(image, self.max_side)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str], max_side: int = 640, progress: bool = False) -> "ContentImages":
        root = Path(folder)
        if not root.is_dir():
            raise BadInputError(f"content folder not found: {root}")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not files:
            raise BadInputError(f"no images in content folder {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
        stats = ContentStats(found=len(files))
        lazy = len(files) > PRELOAD_LIMIT
        images: list[np.ndarray | Path] = []
        names: list[str] = []
        iterator = files
        if progress:
            iterator = progress_bar(files, desc="checking" if lazy else "reading content images", unit="img", leave=False)
        for path in iterator:
            decoded = None
            try:
                if lazy:
                    shape, notes = _probe(path)
                else:
                    decoded, notes = decode_image(path)
                    shape = decoded.shape[:2]
            except BadInputError:
                stats.skipped["unreadable"] += 1
                continue
            if min(shape) < MIN_IMAGE_SIDE:
                stats.skipped[f"smaller than {MIN_IMAGE_SIDE}px"] += 1
                continue
            for note in notes:
                stats.converted[note] += 1
            images.append(path if decoded is None else _limit_side(decoded, max_side))
            names.append(str(path.relative_to(root)))
        stats.used = len(images)
        return cls(images, names, stats, max_side)

    @classmethod
    def builtin(cls) -> "ContentImages":
        """scikit-image's bundled photos (offline; the held-out sklearn photos are not among them)."""
        import skimage.data

        stats = ContentStats(found=len(BUILTIN_CONTENT))
        images = []
        for name in BUILTIN_CONTENT:
            image, notes = to_rgb8(getattr(skimage.data, name)())
            for note in notes:
                stats.converted[note] += 1
            images.append(_limit_side(image, 640))
        stats.used = len(images)
        return cls(images, list(BUILTIN_CONTENT), stats)

    def batch(self, rng: np.random.Generator, batch: int, size: int) -> np.ndarray:
        """``batch`` random crops (random scale, random horizontal flip): NHWC uint8."""
        out = np.empty((batch, size, size, 3), np.uint8)
        for i in range(batch):
            for _attempt in range(100):
                try:
                    image = self.image(int(rng.integers(len(self.images))))
                    break
                except BadInputError:
                    self.stats.skipped["unreadable at load"] += 1
            else:
                raise BadInputError("100 content images in a row failed to decode: " + self.stats.summary())
            out[i] = random_crop(image, rng, size)
        return out


def _limit_side(image: np.ndarray, max_side: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    s = max_side / max(h, w)
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def random_crop(image: np.ndarray, rng: np.random.Generator, size: int, max_zoom_out: float = 2.0) -> np.ndarray:
    """A ``size`` square crop after a random rescale (short side in [size, ``max_zoom_out``*size],
    never above the image's own short side unless it must grow to reach ``size``), then a random flip."""
    import cv2

    h, w = image.shape[:2]
    short = min(h, w)
    top = max(size, min(short, int(size * max_zoom_out)))
    target = int(rng.integers(size, top + 1))
    if target != short:
        s = target / short
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (max(size, round(w * s)), max(size, round(h * s))), interpolation=interp)
        h, w = image.shape[:2]
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    crop = image[y : y + size, x : x + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return crop


def load_style(spec: str, size: int = 512, seed: int = 0) -> np.ndarray:
    """A style image from a path (downsized to ``size`` on its long side if larger), or a
    built-in generated style by name (e.g. ``mosaic``, made at ``size``)."""
    if spec in BUILTIN_STYLES and not Path(spec).exists():
        return builtin_style(spec, size=size, seed=seed)
    path = Path(spec)
    if not path.is_file():
        raise BadInputError(
            f"style image not found: {spec} (give an image file or a built-in style: {', '.join(BUILTIN_STYLES)})"
        )
    image, _ = decode_image(path)
    if min(image.shape[:2]) < MIN_IMAGE_SIDE:
        raise BadInputError(f"style image {spec} is too small ({image.shape[1]}x{image.shape[0]}); need >= {MIN_IMAGE_SIDE}px")
    # The style's scale is set relative to ``size`` (Johnson et al. use 256-512 px), and a
    # camera-sized style image would make the Gram pass needlessly large.
    return _limit_side(image, size)


def held_out_photos() -> dict[str, np.ndarray]:
    """scikit-learn's bundled photos (china, flower): never used for training; for evaluation."""
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    return {Path(f).stem: np.ascontiguousarray(img) for f, img in zip(bunch.filenames, bunch.images)}


def open_content(spec: str, max_side: int = 640, progress: bool = False) -> ContentImages:
    """``builtin`` or a folder path."""
    if spec == "builtin" and not Path(spec).exists():
        return ContentImages.builtin()
    return ContentImages.from_folder(spec, max_side=max_side, progress=progress)


__all__ = [
    "ContentImages", "ContentStats", "random_crop", "load_style",
    "held_out_photos", "open_content", "BUILTIN_CONTENT", "HELD_OUT", "MIN_IMAGE_SIDE",
]
