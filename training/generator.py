"""Feed-forward style generator in the family of Johnson et al. 2016.

Strided-conv encoder, residual blocks at 1/4 resolution, upsampling decoder, instance
norm. Any H x W >= 16 (odd sizes too) comes back at the same size: stride-2 convs round
up (ceil), and the decoder crops each 2x upsample to the size of the matching encoder
stage. That crop is part of the model, so the exported ONNX graph behaves the same.
Upsampling is nearest-neighbour + conv (fewer checkerboard artifacts than transposed
convs, and a Resize mode that TensorRT and ONNX Runtime both support).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

MIN_SIZE = 16


@dataclass
class GeneratorConfig:
    """Width and depth of the generator; saved beside every checkpoint as JSON.

    The defaults are the live-CPU size (about 1.7 GMAC at 640x360). Johnson et al.'s
    original is ``channels=(32, 64, 128), res_blocks=5, stem_kernel=9`` (about 35 GMAC).
    """

    channels: tuple[int, int, int] = (8, 16, 32)
    res_blocks: int = 3
    stem_kernel: int = 5
    norm_affine: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GeneratorConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown generator config keys: {sorted(unknown)}")
        values = dict(data)
        if "channels" in values:
            values["channels"] = tuple(int(c) for c in values["channels"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["channels"] = list(self.channels)
        return out


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Reflection-padded conv: no zero border that the norm statistics would see."""
    return nn.Sequential(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride))


class ConvNormReLU(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, affine: bool = True) -> None:
        super().__init__()
        self.conv = _conv(c_in, c_out, kernel, stride)
        self.norm = nn.InstanceNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, affine: bool = True) -> None:
        super().__init__()
        self.conv1 = _conv(channels, channels, 3)
        self.norm1 = nn.InstanceNorm2d(channels, affine=affine)
        self.conv2 = _conv(channels, channels, 3)
        self.norm2 = nn.InstanceNorm2d(channels, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        return x + self.norm2(self.conv2(y))


class UpsampleConv(nn.Module):
    """2x nearest upsample cropped to ``like``'s size, then conv + norm + ReLU."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        self.block = ConvNormReLU(c_in, c_out, 3, 1, affine)

    def forward(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = x[:, :, : like.shape[2], : like.shape[3]]
        return self.block(x)


class Generator(nn.Module):
    """float32 NCHW RGB in [0, 1] -> float32 NCHW RGB in [0, 1], same size as the input."""

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config or GeneratorConfig()
        c1, c2, c3 = self.config.channels
        k, aff = self.config.stem_kernel, self.config.norm_affine
        self.stem = ConvNormReLU(3, c1, k, 1, aff)
        self.down1 = ConvNormReLU(c1, c2, 3, 2, aff)
        self.down2 = ConvNormReLU(c2, c3, 3, 2, aff)
        self.res = nn.Sequential(*[ResidualBlock(c3, aff) for _ in range(self.config.res_blocks)])
        self.up1 = UpsampleConv(c3, c2, aff)
        self.up2 = UpsampleConv(c2, c1, aff)
        self.head = _conv(c1, 3, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = self.stem(x)
        s1 = self.down1(s0)
        s2 = self.down2(s1)
        y = self.res(s2)
        y = self.up1(y, s1)
        y = self.up2(y, s0)
        return torch.sigmoid(self.head(y))


class UInt8NHWC(nn.Module):
    """Wraps a generator for uint8 NHWC RGB in and out (camera frames as they come, 1 byte/channel)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.to(torch.float32).permute(0, 3, 1, 2) / 255.0  # cast first: TensorRT lets a uint8 input feed only a Cast
        y = self.generator(x)
        y = torch.round(torch.clamp(y, 0.0, 1.0) * 255.0)
        return y.permute(0, 2, 3, 1).to(torch.uint8)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def estimate_macs(config: GeneratorConfig, height: int, width: int) -> int:
    """Multiply-accumulates of the convolutions for one H x W frame (norms and adds excluded).

    Used by the benchmarks to turn latency into achieved GFLOP/s.
    """
    c1, c2, c3 = config.channels
    k = config.stem_kernel
    h1, w1 = -(-height // 2), -(-width // 2)
    h2, w2 = -(-h1 // 2), -(-w1 // 2)
    full, half, quarter = height * width, h1 * w1, h2 * w2
    macs = full * k * k * 3 * c1  # stem
    macs += half * 9 * c1 * c2 + quarter * 9 * c2 * c3  # encoder
    macs += config.res_blocks * 2 * quarter * 9 * c3 * c3  # residual blocks
    macs += half * 9 * c3 * c2 + full * 9 * c2 * c1  # decoder
    macs += full * k * k * c1 * 3  # head
    return macs


def check_input_size(height: int, width: int) -> None:
    if height < MIN_SIZE or width < MIN_SIZE:
        raise ValueError(f"generator input must be at least {MIN_SIZE}x{MIN_SIZE}, got {width}x{height}")


__all__ = [
    "Generator",
    "GeneratorConfig",
    "UInt8NHWC",
    "count_parameters",
    "estimate_macs",
    "check_input_size",
    "MIN_SIZE",
]
