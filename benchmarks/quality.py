"""Quality numbers of a style generator, measured through the runtime path (no torch).

``python -m stylize_rt.benchmarks.quality [--model ONNX] [--baseline ONNX]``

On scikit-learn's bundled photos (china, flower), which training never sees:

1. content kept: Pearson correlation of the Sobel edge-magnitude maps of input and
   output (1.0 = same edges; a model that paints over the photo drops towards 0).
   Target >= 0.3.
2. flicker: a static scene (each held-out photo) with fresh Gaussian noise of sigma
   2/255 per frame, as a camera sensor gives; ratio of the mean absolute frame-to-frame
   change of the output to that of the input. 1.0 = the model passes noise through
   unamplified. Target <= 1.5 for a model trained with the stability loss; the
   ``--baseline`` model (same recipe without it) is measured beside it.

Prints a table and writes ``quality.json`` and an input | output contact sheet of the held-out
photos (``heldout.png``) into a new run directory, ``runs/quality-<UTC time>/`` (``--out-dir``).
The repository's published files are written only when named:
``--json-out benchmarks/results/quality.json --sheet docs/images/mosaic_heldout.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime

from stylize_rt.benchmarks.environment import REPO_ROOT
from stylize_rt.errors import run_reporting_errors
from stylize_rt.fileio import write_atomic
from stylize_rt.models import DEFAULT_GENERATOR, get_model
from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend
from stylize_rt.runtime.stylizer import Stylizer
from stylize_rt.training.data import held_out_photos
from stylize_rt.training.preview import write_contact_sheet

EDGE_TARGET = 0.3
FLICKER_TARGET = 1.5
NOISE_SIGMA = 2.0 / 255.0


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


def _stylizer(model: Path, threads: int):
    return Stylizer(OnnxRuntimeBackend(model, threads=threads))


def measure(model: Path, photos: dict[str, np.ndarray], frames: int, threads: int = 0, seed: int = 0) -> dict:
    """Edge correlation and flicker ratio of one ONNX model on each photo."""
    stylizer = _stylizer(model, threads)
    per_photo, outputs = {}, {}
    t0 = time.perf_counter()
    try:
        for i, (name, photo) in enumerate(photos.items()):
            out = stylizer(photo)
            outputs[name] = out
            seq = noisy_frames(photo, frames, seed=seed + i)
            styl = np.stack([stylizer(f) for f in seq])
            per_photo[name] = {
                "edge_correlation": round(edge_correlation(photo, out), 4),
                "flicker_ratio": round(flicker_ratio(seq, styl), 4),
                "input_change": round(mean_frame_change(seq), 4),
                "output_change": round(mean_frame_change(styl), 4),
                "size": [int(photo.shape[1]), int(photo.shape[0])],
            }
    finally:
        stylizer.close()
    summary = {
        "model": _display_path(model),
        "edge_correlation_mean": round(float(np.mean([p["edge_correlation"] for p in per_photo.values()])), 4),
        "edge_correlation_min": round(float(np.min([p["edge_correlation"] for p in per_photo.values()])), 4),
        "flicker_ratio_mean": round(float(np.mean([p["flicker_ratio"] for p in per_photo.values()])), 4),
        "flicker_ratio_max": round(float(np.max([p["flicker_ratio"] for p in per_photo.values()])), 4),
        "per_photo": per_photo,
        "wall_seconds": round(time.perf_counter() - t0, 2),
    }
    return {"summary": summary, "outputs": outputs}


def _display_path(path: Path) -> str:
    """Repository-relative when inside the repository, so results files are portable."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _write_json(data: dict, path: Path) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def _default_model() -> Path:
    return get_model(DEFAULT_GENERATOR).path("onnx")


def run(args: argparse.Namespace) -> dict:
    model = Path(args.model) if args.model else _default_model()
    photos = held_out_photos()
    main = measure(model, photos, args.frames, args.threads)
    base = measure(Path(args.baseline), photos, args.frames, args.threads) if args.baseline else None

    s = main["summary"]
    result = {
        "what": "held-out photos (scikit-learn china, flower); never used in training",
        "targets": {"edge_correlation_min": EDGE_TARGET, "flicker_ratio_max": FLICKER_TARGET},
        "noise_sigma": "2/255",
        "frames": args.frames,
        "model": s,
        "baseline_without_stability": base["summary"] if base else None,
        "passes": {
            "edge_correlation": s["edge_correlation_min"] >= EDGE_TARGET,
            "flicker": s["flicker_ratio_max"] <= FLICKER_TARGET,
        },
        "environment": {"onnxruntime": onnxruntime.__version__, "python": platform.python_version(),
                        "machine": platform.machine(), "cpus": os.cpu_count()},
    }
    rows = [("", "edge corr (>= 0.3)", "flicker (<= 1.5)")]
    for name in photos:
        p = s["per_photo"][name]
        rows.append((f"{name}: model", f"{p['edge_correlation']:.3f}", f"{p['flicker_ratio']:.3f}"))
        if base:
            b = base["summary"]["per_photo"][name]
            rows.append((f"{name}: no stability", f"{b['edge_correlation']:.3f}", f"{b['flicker_ratio']:.3f}"))
    for r in rows:
        print(f"{r[0]:<24} {r[1]:>20} {r[2]:>18}")
    print(f"model: {model}" + (f"\nbaseline (no stability loss): {args.baseline}" if base else ""))
    print("passes: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in result["passes"].items()))

    json_out, sheet = output_paths(args)
    if json_out:
        _write_json(result, json_out)
        print(f"wrote {json_out}")
    if sheet:
        sheet_rows = []
        for name, photo in photos.items():
            row = [photo, main["outputs"][name]]
            if base:
                row.append(base["outputs"][name])
            sheet_rows.append(row)
        write_contact_sheet(sheet_rows, sheet, cell_height=240)
        print(f"wrote {sheet}" + (" (input | model | no-stability baseline)" if base else " (input | output)"))
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stylize_rt.benchmarks.quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="generator ONNX (default: the embedded default model)")
    p.add_argument("--baseline", help="the same recipe trained without the stability loss, for the flicker comparison")
    p.add_argument("--frames", type=int, default=16, help="noisy frames per photo for the flicker number (default 16)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0 = its default)")
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
    def job() -> int:
        run(args)
        return 0

    return run_reporting_errors(job)


if __name__ == "__main__":
    sys.exit(main())
