"""Quality metric functions of benchmarks/quality.py on inputs with known answers, and one real run."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from stylize_rt.benchmarks.quality import (
    edge_correlation,
    flicker_ratio,
    mean_frame_change,
    noisy_frames,
    sobel_magnitude,
)


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:80]
    img = np.stack([xx * 3, yy * 4, ((xx // 8 + yy // 8) % 2) * 200], -1).astype(np.float64)
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


def test_edge_correlation_known_values(photo):
    assert edge_correlation(photo, photo) == pytest.approx(1.0)
    assert edge_correlation(photo, 255 - photo) == pytest.approx(1.0, abs=1e-6)  # same edges, inverted colours
    flat = np.full_like(photo, 128)
    assert np.isnan(edge_correlation(photo, flat))
    noise = np.random.default_rng(1).integers(0, 256, photo.shape, dtype=np.uint8)
    assert abs(edge_correlation(photo, noise)) < 0.2
    assert sobel_magnitude(flat).max() == 0.0


def test_flicker_ratio_known_values(photo):
    frames = noisy_frames(photo, 6, sigma=2 / 255, seed=0)
    assert frames.shape == (6, *photo.shape) and not np.array_equal(frames[0], frames[1])
    # two draws of sigma-2 noise differ by N(0, 2*sqrt(2)): mean |difference| = 2*sqrt(2)*sqrt(2/pi) = 2.26
    assert 1.9 < mean_frame_change(frames) < 2.5
    assert flicker_ratio(frames, frames) == pytest.approx(1.0)
    static = np.repeat(photo[None], 6, axis=0)
    assert flicker_ratio(frames, static) == 0.0
    amplified = np.clip(photo.astype(np.int16)[None] + 3 * (frames.astype(np.int16) - photo), 0, 255).astype(np.uint8)
    assert flicker_ratio(frames, amplified) > 2.5


def test_quality_script_on_a_tiny_model(tiny_onnx, tmp_path):
    out_json, sheet = tmp_path / "q.json", tmp_path / "sheet.png"
    r = subprocess.run(
        [sys.executable, "-m", "stylize_rt.benchmarks.quality", "--model", str(tiny_onnx["uint8_nhwc"]),
         "--baseline", str(tiny_onnx["float32_nchw"]), "--frames", "3", "--json-out", str(out_json),
         "--sheet", str(sheet)],
        capture_output=True, text=True, timeout=240,
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(out_json.read_text())
    assert set(data["model"]["per_photo"]) == {"china", "flower"}
    # the same tiny weights in both layouts: the same numbers up to uint8 rounding
    assert data["model"]["edge_correlation_mean"] == pytest.approx(
        data["baseline_without_stability"]["edge_correlation_mean"], abs=0.02)
    assert sheet.stat().st_size > 1000 and "flicker" in r.stdout


def test_quality_script_missing_model_is_a_clear_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "stylize_rt.benchmarks.quality", "--model", str(tmp_path / "x.onnx"),
                        "--json-out", "", "--sheet", ""], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "model file not found" in r.stderr and "Traceback" not in r.stderr
