"""Quality numbers of a style generator, per style, on held-out photos.

``python -m stylize_rt.benchmarks.quality [--model MODEL] [--baseline MODEL] [--threads 1]``

MODEL is an ONNX file, a model folder or an embedded model's name (default: the embedded
default). Every style of the model is measured (a multi-style graph is fed each style's
one-hot weights), on scikit-learn's bundled photos ``china`` and ``flower``, which training
never sees. The frames go through the runtime path (``OnnxRuntimeBackend`` + ``Stylizer``);
the style measures need torch (the ``[train]`` extra).

Targets (pass/fail columns):

1. **edge correlation** >= 0.3 on the worst photo: Pearson correlation of the Sobel
   edge-magnitude maps of input and output (content kept).
2. **flicker under noise** <= 1.5: a static scene with fresh N(0, 2/255) noise per frame;
   mean |out_t - out_{t-1}| over mean |in_t - in_{t-1}|.
3. **flicker under shift** <= 1.5: the camera jitters by 1-2 px between frames (and the same
   sensor noise); both sequences are compared after undoing the known shift (inner region,
   4 px border left out), so a perfectly shift-equivariant model scores its noise ratio and
   everything above it is shift-induced flicker. The target is on what the runtime shows for a
   video or camera: frames through its grid anchor (``runtime.grid_anchor``, motion estimated
   from the frames themselves, never the known offsets) where the graph declares its grid, and
   as they are where it does not. The model alone, frame by frame (``stylizer(frame)``, what the
   Python API gives without an anchor), is reported beside it.
4. **strength 0** reproduces the input within 1 level (max abs difference).
5. **colour preservation**: with ``preserve_color`` the output's BT.601 chroma (Cb, Cr, from
   OpenCV's conversion, an implementation independent of ours) against the input's: p99 <= 2
   levels over the pixels where the full-style luma with the input's chroma stays inside the
   RGB gamut. Elsewhere clipping to 0..255 must move the chroma (by tens of levels in bright or
   dark saturated areas; a style that darkens or brightens a lot has more such pixels), so the
   mean and p99 over all pixels and the out-of-gamut share are reported beside it, not gated.

Style likeness (no targets; compared with ``--baseline`` on every style both models share by
name): patch s2o and Gram distance in both networks (``benchmarks.style_measures``); patch s2o
is also given normalized, 0 = the unstylized photo, 1 = another rendering (seed 7) of a
built-in procedural style. The network a model was trained with (``perception`` in its card)
is marked ``*``: the other network is the independent judge.

Style images: a built-in style name is regenerated exactly as training made it (size and seed
from the checkpoint card; the shipped ``style.png`` is a half-size preview), any other style
comes from the model folder's style PNG (``model.json`` ``files.styles``: name -> file, or
``files.style`` for a single style; else ``style_NAME.png`` or ``styles/NAME.png``).

Prints a table; writes ``quality.json`` and a contact sheet (photos x styles, the baseline's
row under the model's) into a new run directory ``runs/quality-<UTC time>/`` (``--out-dir``);
published files only when named (``--json-out``, ``--sheet``). Exit status: 0 every target met,
1 measured but a target missed (the files are written), 2 bad input or a missing dependency,
3 an output that cannot be written, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import onnxruntime

from stylize_rt import contract
from stylize_rt.benchmarks.environment import REPO_ROOT
from stylize_rt.errors import BadInputError, MissingDependencyError, run_reporting_errors
from stylize_rt.fileio import write_atomic
from stylize_rt.imageio import read_image
from stylize_rt.models import DEFAULT_GENERATOR, get_model, resolve_model
from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend
from stylize_rt.runtime.grid_anchor import GridAnchor
from stylize_rt.runtime.style_controls import StyleControls, one_hot
from stylize_rt.runtime.stylizer import Stylizer
from stylize_rt.sizes import check_texture_scale
from stylize_rt.training.data import held_out_photos
from stylize_rt.training.preview import write_contact_sheet
from stylize_rt.training.style_images import BUILTIN_STYLES, builtin_style

EDGE_TARGET = 0.3
FLICKER_TARGET = 1.5
STRENGTH0_TARGET = 1  # levels, max abs difference
CHROMA_TARGET = 2.0  # levels, p99 where the luma transfer stays in the RGB gamut
NOISE_SIGMA = 2.0 / 255.0
SHIFT_MAX = 4  # the jittering camera stays within this many pixels of its start
SHIFT_MARGIN = 4  # border left out of the shift comparison (padding makes borders differ legitimately)
CEILING_SEED = 7  # another rendering of a procedural style: the normalized measure's 1.0
EXIT_TARGET_MISSED = 1
TARGETS = {
    "edge_correlation_min": f">= {EDGE_TARGET}",
    "flicker_noise_max": f"<= {FLICKER_TARGET}",
    "flicker_shift_anchored_max": f"<= {FLICKER_TARGET}",
    "strength0_max_diff": f"<= {STRENGTH0_TARGET}",
    "chroma_p99_in_gamut_max": f"<= {CHROMA_TARGET}",
}


# -- content and stability measures (numpy/OpenCV) ----------------------------------------
def sobel_magnitude(image: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of an HxWx3 uint8 RGB image's luma (float32)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    gray = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    return np.sqrt(gx * gx + gy * gy)


def edge_correlation(original: np.ndarray, stylized: np.ndarray) -> float:
    """Pearson correlation of the Sobel magnitude maps (NaN if either map is constant)."""
    if original.shape != stylized.shape:
        raise ValueError(f"shapes differ: {original.shape} vs {stylized.shape}")
    a = sobel_magnitude(original).ravel().astype(np.float64)
    b = sobel_magnitude(stylized).ravel().astype(np.float64)
    a -= a.mean()
    b -= b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def noisy_frames(image: np.ndarray, count: int, sigma: float = NOISE_SIGMA, seed: int = 0) -> np.ndarray:
    """``count`` copies of a static uint8 image, each with fresh N(0, sigma) noise (sigma in [0, 1] units)."""
    rng = np.random.default_rng(seed)
    base = image.astype(np.float32)[None]
    noise = rng.normal(0.0, sigma * 255.0, (count, *image.shape)).astype(np.float32)
    return np.clip(np.rint(base + noise), 0, 255).astype(np.uint8)


def mean_frame_change(frames: np.ndarray) -> float:
    """Mean |frame_t - frame_{t-1}| over all consecutive pairs and pixels (uint8 units)."""
    if len(frames) < 2:
        raise ValueError("need at least two frames")
    f = frames.astype(np.int16)
    return float(np.abs(f[1:] - f[:-1]).mean())


def flicker_ratio(inputs: np.ndarray, outputs: np.ndarray) -> float:
    """Output frame-to-frame change over input frame-to-frame change."""
    return mean_frame_change(outputs) / mean_frame_change(inputs)


def jitter_offsets(count: int, max_offset: int = SHIFT_MAX, seed: int = 0) -> np.ndarray:
    """(count, 2) crop offsets (y, x) of a camera that moves 1 or 2 px (largest axis) every frame,
    staying within ``max_offset`` px of the origin."""
    if max_offset < 2:
        raise ValueError("max_offset must be at least 2")
    rng = np.random.default_rng(seed)
    offsets = [np.array([max_offset // 2, max_offset // 2])]
    while len(offsets) < count:
        step = rng.integers(-2, 3, 2)
        nxt = offsets[-1] + step
        if np.abs(step).max() in (1, 2) and (nxt >= 0).all() and (nxt <= max_offset).all():
            offsets.append(nxt)
    return np.stack(offsets)


def jittered_frames(image: np.ndarray, offsets: np.ndarray, sigma: float = NOISE_SIGMA, seed: int = 0) -> np.ndarray:
    """Crops of ``image`` at ``offsets`` (all the same size), each with fresh N(0, sigma) noise."""
    m = int(offsets.max())
    h, w = image.shape[0] - m, image.shape[1] - m
    crops = np.stack([image[oy : oy + h, ox : ox + w] for oy, ox in offsets])
    noise = np.random.default_rng(seed).normal(0.0, sigma * 255.0, crops.shape).astype(np.float32)
    return np.clip(np.rint(crops.astype(np.float32) + noise), 0, 255).astype(np.uint8)


def aligned_change(frames: np.ndarray, offsets: np.ndarray, margin: int = SHIFT_MARGIN) -> float:
    """Mean |frame_t - frame_{t-1}| after undoing the known shift: both frames cut to the scene
    region they share, less ``margin`` px from each frame's border."""
    h, w = frames.shape[1:3]
    total, count = 0.0, 0
    for t in range(1, len(frames)):
        (ay, ax), (by, bx) = offsets[t - 1], offsets[t]
        y0, x0 = max(ay, by) + margin, max(ax, bx) + margin  # scene coordinates
        y1, x1 = min(ay, by) + h - margin, min(ax, bx) + w - margin
        if y1 <= y0 or x1 <= x0:
            raise ValueError("frames too small for the shift and margin")
        a = frames[t - 1, y0 - ay : y1 - ay, x0 - ax : x1 - ax].astype(np.int16)
        b = frames[t, y0 - by : y1 - by, x0 - bx : x1 - bx].astype(np.int16)
        total += float(np.abs(b - a).sum())
        count += a.size
    return total / count


