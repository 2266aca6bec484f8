"""Real photos that installed packages ship (nothing downloaded): the captioner's evaluation set.

scikit-image's ``data`` photos and scikit-learn's ``load_sample_images``. ``MAIN_PHOTOS`` are the
six the issue names; ``PHOTOS`` adds the other six packaged photos, five of them things ImageNet
has no class for. ``CALIBRATION_IMAGES`` are packaged images that are *not* evaluated (textures,
microscopy, a logo): the INT8 classifier is calibrated on those, never on the evaluation photos.
"""

from __future__ import annotations

import numpy as np

from stylize_rt.errors import MissingDependencyError

MAIN_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "china", "flower")
PHOTOS = (*MAIN_PHOTOS, "camera", "stereo_motorcycle", "hubble_deep_field", "coins", "clock", "moon")
SKLEARN_PHOTOS = ("china", "flower")
CALIBRATION_IMAGES = ("brick", "grass", "gravel", "colorwheel", "immunohistochemistry", "retina", "logo")


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def load_photo(name: str) -> np.ndarray:
    """One packaged photo as HxWx3 uint8 RGB (gray ones repeated to three channels)."""
    try:
        if name in SKLEARN_PHOTOS:
            from sklearn.datasets import load_sample_image  # the [train]/[bench] extras' photos

            return _rgb(load_sample_image(f"{name}.jpg"))
        import skimage.data  # likewise ([demo] extra)
    except ImportError as exc:
        raise MissingDependencyError(f"the packaged photos need scikit-image and scikit-learn ({exc})") from None
    image = getattr(skimage.data, name)()
    return _rgb(image[0] if isinstance(image, tuple) else image)


def load_photos(names=PHOTOS) -> dict[str, np.ndarray]:
    return {n: load_photo(n) for n in names}


__all__ = ["MAIN_PHOTOS", "PHOTOS", "CALIBRATION_IMAGES", "load_photo", "load_photos"]
