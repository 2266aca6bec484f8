"""Losses of the generator game: content, style (Gram and sliced-Wasserstein patches), total
variation, stability, adversarial.

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

    ``target_grams`` are the style images' Grams with a leading batch dim of 1 (or N, one
    target per sample: a multi-style batch); they broadcast over the batch. Each layer's term is divided by the target Gram's mean
    square so layers with large activations do not drown the others.
    """
    total = features[0].new_zeros((), dtype=torch.float32)
    for f, t in zip(features, target_grams, strict=True):
        g = gram(f)
        # per sample: a multi-style batch has one target per sample, each with its own scale
        total = total + (((g - t) ** 2).mean(dim=(1, 2)) / (t**2).mean(dim=(1, 2)).clamp_min(1e-12)).mean()
    return total


class PatchBank:
    """The 3x3 feature patches of one style image at one tap (at most ``max_patches``, a fixed
    random subset), for :func:`swd_loss`."""

    def __init__(self, features: torch.Tensor, max_patches: int = 4096, seed: int = 0, k: int = 3) -> None:
        p = F.unfold(features.float(), k).squeeze(0).T.contiguous()  # (L, C*k*k)
        if p.shape[0] > max_patches:
            g = torch.Generator().manual_seed(seed)
            p = p[torch.randperm(p.shape[0], generator=g)[:max_patches].to(p.device)]
        self.patches = p
        self.k = k


def swd_loss(features: torch.Tensor, banks: list[PatchBank], n_proj: int, rng: torch.Generator) -> torch.Tensor:
    """Sliced Wasserstein distance between the output's and the style's 3x3 feature-patch distributions.

    ``banks[i]`` is sample i's style. ``n_proj`` random unit directions (fresh every step, from
    ``rng``) project both patch sets; the sorted projections (quantiles) are compared (Heitz et
    al. 2021, applied to patches). It matches the whole distribution of local patterns, so it
    cannot collapse onto one style patch the way a nearest-neighbour MRF loss does (the mosaic's
    grout). Each term is normalized by the projected style's mean square.
    """
    k = banks[0].k
    p = F.unfold(features.float(), k).transpose(1, 2)  # (N, L, D)
    _, length, dim = p.shape
    dirs = F.normalize(torch.randn(dim, n_proj, generator=rng).to(p.device), dim=0)
    q = torch.linspace(0, 1, length, device=p.device)
    total = p.new_zeros(())
    quantiles: dict[int, torch.Tensor] = {}
    for i, bank in enumerate(banks):
        if id(bank) not in quantiles:
            with torch.no_grad():
                t = (bank.patches @ dirs).sort(0).values
                quantiles[id(bank)] = t[(q * (t.shape[0] - 1)).round().long()]  # at the output's count
        t = quantiles[id(bank)]
        o = (p[i] @ dirs).sort(0).values
        total = total + ((o - t) ** 2).mean() / t.pow(2).mean().clamp_min(1e-12)
    return total / len(banks)


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
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penalize output change under small input noise and under small shifts (video flicker).

    noise: mean |G(x + n) - G(x)|, n ~ N(0, ``noise_sigma``) per pixel.
    shift: mean |G(shift(x)) - shift(G(x))| where a shift by (dy, dx) is a crop that drops the
    first dy rows and dx columns, so no pixels are invented; a margin of ``max_shift`` pixels
    at the borders (where reflection padding makes the outputs differ legitimately) is left out.
    ``y`` is G(x); the targets are detached so the loss pulls the perturbed output towards
    the clean one, not the other way round. ``weights`` (N,), mean 1: per-sample weights (a
    multi-style run gives styles with fine texture, which flickers more, a larger one).
    """

    def mean(diff: torch.Tensor) -> torch.Tensor:
        if weights is None:
            return diff.mean()
        return (diff.flatten(1).mean(1) * weights.to(diff.device, diff.dtype)).mean()

    target = y.detach()
    noise = torch.randn(x.shape, generator=rng, device="cpu").to(x.device, x.dtype) * noise_sigma
    y_noisy = generator((x + noise).clamp(0.0, 1.0))
    noise_term = mean((y_noisy.float() - target.float()).abs())
    if max_shift <= 0:
        return noise_term, noise_term.new_zeros(())
    dy, dx = (int(v) for v in torch.randint(0, max_shift + 1, (2,), generator=rng))
    if dy == 0 and dx == 0:
        dy = 1
    shifted = generator(x[:, :, dy:, dx:])
    ref = target[:, :, dy:, dx:]
    m = max_shift
    shift_term = mean((shifted[:, :, m:-m, m:-m].float() - ref[:, :, m:-m, m:-m].float()).abs())
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
    "gram", "content_loss", "style_loss", "PatchBank", "swd_loss", "total_variation", "stability_losses",
    "discriminator_loss", "generator_adv_loss", "AdvVariant",
]