def shift_flicker_ratio(inputs: np.ndarray, outputs: np.ndarray, offsets: np.ndarray) -> float:
    """Motion-compensated output change over motion-compensated input change."""
    return aligned_change(outputs, offsets) / aligned_change(inputs, offsets)


def chroma(image: np.ndarray) -> np.ndarray:
    """BT.601 (Cb, Cr) in levels, by OpenCV (float, unrounded)."""
    ycrcb = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2YCrCb) * 255.0
    return ycrcb[..., 1:]


def chroma_difference(original: np.ndarray, output: np.ndarray, stylized: np.ndarray | None = None) -> dict:
    """|chroma(output) - chroma(original)| over pixels and both channels: mean and p99; with the
    full-style ``stylized`` frame also the share of pixels where its luma with the original's
    chroma leaves the RGB gamut (clipping must move the chroma there) and the p99 elsewhere."""
    d = np.abs(chroma(output) - chroma(original))
    res = {"chroma_mean": float(d.mean()), "chroma_p99": float(np.percentile(d, 99))}
    if stylized is not None:
        target = cv2.cvtColor(original.astype(np.float32) / 255.0, cv2.COLOR_RGB2YCrCb)
        target[..., 0] = cv2.cvtColor(stylized.astype(np.float32) / 255.0, cv2.COLOR_RGB2YCrCb)[..., 0]
        rgb = cv2.cvtColor(target, cv2.COLOR_YCrCb2RGB) * 255.0
        inside = ((rgb >= -0.5) & (rgb <= 255.5)).all(-1)
        res["out_of_gamut"] = float(1.0 - inside.mean())
        res["chroma_p99_in_gamut"] = float(np.percentile(d[inside], 99)) if inside.any() else 0.0
    return res


