"""Adversarial fine-tuning of the captioner: a conditional caption GAN trained by policy gradient.

Words are discrete, so the discriminator's judgement cannot be back-propagated into the
generator. Instead (SeqGAN / "Towards Diverse and Natural Image Descriptions via a
Conditional GAN" style):

* the discriminator sees (image, caption) and learns real = human reference for this
  image, fake = a caption sampled from the captioner *or* a real caption of another
  image (so it judges whether the caption fits the picture, not only whether it is fluent);
* the captioner samples captions, gets the discriminator's probability "real" as the
  reward, and follows REINFORCE with a baseline: the reward of its own greedy caption
  (self-critical) or a moving average. A small MLE term keeps the language from drifting.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from stylize_rt.nets.captioner import Captioner, caption_loss


@dataclass
class GanConfig:
    steps: int = 300  # generator (policy-gradient) updates
    disc_pretrain: int = 300  # discriminator updates before the first generator update
    disc_steps: int = 1  # discriminator updates per generator update
    batch_size: int = 64
    generator_lr: float = 5e-5
    disc_lr: float = 1e-3
    mle_weight: float = 0.5  # weight of the teacher-forced loss mixed into the generator update
    baseline: str = "greedy"  # "greedy" (self-critical) or "mean" (moving average)
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.baseline not in ("greedy", "mean"):
            raise ValueError(f"baseline must be 'greedy' or 'mean', got {self.baseline!r}")


class CaptionDiscriminator(nn.Module):
    """(image, caption tokens) -> logit of "a real caption of this image".

    The image side is a frozen copy of the MLE-trained captioner's encoder (a pretrained
    image network, as conditional caption GANs use): learning to see from scratch inside a
    short adversarial phase leaves the discriminator at chance. The caption is read by a
    GRU whose final state attends over the feature grid, so "the red ball on the left"
    can be checked against where red actually is.
    """

    def __init__(
        self, vocab_size: int, pad_id: int, image_encoder: nn.Module, feature_dim: int,
        embed_dim: int = 64, hidden_dim: int = 128,
    ) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.image_encoder = copy.deepcopy(image_encoder).eval()
        for p in self.image_encoder.parameters():
            p.requires_grad_(False)
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.rnn = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.key = nn.Linear(feature_dim, hidden_dim)
        self.query = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.score = nn.Linear(hidden_dim, 1, bias=False)
        self.value = nn.Linear(feature_dim, hidden_dim)
        self.head = nn.Sequential(
            nn.Linear(hidden_dim * 3, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, 1)
        )

    def train(self, mode: bool = True) -> "CaptionDiscriminator":
        super().train(mode)
        self.image_encoder.eval()  # frozen, always in inference mode
        return self

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """images [B, 3, S, S] in [0, 1]; tokens [B, T] (no <bos>, <eos> then <pad>) -> logits [B]."""
        with torch.no_grad():
            features = self.image_encoder(images)  # [B, L, D]
        out, _ = self.rnn(self.embed(tokens))
        lengths = (tokens != self.pad_id).sum(dim=1).clamp(min=1)
        h = out[torch.arange(tokens.shape[0]), lengths - 1]
        scores = self.score(torch.tanh(self.key(features) + self.query(h).unsqueeze(1))).squeeze(2)
        v = torch.bmm(torch.softmax(scores, dim=1).unsqueeze(1), self.value(features)).squeeze(1)
        return self.head(torch.cat([v, h, v * h], dim=1)).squeeze(1)


def pad_after_eos(tokens: torch.Tensor, eos_id: int, pad_id: int) -> torch.Tensor:
    """Keep the first <eos>, turn everything after it into <pad> (the discriminator's input form)."""
    is_eos = (tokens == eos_id).long()
    after = (is_eos.cumsum(dim=1) - is_eos) > 0
    return tokens.masked_fill(after, pad_id)


def discriminator_step(
    disc: CaptionDiscriminator,
    opt: torch.optim.Optimizer,
    images: torch.Tensor,
    real: torch.Tensor,
    fake: torch.Tensor,
    wrong: torch.Tensor,
) -> dict[str, float]:
    """One update: real captions -> 1; sampled and mismatched captions -> 0."""
    disc.train()
    logit_real = disc(images, real)
    logit_fake = disc(images, fake)
    logit_wrong = disc(images, wrong)
    ones, zeros = torch.ones_like(logit_real), torch.zeros_like(logit_real)
    loss = F.binary_cross_entropy_with_logits(logit_real, ones) + 0.5 * (
        F.binary_cross_entropy_with_logits(logit_fake, zeros) + F.binary_cross_entropy_with_logits(logit_wrong, zeros)
    )
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        acc = ((logit_real > 0).float().mean() + (logit_fake < 0).float().mean() + (logit_wrong < 0).float().mean()) / 3
    return {"d_loss": loss.item(), "d_acc": acc.item()}


def generator_step(
    model: Captioner,
    disc: CaptionDiscriminator,
    opt: torch.optim.Optimizer,
    images: torch.Tensor,
    teacher_tokens: torch.Tensor,
    ids: tuple[int, int, int],
    config: GanConfig,
    running_mean: float | None = None,
) -> dict[str, float]:
    """One REINFORCE update of the captioner with the discriminator's reward and a baseline.

    ``teacher_tokens`` [B, T] (<bos> ... <eos> <pad>...) feed the mixed-in MLE term;
    ``ids`` = (bos, eos, pad).
    """
    bos, eos, pad = ids
    model.train()
    disc.eval()
    tokens, logp = model.sample(images, bos, eos, temperature=config.temperature)
    with torch.no_grad():
        reward = torch.sigmoid(disc(images, pad_after_eos(tokens, eos, pad)))
        if config.baseline == "greedy":
            model.eval()
            greedy = model.greedy(images, bos, eos)
            model.train()
            baseline = torch.sigmoid(disc(images, pad_after_eos(greedy, eos, pad)))
        else:
            baseline = torch.full_like(reward, reward.mean().item() if running_mean is None else running_mean)
    advantage = (reward - baseline).detach()
    pg_loss = -(advantage * logp.sum(dim=1)).mean()
    loss = pg_loss
    if config.mle_weight > 0:
        logits = model(images, teacher_tokens)
        loss = loss + config.mle_weight * caption_loss(logits, teacher_tokens[:, 1:], pad)
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()
    return {"reward": reward.mean().item(), "baseline": baseline.mean().item(), "g_loss": loss.item()}


__all__ = ["GanConfig", "CaptionDiscriminator", "discriminator_step", "generator_step", "pad_after_eos"]
