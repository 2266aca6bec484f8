"""Feed-forward style generator in the family of Johnson et al. 2016.

Strided-conv encoder, residual blocks, upsampling decoder, instance norm. Any H x W >= 16
(odd sizes too) comes back at the same size; the size handling is part of the model, so
the exported ONNX graph behaves the same. Upsampling is nearest-neighbour + conv (fewer
checkerboard artifacts than transposed convs, and a Resize mode that TensorRT and ONNX
Runtime both support).

Two stems (``GeneratorConfig.stem``):

- ``"conv"``: Johnson's layout. A full-resolution conv stem and head, residual blocks at
  1/4 resolution; stride-2 convs round up and the decoder crops each upsample.
- ``"unshuffle"`` (the default): the image is edge-padded to a multiple of 8,
  space-to-depth'ed 2x (3 -> 12 channels), and every conv runs at 1/2 resolution or
  below (residual blocks at 1/8); the head predicts 12 channels that depth-to-space back
  into RGB. On CPUs a full-resolution layer with 3-16 channels costs far more than its
  multiply-adds (padding, layout reorders, normalization over every pixel). The default
  (16,32,32) runs 2.2-2.8x faster than the old (8,16,32) conv-stem default at 640x360
  with ONNX Runtime (docs/MODELS.md, "Speed").

Several styles in one network (``GeneratorConfig.n_styles > 1``): conditional instance
normalisation (Dumoulin et al. 2017). Every convolution is shared; every norm layer is an
instance norm without affine followed by a per-style scale and shift, ``gamma = style @ G``,
``beta = style @ B`` with ``G, B`` of shape (n_styles, C). ``style`` is a float (N, n_styles)
input: one-hot picks a style, convex weights blend the styles (the paper's interpolation).
``n_styles == 1`` is the plain affine instance-norm layout, so single-style checkpoints load
unchanged. :class:`MultiStyleUInt8NHWC` adds the strength and colour-preservation controls
that the exported multi-style graph computes (the arithmetic of
``stylize_rt.runtime.style_controls.apply_controls``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

MIN_SIZE = 16
STEMS = ("unshuffle", "conv")
PADDINGS = ("zeros", "reflect")
LEGACY_LAYOUT = {"stem": "conv", "padding": "reflect"}


@dataclass
class GeneratorConfig:
    """Width and depth of the generator; saved beside every checkpoint as JSON.

    The defaults are the live-CPU size (see ``estimate_macs``). Johnson et al.'s original
    is ``channels=(32, 64, 128), res_blocks=5, stem_kernel=9, stem="conv",
    padding="reflect"`` (about 35 GMAC at 640x360). ``channels`` are the encoder widths from
    the input side; ``stem_kernel`` is the first and last conv's kernel; ``padding`` is how
    every conv sees past the border (``reflect``: no zero border in the norm statistics;
    ``zeros``: padding folded into the conv, no separate pad pass).
    """

    channels: tuple[int, int, int] = (16, 32, 32)
    res_blocks: int = 3
    stem_kernel: int = 3
    norm_affine: bool = True
    stem: str = "unshuffle"
    padding: str = "reflect"
    n_styles: int = 1  # > 1: conditional instance norm, one scale/shift row per style

    def __post_init__(self) -> None:
        if int(self.n_styles) < 1:
            raise ValueError(f"n_styles must be >= 1, got {self.n_styles}")
        if self.stem not in STEMS:
            raise ValueError(f"unknown generator stem {self.stem!r}; choose from {', '.join(STEMS)}")
        if self.padding not in PADDINGS:
            raise ValueError(f"unknown generator padding {self.padding!r}; choose from {', '.join(PADDINGS)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GeneratorConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown generator config keys: {sorted(unknown)}")
        values = dict(data)
        if "stem" not in values:  # cards written before the stem choice existed describe the conv stem
            values.update(LEGACY_LAYOUT)
        if "channels" in values:
            values["channels"] = tuple(int(c) for c in values["channels"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["channels"] = list(self.channels)
        return out

    @property
    def grid_px(self) -> int:
        """The sampling grid in px: how far a frame must move for the output to move exactly with it
        (two stride-2 convs, after the unshuffle stem's space-to-depth 2x)."""
        return 4 * (2 if self.stem == "unshuffle" else 1)


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: str = "reflect") -> nn.Module:
    """``reflect``: a reflection pad first (no zero border for the norm statistics to see);
    ``zeros``: the conv pads itself, which backends fuse (no extra pass over the tensor)."""
    if padding == "zeros":
        return nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2)
    return nn.Sequential(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride))