# -- the model under test ---------------------------------------------------------------
@dataclass
class ModelUnderTest:
    """An ONNX generator graph and what its folder's cards say about it."""

    onnx: Path
    folder: Path | None
    perception: str | None = None
    style_size: int = 512
    seed: int = 0
    style_files: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def locate(cls, spec: str) -> ModelUnderTest:
        path = resolve_model(spec)
        if path.is_dir():
            onnx, folder = path / contract.CHECKPOINT_ONNX, path
            if not onnx.is_file():
                raise BadInputError(f"{path} has no {contract.CHECKPOINT_ONNX}")
        else:
            onnx = path
            folder = path.parent if (path.parent / "model.json").is_file() else None
        model = cls(onnx, folder)
        if folder is not None:
            model.read_cards(folder)
        return model

    def read_cards(self, folder: Path) -> None:
        cards = {}
        for name in ("model.json", contract.CHECKPOINT_CARD):
            try:
                cards[name] = json.loads((folder / name).read_text())
            except (OSError, ValueError):
                cards[name] = {}
        model_card, ckpt = cards["model.json"], cards[contract.CHECKPOINT_CARD]
        perception = model_card.get("perception") or ckpt.get("perception")
        self.perception = CARD_PERCEPTION.get(perception, perception)
        train = ckpt.get("train") or {}
        self.style_size = int(train.get("style_size", self.style_size))
        self.seed = int(train.get("seed", self.seed))
        files = model_card.get("files") or {}
        styles = files.get("styles")
        if isinstance(styles, dict):
            self.style_files = {str(k): folder / v for k, v in styles.items()}
        elif isinstance(files.get("style"), str):
            self.style_files = {"": folder / files["style"]}  # the single style, whatever its name

    def style_image(self, name: str, single: bool) -> tuple[np.ndarray, str]:
        """(image, where it came from) for style ``name``."""
        if name in BUILTIN_STYLES:
            return builtin_style(name, self.style_size, self.seed), f"builtin {name} {self.style_size}px seed {self.seed}"
        path = self.style_files.get(name) or (self.style_files.get("") if single else None)
        if path is None and self.folder is not None:  # the usual names, where the card lists none
            path = next((p for p in (self.folder / f"style_{name}.png", self.folder / "styles" / f"{name}.png")
                         if p.is_file()), None)
        if path is None or not path.is_file():
            raise BadInputError(f"no style image for style {name!r} of {self.onnx}: not a built-in style "
                                f"({', '.join(BUILTIN_STYLES)}) and its folder ships no PNG for it")
        return read_image(path), str(display_path(path))


