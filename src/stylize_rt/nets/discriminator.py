"""PatchGAN discriminator: one real/fake logit per receptive-field patch (Isola et al. 2017).

A few strided 4x4 convs with spectral norm (Miyato et al. 2018) bound D's Lipschitz
constant, which keeps the game stable with small batches and no extra penalty terms.
It judges local texture only, which is what a style is; global layout stays the
content loss's job. Trained against random crops of the style image(s).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


@dataclass
class DiscriminatorConfig:
    """``width`` channels in the first layer, doubling per strided layer (``layers`` of them)."""

    width: int = 32
    layers: int = 3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DiscriminatorConfig":
        return cls(**{k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__})


class PatchDiscriminator(nn.Module):
    """RGB [0, 1] NCHW -> N x 1 x h x w patch logits (receptive field ~ 22 px for 3 layers)."""

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiscriminatorConfig()
        blocks: list[nn.Module] = []
        c_in, c_out = 3, self.config.width
        for _ in range(self.config.layers):
            blocks += [spectral_norm(nn.Conv2d(c_in, c_out, 4, 2, 1)), nn.LeakyReLU(0.2)]
            c_in, c_out = c_out, min(c_out * 2, 256)
        blocks.append(spectral_norm(nn.Conv2d(c_in, 1, 3, 1, 1)))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2.0 - 1.0)


__all__ = ["PatchDiscriminator", "DiscriminatorConfig"]
