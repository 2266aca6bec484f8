"""Contact sheets: one row per image, input | output side by side, written atomically as PNG.

numpy + Pillow only (no torch), so the runtime-side quality benchmark can use it too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from stylize_rt.errors import BadInputError
from stylize_rt.fileio import atomic_file


def contact_sheet(
    rows: Sequence[Sequence[np.ndarray]], cell_height: int = 256, gap: int = 4, background: int = 255
) -> np.ndarray:
    """Lay out HxWx3 uint8 images in rows; every image is resized to ``cell_height`` tall."""
    from PIL import Image

    if not rows or not all(rows):
        raise BadInputError("contact sheet needs at least one row with at least one image")
    scaled_rows = []
    for row in rows:
        cells = []
        for image in row:
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise BadInputError(f"contact sheet cells must be HxWx3 uint8, got {image.dtype} {image.shape}")
            h, w = image.shape[:2]
            width = max(1, round(w * cell_height / h))
            cells.append(np.asarray(Image.fromarray(image).resize((width, cell_height), Image.BILINEAR)))
        scaled_rows.append(cells)
    width = max(sum(c.shape[1] for c in cells) + gap * (len(cells) + 1) for cells in scaled_rows)
    height = len(scaled_rows) * cell_height + gap * (len(scaled_rows) + 1)
    sheet = np.full((height, width, 3), background, np.uint8)
    y = gap
    for cells in scaled_rows:
        x = gap
        for c in cells:
            sheet[y : y + cell_height, x : x + c.shape[1]] = c
            x += c.shape[1] + gap
        y += cell_height + gap
    return sheet


def write_png(image: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Save ``image`` as PNG via a temp file + rename, so a reader never sees half a file."""
    from PIL import Image

    with atomic_file(path) as fh:
        Image.fromarray(image).save(fh, format="PNG", optimize=True)
    return Path(path)


def write_contact_sheet(
    pairs: Sequence[Sequence[np.ndarray]], path: str | os.PathLike[str], cell_height: int = 256
) -> Path:
    """``pairs``: rows such as (input, output) or (input, output_a, output_b)."""
    return write_png(contact_sheet(pairs, cell_height=cell_height), path)


__all__ = ["contact_sheet", "write_png", "write_contact_sheet"]