def display_path(path: Path) -> str:
    """Repository-relative when inside the repository, so results files are portable."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# -- measuring ----------------------------------------------------------------------------
@dataclass
class Settings:
    frames: int = 16
    threads: int = 0
    nets: tuple[str, ...] = ("random", "effnet")
    max_patches: int = 6000
    seed: int = 0
    texture_scale: float = 1.0  # --texture-scale: the model sees each photo shrunk by this (Stylizer.texture_scale)


class References:
    """Per style: its feature references and the normalization's floor (photos) and ceiling."""

    def __init__(self, measures, photos: dict[str, np.ndarray]) -> None:
        self.measures, self.photos = measures, photos
        self._cache: dict[str, dict] = {}

    def get(self, name: str, image: np.ndarray, source: str) -> dict:
        if name not in self._cache:
            ref = self.measures.reference(image)
            floor = {p: self.measures.measure(img, ref) for p, img in self.photos.items()}
            ceiling = None
            if name in BUILTIN_STYLES:
                h, w = next(iter(self.photos.values())).shape[:2]
                other = builtin_style(name, max(h, w), CEILING_SEED)[:h, :w]
                ceiling = self.measures.measure(np.ascontiguousarray(other), ref)
            self._cache[name] = {"ref": ref, "source": source, "floor": floor, "ceiling": ceiling}
        return self._cache[name]

    def to_json(self) -> dict:
        """Per style measured so far: where its image came from, the photos' and the ceiling's measures."""
        return {name: {"style_image": r["source"], "photo": r["floor"], f"style_seed_{CEILING_SEED}": r["ceiling"]}
                for name, r in self._cache.items()}


def normalized(value: float, floor: float, ceiling: float | None) -> float | None:
    """``(value - floor) / (ceiling - floor)``: 0 = as style-like as the unstylized photo, 1 = as
    style-like as another rendering of the style; None without a ceiling (or a degenerate one)."""
    if ceiling is None or abs(ceiling - floor) < 1e-6:
        return None
    return round((value - floor) / (ceiling - floor), 4)


def _style_likeness(measures, outputs: dict[str, np.ndarray], refs: dict) -> tuple[dict, dict]:
    per_photo = {p: measures.measure(out, refs["ref"]) for p, out in outputs.items()}
    summary = {}
    for net in measures.nets:
        for key in (f"patch_s2o_{net}", f"patch_o2s_{net}", f"gram_dist_{net}"):
            summary[key + "_mean"] = round(float(np.mean([v[key] for v in per_photo.values()])), 4)
        floor = float(np.mean([v[f"patch_s2o_{net}"] for v in refs["floor"].values()]))
        ceiling = refs["ceiling"][f"patch_s2o_{net}"] if refs["ceiling"] else None
        summary[f"patch_s2o_norm_{net}"] = normalized(summary[f"patch_s2o_{net}_mean"], floor, ceiling)
    return per_photo, summary


