"""Losses of the generator game: content, style (Gram), total variation, stability, adversarial.

All image tensors are NCHW RGB in [0, 1]. Each function returns a scalar tensor; weights
are applied by the trainer so every term can be logged unweighted.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
from torch.nn import functional as F

AdvVariant = Literal["nonsat", "hinge", "none"]


def gram(features: torch.Tensor) -> torch.Tensor:
    """Channel Gram matrix, normalized by C*H*W so that layers and image sizes are comparable."""
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w).float()
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Feature MSE (Johnson et al.'s feature reconstruction loss)."""
    return F.mse_loss(features.float(), target.float())


def style_loss(features: list[torch.Tensor], target_grams: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the squared Frobenius distance between Gram matrices.

    ``target_grams`` are the style images' Grams with a leading batch dim of 1 (or N);
    they broadcast over the batch. Each layer's term is divided by the target Gram's mean
    square so layers with large activations do not drown the others.
    """
    total = features[0].new_zeros((), dtype=torch.float32)
    for f, t in zip(features, target_grams, strict=True):
        g = gram(f)
        total = total + ((g - t) ** 2).mean() / (t**2).mean().clamp_min(1e-12)
    return total


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (anisotropic L1 TV)."""
    return (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean() + (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean()


def stability_losses(
    generator: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    noise_sigma: float,
    max_shift: int,
    rng: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penalize output change under small input noise and under small shifts (video flicker).

    noise: mean |G(x + n) - G(x)|, n ~ N(0, ``noise_sigma``) per pixel.
    shift: mean |G(shift(x)) - shift(G(x))| where a shift by (dy, dx) is a crop that drops the
    first dy rows and dx columns, so no pixels are invented; a margin of ``max_shift`` pixels
    at the borders (where reflection padding makes the outputs differ legitimately) is left out.
    ``y`` is G(x); the targets are detached so the loss pulls the perturbed output towards
    the clean one, not the other way round.
    """
    target = y.detach()
    noise = torch.randn(x.shape, generator=rng, device="cpu").to(x.device, x.dtype) * noise_sigma
    y_noisy = generator((x + noise).clamp(0.0, 1.0))
    noise_term = (y_noisy.float() - target.float()).abs().mean()
    if max_shift <= 0:
        return noise_term, noise_term.new_zeros(())
    dy, dx = (int(v) for v in torch.randint(0, max_shift + 1, (2,), generator=rng))
    if dy == 0 and dx == 0:
        dy = 1
    shifted = generator(x[:, :, dy:, dx:])
    ref = target[:, :, dy:, dx:]
    m = max_shift
    shift_term = (shifted[:, :, m:-m, m:-m].float() - ref[:, :, m:-m, m:-m].float()).abs().mean()
    return noise_term, shift_term


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, variant: AdvVariant) -> torch.Tensor:
    """D's loss on patch logits: real = style patches, fake = generator outputs."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if variant == "nonsat":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if variant == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    raise ValueError(f"no discriminator loss for adversarial variant {variant!r}")


def generator_adv_loss(fake_logits: torch.Tensor, variant: AdvVariant) -> torch.Tensor:
    """G's adversarial loss: non-saturating -log D(G(x)) (softplus form) or hinge's -D(G(x))."""
    fake_logits = fake_logits.float()
    if variant == "nonsat":
        return F.softplus(-fake_logits).mean()
    if variant == "hinge":
        return -fake_logits.mean()
    raise ValueError(f"no generator loss for adversarial variant {variant!r}")


__all__ = [
    "gram", "content_loss", "style_loss", "total_variation", "stability_losses",
    "discriminator_loss", "generator_adv_loss", "AdvVariant",
]