class CondInstanceNorm(nn.Module):
    """Instance norm with the style's scale and shift (see the module docstring).

    ``scale``/``shift`` are (n_styles, C): one row of ``2 * C`` parameters per style.

    Instance norm's statistics are per (sample, channel), so an (N, C, H, W) batch viewed as
    (1, N * C, H, W) normalizes the same; in that view each sample's own scale and shift are
    ordinary per-channel affine parameters. The exported graph is then one
    ``InstanceNormalization`` per layer with computed scale/B between two reshapes (views,
    no copy), the op a plain instance norm exports to, instead of a normalization followed
    by a full-size multiply and add (docs/BENCHMARKS.md, "What the style inputs cost").
    TensorRT's native instance-norm layer (the 10.x parser default, the only one in 11.x)
    takes computed scale/B; the legacy plugin does not.
    ``eps`` is ``nn.InstanceNorm2d``'s default (the checkpoints were trained with it)."""

    eps = 1e-5

    def __init__(self, channels: int, n_styles: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(n_styles, channels))
        self.shift = nn.Parameter(torch.zeros(n_styles, channels))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        gamma = (style @ self.scale).reshape(-1)
        beta = (style @ self.shift).reshape(-1)
        y = F.instance_norm(x.reshape(1, n * c, h, w), weight=gamma, bias=beta, eps=self.eps)
        return y.reshape_as(x)


def _norm(channels: int, affine: bool, n_styles: int) -> nn.Module:
    return CondInstanceNorm(channels, n_styles) if n_styles > 1 else nn.InstanceNorm2d(channels, affine=affine)


def _apply_norm(norm: nn.Module, x: torch.Tensor, style: torch.Tensor | None) -> torch.Tensor:
    return norm(x, style) if isinstance(norm, CondInstanceNorm) else norm(x)


class ConvNormReLU(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, affine: bool = True,
                 padding: str = "reflect", n_styles: int = 1) -> None:
        super().__init__()
        self.conv = _conv(c_in, c_out, kernel, stride, padding)
        self.norm = _norm(c_out, affine, n_styles)

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        return F.relu(_apply_norm(self.norm, self.conv(x), style))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, affine: bool = True, padding: str = "reflect", n_styles: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv(channels, channels, 3, 1, padding)
        self.norm1 = _norm(channels, affine, n_styles)
        self.conv2 = _conv(channels, channels, 3, 1, padding)
        self.norm2 = _norm(channels, affine, n_styles)

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        y = F.relu(_apply_norm(self.norm1, self.conv1(x), style))
        return x + _apply_norm(self.norm2, self.conv2(y), style)