def measure_style(stylizer: Stylizer, weights: tuple[float, ...], photos: dict[str, np.ndarray],
                  settings: Settings) -> tuple[dict, dict[str, np.ndarray]]:
    """Content, stability and control measures of one style on each photo; and the outputs."""
    full = StyleControls(weights)
    per_photo, outputs = {}, {}
    for i, (name, photo) in enumerate(photos.items()):
        out = stylizer(photo, full)
        outputs[name] = out
        seq = noisy_frames(photo, settings.frames, seed=settings.seed + i)
        styl = stylize_clip(stylizer, seq, full)
        offsets = jitter_offsets(settings.frames, seed=settings.seed + i)
        jit = jittered_frames(photo, offsets, seed=settings.seed + 100 + i)
        jit_out = stylize_clip(stylizer, jit, full)
        anchored_out = stylize_clip(stylizer, jit, full, anchored=True)
        zero = stylizer(photo, StyleControls(weights, strength=0.0))
        kept = stylizer(photo, StyleControls(weights, preserve_color=True))
        chroma_d = chroma_difference(photo, kept, out)
        per_photo[name] = {
            "edge_correlation": round(edge_correlation(photo, out), 4),
            "flicker_noise": round(flicker_ratio(seq, styl), 4),
            "flicker_shift": round(shift_flicker_ratio(jit, jit_out, offsets), 4),
            "flicker_shift_anchored": round(shift_flicker_ratio(jit, anchored_out, offsets), 4),
            "grid_anchor": stylizer.grid is not None,
            "strength0_max_diff": int(np.abs(zero.astype(np.int16) - photo).max()),
            "chroma_mean": round(chroma_d["chroma_mean"], 3),
            "chroma_p99": round(chroma_d["chroma_p99"], 3),
            "chroma_p99_in_gamut": round(chroma_d["chroma_p99_in_gamut"], 3),
            "out_of_gamut": round(chroma_d["out_of_gamut"], 4),
            "size": [int(photo.shape[1]), int(photo.shape[0])],
        }
    return per_photo, outputs


def stylize_clip(stylizer: Stylizer, frames: np.ndarray, controls: StyleControls, chunk: int = 4,
                 anchored: bool = False) -> np.ndarray:
    """``frames`` as one clip; ``anchored``: through a grid anchor, as the runtime runs a video
    (as they are when the graph declares no grid)."""
    offsets = None
    if anchored and stylizer.grid is not None:
        anchor = GridAnchor(stylizer.anchor_grid)
        offsets = [anchor.offset(f) for f in frames]
    return np.concatenate([stylizer.stylize_batch(frames[i : i + chunk], controls,
                                                  None if offsets is None else offsets[i : i + chunk])
                           for i in range(0, len(frames), chunk)])


def anchored_shift_flicker(stylizer: Stylizer, photo: np.ndarray, controls: StyleControls, frames: int = 16,
                           seed: int = 0) -> float:
    """Shift flicker through the grid anchor of one photo's jittering clip, with ``measure_style``'s
    clip for photo index ``seed`` (the same number as its ``flicker_shift_anchored``)."""
    offsets = jitter_offsets(frames, seed=seed)
    clip = jittered_frames(photo, offsets, seed=seed + 100)
    return shift_flicker_ratio(clip, stylize_clip(stylizer, clip, controls, anchored=True), offsets)


# A card names its perception network as training does; the measures' columns use short names.
CARD_PERCEPTION = {"efficientnet-lite0": "effnet", "efficientnet": "effnet"}


def _summary(per_photo: dict) -> dict:
    vals = per_photo.values()
    return {
        "edge_correlation_min": min(p["edge_correlation"] for p in vals),
        "edge_correlation_mean": round(float(np.mean([p["edge_correlation"] for p in vals])), 4),
        "flicker_noise_max": max(p["flicker_noise"] for p in vals),
        "flicker_shift_max": max(p["flicker_shift"] for p in vals),
        "flicker_shift_anchored_max": max(p["flicker_shift_anchored"] for p in vals),
        "strength0_max_diff": max(p["strength0_max_diff"] for p in vals),
        "chroma_mean_max": max(p["chroma_mean"] for p in vals),
        "chroma_p99_max": max(p["chroma_p99"] for p in vals),
        "chroma_p99_in_gamut_max": max(p["chroma_p99_in_gamut"] for p in vals),
        "out_of_gamut_max": max(p["out_of_gamut"] for p in vals),
    }


