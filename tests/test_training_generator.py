"""Generator shape round trips (odd sizes, the uint8 wrapper) and the generated style image."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stylize_rt.nets.generator import Generator, GeneratorConfig, UInt8NHWC  # noqa: E402
from stylize_rt.training.style_images import builtin_style, mosaic  # noqa: E402

TINY = GeneratorConfig(channels=(4, 8, 8), res_blocks=1, stem_kernel=3)  # default layout: unshuffle stem
TINY_CONV = GeneratorConfig(channels=(4, 8, 8), res_blocks=1, stem_kernel=3, stem="conv", padding="reflect")
LAYOUTS = pytest.mark.parametrize("config", [TINY, TINY_CONV], ids=["unshuffle", "conv"])


@LAYOUTS
@pytest.mark.parametrize("hw", [(241, 317), (16, 16), (17, 33), (64, 48)])
def test_float_generator_keeps_any_size(hw, config):
    torch.manual_seed(0)
    gen = Generator(config).eval()
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        y = gen(x)
    assert y.shape == x.shape
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


@LAYOUTS
@pytest.mark.parametrize("hw", [(241, 317), (16, 16)])
def test_uint8_wrapper_round_trip(hw, config):
    torch.manual_seed(0)
    gen = Generator(config).eval()
    frames = torch.randint(0, 256, (1, *hw, 3), dtype=torch.uint8)
    with torch.no_grad():
        out = UInt8NHWC(gen)(frames)
        ref = gen(frames.permute(0, 3, 1, 2).float() / 255.0)
    assert out.dtype == torch.uint8 and out.shape == frames.shape
    expected = torch.round(ref.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1)
    assert torch.equal(out, expected)


@LAYOUTS
def test_nhwc_path_is_the_same_function(config):
    """The uint8 export runs forward_nhwc (layout folded into the space-to-depth); training runs forward."""
    torch.manual_seed(1)
    gen = Generator(config).eval()
    x = torch.rand(2, 3, 45, 70)
    with torch.no_grad():
        a = gen(x)
        b = gen.forward_nhwc(x.permute(0, 2, 3, 1).contiguous()).permute(0, 3, 1, 2)
    assert torch.allclose(a, b, atol=1e-6)


def test_space_to_depth_order_and_inverse():
    """Channel (dy*2 + dx)*C + c of the half-resolution tensor is pixel (2i+dy, 2j+dx), channel c."""
    from stylize_rt.nets.generator import _depth_to_space, _space_to_depth

    x = torch.rand(2, 8, 12, 3)
    y = _space_to_depth(x)
    assert y.shape == (2, 12, 4, 6)
    for dy in range(2):
        for dx in range(2):
            for c in range(3):
                assert torch.equal(y[:, (dy * 2 + dx) * 3 + c], x[:, dy::2, dx::2, c])
    assert torch.equal(_depth_to_space(y), x)


def test_unshuffle_stem_has_no_full_resolution_conv():
    """Every conv of the default layout runs at half resolution or below."""
    gen = Generator(TINY).eval()
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o.shape[-2:]))
             for m in gen.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        gen(torch.rand(1, 3, 64, 96))
    for h in hooks:
        h.remove()
    assert seen and max(s[0] for s in seen) == 32 and max(s[1] for s in seen) == 48


def test_odd_sizes_are_edge_padded_not_zero_padded():
    """A flat grey frame of odd size stays flat right up to the bottom/right border."""
    torch.manual_seed(0)
    gen = Generator(TINY).eval()
    with torch.no_grad():
        flat = gen(torch.full((1, 3, 41, 57), 0.5))
        padded = gen(torch.full((1, 3, 48, 64), 0.5))
    # edge padding of a flat frame is the same flat frame: the 41x57 output is the crop of the 48x64 one
    assert torch.allclose(flat, padded[:, :, :41, :57], atol=1e-5)


def test_cards_without_a_stem_load_as_the_conv_layout():
    """Checkpoints written before the stem choice existed keep loading as what they are."""
    legacy = GeneratorConfig.from_dict({"channels": [8, 16, 32], "res_blocks": 3, "stem_kernel": 5, "norm_affine": True})
    assert (legacy.stem, legacy.padding) == ("conv", "reflect")
    assert GeneratorConfig.from_dict(GeneratorConfig().to_dict()) == GeneratorConfig()
    with pytest.raises(ValueError, match="unknown generator stem"):
        GeneratorConfig(stem="pixelshuffle")


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