class UpsampleConv(nn.Module):
    """2x nearest upsample (cropped to ``like``'s size when given), then conv + norm + ReLU."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True, padding: str = "reflect", n_styles: int = 1) -> None:
        super().__init__()
        self.block = ConvNormReLU(c_in, c_out, 3, 1, affine, padding, n_styles)

    def forward(self, x: torch.Tensor, like: torch.Tensor | None = None,
                style: torch.Tensor | None = None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if like is not None:
            x = x[:, :, : like.shape[2], : like.shape[3]]
        return self.block(x, style)


# The unshuffle stem pads to a multiple of this: space-to-depth 2x, then two stride-2 convs.
UNSHUFFLE_MULTIPLE = 8


class Generator(nn.Module):
    """float32 NCHW RGB in [0, 1] -> float32 NCHW RGB in [0, 1], same size as the input.

    ``forward_nhwc`` is the same function on NHWC tensors; the unshuffle stem folds the
    NHWC <-> NCHW change into its space-to-depth and depth-to-space, so the uint8-NHWC
    export needs no separate layout transpose.

    A multi-style generator (``config.n_styles > 1``) also takes ``style`` (N, n_styles);
    without it, it draws its first style.
    """

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config or GeneratorConfig()
        c1, c2, c3 = self.config.channels
        k, aff, pad, n = self.config.stem_kernel, self.config.norm_affine, self.config.padding, self.config.n_styles
        rgb = 3 if self.config.stem == "conv" else 12  # space-to-depth 2x: 3 channels -> 12
        self.stem = ConvNormReLU(rgb, c1, k, 1, aff, pad, n)
        self.down1 = ConvNormReLU(c1, c2, 3, 2, aff, pad, n)
        self.down2 = ConvNormReLU(c2, c3, 3, 2, aff, pad, n)
        # a ModuleList has the same state-dict keys (res.0. ...) as the Sequential it replaced
        self.res = nn.ModuleList(ResidualBlock(c3, aff, pad, n) for _ in range(self.config.res_blocks))
        self.up1 = UpsampleConv(c3, c2, aff, pad, n)
        self.up2 = UpsampleConv(c2, c1, aff, pad, n)
        self.head = _conv(c1, rgb, k, 1, pad)

    @property
    def n_styles(self) -> int:
        return self.config.n_styles

    def _style(self, x: torch.Tensor, style: torch.Tensor | None) -> torch.Tensor | None:
        if self.config.n_styles == 1:
            return None
        if style is None:
            style = torch.zeros(x.shape[0], self.config.n_styles, dtype=x.dtype, device=x.device)
            style[:, 0] = 1.0
        elif style.shape[-1] != self.config.n_styles:
            raise ValueError(f"style has {style.shape[-1]} weights, the generator has {self.config.n_styles} styles")
        # one row for the whole batch stays allowed (each norm takes one row per frame)
        return style.to(x.dtype).expand(x.shape[0], -1)

    def _body(self, x: torch.Tensor, crop: bool, style: torch.Tensor | None) -> torch.Tensor:
        s0 = self.stem(x, style)
        s1 = self.down1(s0, style)
        y = self.down2(s1, style)
        for block in self.res:
            y = block(y, style)
        y = self.up1(y, s1 if crop else None, style)
        y = self.up2(y, s0 if crop else None, style)
        return torch.sigmoid(self.head(y))

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        if self.config.stem == "conv":
            return self._body(x, True, self._style(x, style))
        return self.forward_nhwc(x.permute(0, 2, 3, 1), style).permute(0, 3, 1, 2)

    def forward_nhwc(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        if self.config.stem == "conv":
            return self.forward(x.permute(0, 3, 1, 2), style).permute(0, 2, 3, 1)
        h, w = x.shape[1], x.shape[2]
        y = self._body(_space_to_depth(_edge_pad(x)), False, self._style(x, style))
        return _depth_to_space(y)[:, :h, :w, :]

    def norm_parameters(self) -> list[nn.Parameter]:
        """The per-style scale/shift tables (multi-style generators; empty otherwise)."""
        return [p for m in self.modules() if isinstance(m, CondInstanceNorm) for p in (m.scale, m.shift)]

    def add_style(self) -> int:
        """Append one style row to every conditional norm, initialized to the mean of the others;
        returns the new style's index. Every existing parameter keeps its value."""
        if self.config.n_styles < 2:
            raise ValueError("only a multi-style generator (n_styles >= 2) can take another style")
        for m in self.modules():
            if isinstance(m, CondInstanceNorm):
                for name in ("scale", "shift"):
                    old = getattr(m, name).data
                    setattr(m, name, nn.Parameter(torch.cat([old, old.mean(0, keepdim=True)], 0)))
        self.config = GeneratorConfig.from_dict({**self.config.to_dict(), "n_styles": self.config.n_styles + 1})
        return self.config.n_styles - 1


def _edge_pad(x: torch.Tensor) -> torch.Tensor:
    """Edge-pad NHWC H and W at the bottom/right up to a multiple of ``UNSHUFFLE_MULTIPLE``.

    Edge (replicate) rather than zeros, so odd-sized frames get no dark band in the norm
    statistics; the pad is cropped off the output. The pad goes through a 5-D view
    (N, 1, H, W, C) because replicate padding applies to the trailing dims: H and W are
    padded without a transpose.
    """
    m = UNSHUFFLE_MULTIPLE
    h, w = x.shape[1], x.shape[2]
    ph, pw = (m - h % m) % m, (m - w % m) % m
    return F.pad(x.unsqueeze(1), (0, 0, 0, pw, 0, ph), mode="replicate").flatten(0, 1)


def _space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """NHWC (N, H, W, C) -> NCHW (N, 4C, H/2, W/2), channels ordered (dy, dx, c).

    Two moves that ONNX Runtime does fast: swapping W/2 with dy keeps (dx, c) runs contiguous,
    then an ordinary NHWC -> NCHW transpose. (One 6-D transpose into F.pixel_unshuffle's
    (c, dy, dx) order, or a DepthToSpace op, took 1.5-2x as long in ONNX Runtime.)
    """
    n, hh, wh, c = x.shape[0], x.shape[1] // 2, x.shape[2] // 2, x.shape[3]
    y = x.reshape(n, hh, 2, wh, 2 * c).transpose(2, 3)
    return y.reshape(n, hh, wh, 4 * c).permute(0, 3, 1, 2)