def passes(summary: dict) -> dict[str, bool]:
    """Each target column: met or not (a NaN edge correlation never passes)."""
    edge = summary["edge_correlation_min"]
    return {
        "edge_correlation_min": bool(edge == edge and edge >= EDGE_TARGET),
        "flicker_noise_max": summary["flicker_noise_max"] <= FLICKER_TARGET,
        "flicker_shift_anchored_max": summary["flicker_shift_anchored_max"] <= FLICKER_TARGET,
        "strength0_max_diff": summary["strength0_max_diff"] <= STRENGTH0_TARGET,
        "chroma_p99_in_gamut_max": summary["chroma_p99_in_gamut_max"] <= CHROMA_TARGET,
    }


def measure_model(model: ModelUnderTest, photos: dict[str, np.ndarray], settings: Settings, measures,
                  references: References | None, only: list[str] | None = None) -> dict:
    """Every style of ``model`` (or those in ``only``): {"styles": {name: result}, "outputs": ...}."""
    stylizer = Stylizer(OnnxRuntimeBackend(model.onnx, threads=settings.threads), texture_scale=settings.texture_scale)
    styles, outputs = {}, {}
    t0 = time.perf_counter()
    try:
        names = list(stylizer.styles)
        for name in names:
            if only is not None and name not in only:
                continue
            per_photo, outs = measure_style(stylizer, one_hot(names, name), photos, settings)
            summary = _summary(per_photo)
            entry = {"summary": summary, "passes": passes(summary), "per_photo": per_photo}
            if measures is not None and references is not None:
                image, source = model.style_image(name, single=len(names) == 1)
                refs = references.get(name, image, source)
                likeness, extra = _style_likeness(measures, outs, refs)
                summary.update(extra)
                for p, v in likeness.items():
                    per_photo[p].update(v)
                entry["style_image"] = refs["source"]
            styles[name] = entry
            outputs[name] = outs
    finally:
        stylizer.close()
    return {
        "model": display_path(model.onnx),
        "perception": model.perception,
        "style_names": names,
        "multi_style": len(names) > 1 or stylizer.multi_style,
        "styles": styles,
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "outputs": outputs,
    }


def style_measures(settings: Settings):
    """The torch-side measures, or None when none are asked for."""
    if not settings.nets:
        return None
    try:  # torch and the EfficientNet weights come with the [train] extra; the rest of this module needs neither
        from stylize_rt.benchmarks.style_measures import StyleMeasures
    except ImportError as exc:
        raise MissingDependencyError(f"the style measures need torch (pip install 'stylize-rt[train]'): {exc}; "
                                     "or pass --nets none") from None
    return StyleMeasures(settings.nets, settings.max_patches)




# -- report -------------------------------------------------------------------------------
COLUMNS = [  # (header, summary key, format)
    ("edge min", "edge_correlation_min", "{:.3f}"),
    ("flicker noise", "flicker_noise_max", "{:.3f}"),
    ("flicker shift anchored", "flicker_shift_anchored_max", "{:.3f}"),
    ("flicker shift model alone", "flicker_shift_max", "{:.3f}"),
    ("strength 0", "strength0_max_diff", "{:d}"),
    ("chroma p99 in gamut", "chroma_p99_in_gamut_max", "{:.2f}"),
    ("chroma mean / p99 all", "chroma_all", "{}"),
]


