"""Generator shape round trips (odd sizes, the uint8 wrapper) and the generated style image."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stylize_rt.training.generator import Generator, GeneratorConfig, UInt8NHWC  # noqa: E402
from stylize_rt.training.style_images import builtin_style, mosaic  # noqa: E402

TINY = GeneratorConfig(channels=(4, 8, 8), res_blocks=1, stem_kernel=3)


@pytest.mark.parametrize("hw", [(241, 317), (16, 16), (17, 33), (64, 48)])
def test_float_generator_keeps_any_size(hw):
    torch.manual_seed(0)
    gen = Generator(TINY).eval()
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        y = gen(x)
    assert y.shape == x.shape
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


@pytest.mark.parametrize("hw", [(241, 317), (16, 16)])
def test_uint8_wrapper_round_trip(hw):
    torch.manual_seed(0)
    gen = Generator(TINY).eval()
    frames = torch.randint(0, 256, (1, *hw, 3), dtype=torch.uint8)
    with torch.no_grad():
        out = UInt8NHWC(gen)(frames)
        ref = gen(frames.permute(0, 3, 1, 2).float() / 255.0)
    assert out.dtype == torch.uint8 and out.shape == frames.shape
    expected = torch.round(ref.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1)
    assert torch.equal(out, expected)


def test_mosaic_is_deterministic_bold_and_seeded():
    a, b, c = mosaic(128, seed=3), mosaic(128, seed=3), mosaic(128, seed=4)
    assert a.shape == (128, 128, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # dark grout lines and saturated tiles are both present
    luma = a.astype(np.float32).mean(axis=2)
    assert (luma < 40).mean() > 0.05
    sat = a.max(axis=2).astype(int) - a.min(axis=2).astype(int)
    assert (sat > 120).mean() > 0.2


def test_unknown_builtin_style_is_a_clear_error():
    from stylize_rt.errors import BadInputError

    with pytest.raises(BadInputError, match="no built-in style"):
        builtin_style("picasso")