def _depth_to_space(y: torch.Tensor) -> torch.Tensor:
    """The inverse of ``_space_to_depth``: NCHW (N, 4C, h, w) -> NHWC (N, 2h, 2w, C)."""
    n, c4, hh, wh = y.shape
    y = y.permute(0, 2, 3, 1).reshape(n, hh, wh, 2, c4 // 2).transpose(2, 3)
    return y.reshape(n, hh * 2, wh * 2, c4 // 4)


class UInt8NHWC(nn.Module):
    """Wraps a generator for uint8 NHWC RGB in and out (camera frames as they come, 1 byte/channel)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.to(torch.float32) / 255.0  # cast first: TensorRT lets a uint8 input feed only a Cast
        y = self.generator.forward_nhwc(x)
        return torch.round(torch.clamp(y, 0.0, 1.0) * 255.0).to(torch.uint8)


# BT.601 luma weights: stylize_rt.runtime.style_controls' YCbCr matrix's first row. Replacing a
# frame's luma by the stylized one's and keeping its chroma is, in RGB, adding the luma difference
# to every channel (the inverse matrix's luma column is all ones).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


class MultiStyleUInt8NHWC(nn.Module):
    """A multi-style generator with the graph contract's controls, uint8 NHWC in and out.

    ``forward(frames, style, strength, preserve_color)``: ``style`` (N, n_styles) float weights,
    ``strength`` (N,) in 0..1, ``preserve_color`` (N,) 0 or 1. Where ``preserve_color`` is 1 the
    stylized luma replaces the input's (chroma kept); then ``input + strength * (result - input)``
    is rounded and clipped once: the arithmetic of ``apply_controls`` on the host (which rounds
    the stylized frame first, so the two agree within one level), and strength 0 gives the input
    exactly.

    Both controls are one per-frame 3x3 matrix on the difference ``stylized - input``:
    ``255 * strength * (I, or every channel taking the difference's luma)``, so the full-resolution
    work is a subtraction, one batched matrix product and an addition (each full-resolution pass
    costs about as much as a small conv layer on a CPU).
    """

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        w = torch.tensor(LUMA_WEIGHTS, dtype=torch.float32)
        self.register_buffer("identity", torch.eye(3), persistent=False)
        self.register_buffer("to_luma", w[:, None].expand(3, 3).contiguous(), persistent=False)  # [j, c] = w_j

    def forward(self, frames: torch.Tensor, style: torch.Tensor, strength: torch.Tensor,
                preserve_color: torch.Tensor) -> torch.Tensor:
        x = frames.to(torch.float32)  # cast first: TensorRT lets a uint8 input feed only a Cast
        x01 = x / 255.0
        diff = self.generator.forward_nhwc(x01, style) - x01  # in [0, 1] units; the output is a sigmoid
        keep = preserve_color.reshape(-1, 1, 1)
        mix = (255.0 * strength).reshape(-1, 1, 1) * (self.identity + keep * (self.to_luma - self.identity))
        n = x.shape[0]
        moved = torch.matmul(diff.reshape(n, -1, 3), mix).reshape(x.shape)
        return torch.round(torch.clamp(x + moved, 0.0, 255.0)).to(torch.uint8)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def estimate_macs(config: GeneratorConfig, height: int, width: int) -> int:
    """Multiply-accumulates of the convolutions for one H x W frame (norms and adds excluded).

    Used by the benchmarks to turn latency into achieved GFLOP/s.
    """
    c1, c2, c3 = config.channels
    k = config.stem_kernel
    if config.stem == "conv":
        rgb = 3
        h0, w0 = height, width
    else:  # padded to a multiple of 8, then space-to-depth 2x
        rgb, m = 12, UNSHUFFLE_MULTIPLE
        h0, w0 = -(-height // m) * m // 2, -(-width // m) * m // 2
    h1, w1 = -(-h0 // 2), -(-w0 // 2)
    h2, w2 = -(-h1 // 2), -(-w1 // 2)
    top, half, quarter = h0 * w0, h1 * w1, h2 * w2
    macs = top * k * k * rgb * c1  # stem
    macs += half * 9 * c1 * c2 + quarter * 9 * c2 * c3  # encoder
    macs += config.res_blocks * 2 * quarter * 9 * c3 * c3  # residual blocks
    macs += half * 9 * c3 * c2 + top * 9 * c2 * c1  # decoder
    macs += top * k * k * c1 * rgb  # head
    return macs


def check_input_size(height: int, width: int) -> None:
    if height < MIN_SIZE or width < MIN_SIZE:
        raise ValueError(f"generator input must be at least {MIN_SIZE}x{MIN_SIZE}, got {width}x{height}")


__all__ = [
    "Generator",
    "GeneratorConfig",
    "UInt8NHWC",
    "MultiStyleUInt8NHWC",
    "CondInstanceNorm",
    "LUMA_WEIGHTS",
    "count_parameters",
    "estimate_macs",
    "check_input_size",
    "MIN_SIZE",
    "STEMS",
    "PADDINGS",
]