def table_rows(result: dict, nets: tuple[str, ...]) -> list[list[str]]:
    """Rows of the readable table: header, then per style the model's row and the baseline's."""
    header = ["style: model"] + [f"{h} ({TARGETS[k]})" if k in TARGETS else h for h, k, _ in COLUMNS]
    for net in nets:
        header += [f"patch s2o {net} (norm)", f"Gram {net}"]
    rows = [header]
    entries = [("model", result["model"])]
    if result.get("baseline"):
        entries.append(("baseline", result["baseline"]))
    for style in result["model"]["styles"]:
        for label, res in entries:
            entry = res["styles"].get(style)
            if entry is None:
                continue
            s, ok = entry["summary"], entry["passes"]
            row = [f"{style}: {label}"]
            for _h, key, fmt in COLUMNS:
                if key == "chroma_all":
                    row.append(f"{s['chroma_mean_max']:.2f} / {s['chroma_p99_max']:.2f} "
                               f"({100 * s['out_of_gamut_max']:.1f}% out of gamut)")
                    continue
                row.append(fmt.format(s[key]) + ("" if ok.get(key, True) else " FAIL"))
            for net in nets:
                mark = "*" if res.get("perception") == net else ""
                if f"patch_s2o_{net}_mean" in s:
                    norm = s.get(f"patch_s2o_norm_{net}")
                    row.append(f"{s[f'patch_s2o_{net}_mean']:.3f}" + (f" ({norm:+.2f})" if norm is not None else "") + mark)
                    row.append(f"{s[f'gram_dist_{net}_mean']:.3f}{mark}")
                else:
                    row += ["-", "-"]
            rows.append(row)
    return rows


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in rows)


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def _label(image: np.ndarray, text: str) -> np.ndarray:
    """The cell with a small caption in its top-left corner (white on a dark outline)."""
    img = image.copy()
    scale = max(0.4, img.shape[0] / 500)
    for colour, thick in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(img, text, (6, int(20 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale * 0.6, colour, thick, cv2.LINE_AA)
    return img


def sheet_rows(photos: dict[str, np.ndarray], result: dict) -> list[list[np.ndarray]]:
    """Per photo: input then the model's styles; below it the baseline's outputs, each under the
    model's column of the same style (blank where the baseline lacks that style)."""
    model, baseline = result["model"], result.get("baseline")
    rows = []
    for name, photo in photos.items():
        rows.append([_label(photo, f"{name} input")]
                    + [_label(outs[name], f"{style} (model)") for style, outs in model["outputs"].items()])
        if baseline and baseline["outputs"]:
            blank = np.full_like(photo, 255)
            rows.append([_label(photo, f"{name} input")]
                        + [_label(baseline["outputs"][style][name], f"{style} (baseline)")
                           if style in baseline["outputs"] else blank for style in model["outputs"]])
    return rows


def run(args: argparse.Namespace) -> dict:
    settings = Settings(frames=args.frames, threads=args.threads, nets=parse_nets(args.nets),
                        max_patches=args.max_patches, texture_scale=check_texture_scale(args.texture_scale))
    model = ModelUnderTest.locate(args.model or get_model(DEFAULT_GENERATOR).name)
    base = ModelUnderTest.locate(args.baseline) if args.baseline else None
    model.perception = args.perception or model.perception
    if base is not None:
        base.perception = args.baseline_perception or base.perception
    if settings.nets and args.threads > 0:
        import torch  # the style measures run in torch; set its threads before any work

        torch.set_num_threads(args.threads)
    photos = held_out_photos()
    measures = style_measures(settings)
    references = References(measures, photos) if measures is not None else None
    main = measure_model(model, photos, settings, measures, references)
    baseline = None
    if base is not None:
        baseline = measure_model(base, photos, settings, measures, references, only=list(main["styles"]))
        if not baseline["styles"]:
            print(f"note: the baseline shares no style name with the model (baseline: "
                  f"{', '.join(baseline['style_names'])})", file=sys.stderr)
    result = {
        "what": "held-out photos (scikit-learn china, flower); never used in training",
        "targets": TARGETS,
        "settings": {"frames": settings.frames, "noise_sigma": "2/255", "shift": f"1-2 px per frame within "
                     f"{SHIFT_MAX} px, {SHIFT_MARGIN} px border left out", "nets": list(settings.nets),
                     "max_patches": settings.max_patches, "ceiling_seed": CEILING_SEED, "threads": settings.threads,
                     "texture_scale": settings.texture_scale},
        "model": {k: v for k, v in main.items() if k != "outputs"},
        "baseline": {k: v for k, v in baseline.items() if k != "outputs"} if baseline else None,
        "references": references.to_json() if references is not None else {},
        "all_pass": all(all(e["passes"].values()) for e in main["styles"].values()),
        "environment": {"onnxruntime": onnxruntime.__version__, "python": platform.python_version(),
                        "machine": platform.machine(), "cpus": os.cpu_count()},
    }
    rows = table_rows({"model": main, "baseline": baseline}, settings.nets)
    print(format_table(rows))
    print(f"model: {main['model']} (trained with: {main['perception'] or 'unknown'})"
          + (f"\nbaseline: {baseline['model']} (trained with: {baseline['perception'] or 'unknown'})" if baseline else ""))
    if settings.nets:
        print("* = the network the model was trained with; patch s2o (norm): 0 = the unstylized photo, "
              f"1 = the built-in style at seed {CEILING_SEED}")
    print("all targets met" if result["all_pass"] else "a target was missed (FAIL above)")
    json_out, sheet = output_paths(args)
    if json_out:
        write_atomic(json_out, json.dumps(result, indent=2) + "\n")
        print(f"wrote {json_out}")
    if sheet:
        write_contact_sheet(sheet_rows(photos, {"model": main, "baseline": baseline}), sheet, cell_height=200)
        print(f"wrote {sheet} (photos x styles" + (", baseline rows below the model's)" if baseline else ")"))
    result["table_markdown"] = markdown_table(rows)
    return result


def parse_nets(text: str) -> tuple[str, ...]:
    if text.strip() in ("", "none"):
        return ()
    nets = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in nets if n not in ("random", "effnet")]
    if bad:
        raise BadInputError(f"--nets takes random, effnet (comma-separated) or none, got {', '.join(bad)}")
    return nets


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stylize_rt.benchmarks.quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="ONNX file, model folder or embedded model name (default: the embedded default)")
    p.add_argument("--baseline", help="another model, compared on every style both share by name "
                   "(e.g. today's shipped mosaic: benchmarks/reference/mosaic_v1.onnx)")
    p.add_argument("--perception", choices=("random", "effnet"),
                   help="the network the model was trained with, where its folder has no card saying so")
    p.add_argument("--baseline-perception", choices=("random", "effnet"), help="the same for --baseline")
    p.add_argument("--frames", type=int, default=16, help="frames per photo for the flicker numbers (default 16)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime and torch intra-op threads (0 = their default)")
    p.add_argument("--nets", default="random,effnet",
                   help="networks for the style measures: random, effnet, both comma-separated (default) or none")
    p.add_argument("--max-patches", type=int, default=6000, help="3x3 feature patches per side in the patch measure")
    p.add_argument("--texture-scale", type=float, default=1.0,
                   help="measure the models as `stylize-rt run --texture-scale S` runs them (default 1)")
    p.add_argument("--out-dir", help="run directory for quality.json and heldout.png (default: a new "
                   "runs/quality-<UTC time>/ under the working directory)")
    p.add_argument("--json-out", help="write the numbers here instead ('' to skip)")
    p.add_argument("--sheet", help="write the contact sheet PNG here instead ('' to skip)")
    return p


def output_paths(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    """(json, sheet) paths: the ones named, else files in the run directory; never a published file
    unless it was named."""
    run_dir = Path(args.out_dir) if args.out_dir else Path("runs") / time.strftime("quality-%Y%m%dT%H%M%SZ", time.gmtime())
    json_out = run_dir / "quality.json" if args.json_out is None else (Path(args.json_out) if args.json_out else None)
    sheet = run_dir / "heldout.png" if args.sheet is None else (Path(args.sheet) if args.sheet else None)
    return json_out, sheet


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.frames < 2:
        print("error: --frames must be at least 2", file=sys.stderr)
        return 2
    if args.max_patches < 16:
        print("error: --max-patches must be at least 16", file=sys.stderr)
        return 2

    def job() -> int:
        return 0 if run(args)["all_pass"] else EXIT_TARGET_MISSED

    return run_reporting_errors(job)


if __name__ == "__main__":
    sys.exit(main())
