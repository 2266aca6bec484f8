"""The generator-vs-discriminator training loop.

Per step: G stylizes a batch of content crops; G's loss is content + style (Gram) + patch
style (sliced Wasserstein over 3x3 feature patches) on the perception network's features
(EfficientNet-Lite0 by default), + total variation, + stability (noise and shift), +
adversarial (a PatchGAN's verdict on G's output); then D learns to tell random crops of
the style image(s) from G's outputs.

Multi-style runs (``multi_style``): every ``styles`` entry is its own style, the generator
gets conditional instance norm (one scale/shift row per style), every batch sample draws a
random style, and each style has its own PatchGAN (one D cannot know which palette a crop
should have). Adam for both; AMP (fp16 autocast + grad scaling)
only on CUDA.

Reproducible: the initial weights come from ``seed``; each step's crops, flips, noise and
shifts come from generators seeded with ``(seed, step)``. A run resumed from a
checkpoint at step k therefore takes exactly the steps k+1... an uninterrupted run takes.

Run directory::

    RUN/train.jsonl                  one JSON object per logged step (losses, lr, wall time)
    RUN/previews/step_NNNNNNN.png    input | output contact sheets
    RUN/checkpoints/step_NNNNNNN/    resumable checkpoints (see :mod:`.checkpoint`)
    RUN/final/                       the last checkpoint (also resumable)
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stylize_rt.errors import BadInputError, OutputError, StylizeError
from stylize_rt.nets import checkpoint as ckpt_io
from stylize_rt.nets.discriminator import DiscriminatorConfig, PatchDiscriminator
from stylize_rt.nets.generator import LEGACY_LAYOUT, MIN_SIZE, PADDINGS, STEMS, Generator, GeneratorConfig
from stylize_rt.progress import progress_bar
from stylize_rt.training import distributed
from stylize_rt.training.data import ContentImages, load_style, open_content
from stylize_rt.training.losses import (
    PatchBank,
    content_loss,
    discriminator_loss,
    generator_adv_loss,
    gram,
    stability_losses,
    style_loss,
    swd_loss,
    total_variation,
)
from stylize_rt.training.perception import PERCEPTIONS, build_perception
from stylize_rt.training.preview import write_contact_sheet


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in every checkpoint's card."""

    content: str = "builtin"  # a folder of photos, or "builtin" (scikit-image's bundled photos)
    styles: tuple[str, ...] = ("mosaic",)  # image paths or built-in style names
    out: str = "runs/generator"
    steps: int = 2000
    batch: int = 4
    size: int = 256  # square training crop
    channels: tuple[int, int, int] = (16, 32, 32)
    res_blocks: int = 3
    stem_kernel: int = 3
    stem: str = "unshuffle"  # unshuffle | conv (see stylize_rt.nets.generator)
    padding: str = "reflect"  # reflect | zeros
    lr_g: float = 2e-3
    lr_d: float = 2e-4
    content_weight: float = 3.0
    style_weight: float = 3.0
    swd_weight: float = 60.0  # sliced-Wasserstein patch loss on the perception's patch taps; 0 = off
    swd_projections: int = 128  # random directions per step
    swd_max_patches: int = 4096  # style patches kept per style image
    tv_weight: float = 0.5
    adv: str = "nonsat"  # nonsat | hinge | none
    adv_weight: float = 0.05
    adv_start: int = 0  # step at which the adversarial term starts (D trains from the start)
    d_width: int = 32
    d_layers: int = 3
    stability: float = 0.0  # weight of the stability terms; 0 turns them off
    stability_noise: float = 4.0 / 255.0  # sigma of the input noise
    stability_shift: int = 4  # largest shift in pixels
    perception: str = "efficientnet"  # efficientnet | random (no weights) | vgg (with vgg_weights)
    vgg_weights: str | None = None
    vgg_arch: str | None = None  # vgg16 | vgg19; inferred from the file when None
    multi_style: bool = False  # each style is its own (conditional instance norm); else one style from all images
    style_stability: tuple[float, ...] = ()  # multi-style: per-style factor on the stability weight
    train_styles: tuple[int, ...] = ()  # multi-style: the styles batches draw from (empty: all)
    norm_only: bool = False  # train only the per-style norm parameters; every shared conv stays frozen
    style_size: int = 512  # generated styles are made at this size; style Grams use it too
    seed: int = 0
    device: str = "cpu"
    amp: bool = True  # used only on CUDA
    log_every: int = 10
    preview_every: int = 200
    checkpoint_every: int = 500
    max_side: int = 640  # content images larger than this are downsized on load
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["styles"] = list(self.styles)
        out["channels"] = list(self.channels)
        out["style_stability"] = list(self.style_stability)
        out["train_styles"] = list(self.train_styles)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "channels" in known and "stem" not in known:  # written before the stem choice existed
            known.update(LEGACY_LAYOUT)
        if known and "perception" not in known:  # written before EfficientNet and the patch loss
            known.update(perception="random", swd_weight=0.0)
        if "style_stability" in known:
            known["style_stability"] = tuple(float(v) for v in known["style_stability"])
        if "train_styles" in known:
            known["train_styles"] = tuple(int(v) for v in known["train_styles"])
        if "styles" in known:
            known["styles"] = tuple(known["styles"])
        if "channels" in known:
            known["channels"] = tuple(int(c) for c in known["channels"])
        return cls(**known)

    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(channels=tuple(self.channels), res_blocks=self.res_blocks, stem_kernel=self.stem_kernel,
                               stem=self.stem, padding=self.padding, n_styles=self.n_styles)

    @property
    def n_styles(self) -> int:
        return len(self.styles) if self.multi_style else 1

    def style_names(self) -> list[str]:
        """The styles' names: built-in names as they are, image paths by their file stem."""
        names = [Path(s).stem for s in self.styles]
        return names if self.multi_style else ["+".join(names)]

    def validate(self) -> None:
        if self.steps < 0 or self.batch < 1:
            raise BadInputError(f"steps must be >= 0 and batch >= 1 (got steps={self.steps}, batch={self.batch})")
        if self.size < max(MIN_SIZE, 32):
            raise BadInputError(f"--size must be at least 32, got {self.size}")
        if self.adv not in ("nonsat", "hinge", "none"):
            raise BadInputError(f"--adv must be nonsat, hinge or none, got {self.adv!r}")
        if self.stability > 0 and self.size <= 4 * self.stability_shift + 2:
            raise BadInputError(f"--size {self.size} is too small for a stability shift of {self.stability_shift}")
        if len(self.channels) != 3 or min(self.channels) < 1 or self.res_blocks < 0 or self.stem_kernel % 2 == 0:
            raise BadInputError("--channels needs 3 positive widths, --res-blocks >= 0 and an odd stem kernel")
        if self.stem not in STEMS or self.padding not in PADDINGS:
            raise BadInputError(f"--stem must be one of {', '.join(STEMS)} and --padding one of {', '.join(PADDINGS)}")
        if not self.styles:
            raise BadInputError("at least one --style is needed")
        if self.perception not in PERCEPTIONS:
            raise BadInputError(f"--perception must be one of {', '.join(PERCEPTIONS)}, got {self.perception!r}")
        if self.swd_weight < 0 or self.swd_projections < 1 or self.swd_max_patches < 1:
            raise BadInputError("--swd-weight must be >= 0, the projections and patches >= 1")
        if self.multi_style and len(self.styles) < 2:
            raise BadInputError("--multi-style needs at least two --style entries")
        names = self.style_names()
        if self.multi_style and len(set(names)) != len(names):
            raise BadInputError(f"--multi-style: two styles share a name ({', '.join(names)})")
        if self.style_stability and (not self.multi_style or len(self.style_stability) != len(self.styles)
                                     or min(self.style_stability) < 0):
            raise BadInputError("--style-stability needs --multi-style and one factor >= 0 per style")
        if self.train_styles and (not self.multi_style or not all(0 <= i < len(self.styles) for i in self.train_styles)):
            raise BadInputError("train_styles needs a multi-style run and indices of its styles")
        if self.norm_only and not self.multi_style:
            raise BadInputError("norm_only (train only the per-style norm parameters) needs a multi-style run")
        if self.log_every < 1 or self.preview_every < 0 or self.checkpoint_every < 0:
            raise BadInputError("--log-every must be >= 1; --preview-every and --checkpoint-every >= 0")


# Fields a resumed run may change; everything else comes from the checkpoint's stored config.
RESUME_OVERRIDABLE = ("steps", "out", "device", "amp", "log_every", "preview_every", "checkpoint_every", "progress")


@dataclass
class TrainResult:
    step: int
    checkpoint: Path
    wall_seconds: float
    steps_per_second: float
    last_losses: dict[str, float] = field(default_factory=dict)
    data_summary: str = ""
    interrupted: bool = False


def _step_rngs(seed: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    np_rng = np.random.default_rng([seed, step])
    torch_rng = torch.Generator().manual_seed(int(np_rng.integers(0, 2**62)))
    return np_rng, torch_rng


def _to_tensor(batch: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(batch)).to(device).permute(0, 3, 1, 2).float().div_(255.0)


def _style_crops(styles: list[np.ndarray], rng: np.random.Generator, batch: int, size: int) -> np.ndarray:
    """Random crops of the style images at their own scale (upscaled only if smaller than a crop)."""
    import cv2

    out = np.empty((batch, size, size, 3), np.uint8)
    for i in range(batch):
        image = styles[int(rng.integers(len(styles)))]
        h, w = image.shape[:2]
        if min(h, w) < size:
            s = size / min(h, w)
            image = cv2.resize(image, (max(size, round(w * s)), max(size, round(h * s))), interpolation=cv2.INTER_LINEAR)
            h, w = image.shape[:2]
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        crop = image[y : y + size, x : x + size]
        out[i] = crop[:, ::-1] if rng.random() < 0.5 else crop
    return out


class _InterruptFlag:
    """First Ctrl-C asks the loop to stop after the current step (so the checkpoint is
    consistent); a second one interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "_InterruptFlag":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class PerStyleDiscriminators(nn.Module):
    """One PatchGAN per style; ``forward(images, which)`` judges each image with its style's D.

    Logits come back in the input order, so the adversarial losses read like a single D's."""

    def __init__(self, config: DiscriminatorConfig, n_styles: int) -> None:
        super().__init__()
        self.config = config
        self.heads = nn.ModuleList(PatchDiscriminator(config) for _ in range(n_styles))

    def forward(self, images: torch.Tensor, which: np.ndarray) -> torch.Tensor:
        parts = [self.heads[int(w)](images[i : i + 1]) for i, w in enumerate(which)]
        return torch.cat(parts)


class Trainer:
    """Builds the models and data of a :class:`TrainConfig` and runs (or resumes) it."""

    def __init__(self, config: TrainConfig, resume: str | None = None, content: ContentImages | None = None,
                 dist: distributed.DistEnv | None = None, generator: Generator | None = None) -> None:
        """``generator``: start from this network instead of fresh weights (adding a style to a trained
        multi-style model: its config must match ``config``'s)."""
        if resume:
            card = ckpt_io.read_card(resume, kind="generator")
            if "train" not in card or "step" not in card:
                raise BadInputError(f"{resume} cannot be resumed: its card has no training config (not a training checkpoint)")
            stored = TrainConfig.from_dict(card["train"])
            for name in RESUME_OVERRIDABLE:
                setattr(stored, name, getattr(config, name))
            config = stored
        config.validate()
        distributed.check_batch(config.batch, dist)
        self.config = config
        self.dist = dist  # a torchrun job (training/distributed.py), or None alone
        self.device = self._device(distributed.device_name(config.device, dist))
        self.use_amp = bool(config.amp and self.device.type == "cuda")
        self.out = Path(config.out)

        self.content = content if content is not None else open_content(config.content, config.max_side, config.progress)
        # styles the batches never draw (train_styles) need no image: a style added later has no access
        # to the images the model was first trained on
        used = set(config.train_styles or range(len(config.styles)))
        self.styles = [load_style(s, size=config.style_size, seed=config.seed) if i in used else None
                       for i, s in enumerate(config.styles)]

        if config.multi_style and dist is not None:
            raise BadInputError("multi-style training runs in one process (its per-style discriminators see "
                                "different styles on different ranks); run it without torchrun")

        torch.manual_seed(config.seed)
        if generator is not None and generator.config.to_dict() != config.generator_config().to_dict():
            raise BadInputError("the given generator's config does not match the training config")
        self.generator = (generator or Generator(config.generator_config())).to(self.device)
        d_config = DiscriminatorConfig(config.d_width, config.d_layers)
        self.discriminator = (PerStyleDiscriminators(d_config, config.n_styles) if config.multi_style
                              else PatchDiscriminator(d_config)).to(self.device)
        self.perception = build_perception(config.vgg_weights, config.vgg_arch, config.perception).to(self.device)
        if config.norm_only:  # the shared convs (and every other style's rows, by the one-hot) stay as they are
            self.generator.requires_grad_(False)
            for p in self.generator.norm_parameters():
                p.requires_grad_(True)
        trainable = [p for p in self.generator.parameters() if p.requires_grad]
        self.opt_g = torch.optim.Adam(trainable, lr=config.lr_g, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_d, betas=(0.5, 0.999))
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.step = 0
        if resume:
            self._load(resume)
        # What the training step calls: the modules under DDP in a torchrun job, else themselves.
        self._train_generator = distributed.wrap(self.generator, dist, self.device)
        self._train_discriminator = distributed.wrap(self.discriminator, dist, self.device)
        self.style_grams, self.style_banks = self._style_targets()

    @staticmethod
    def _device(name: str) -> torch.device:
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise BadInputError("--device cuda asked for, but torch sees no CUDA GPU here (use --device cpu)")
        try:
            return torch.device(name)
        except RuntimeError as exc:
            raise BadInputError(f"bad --device {name!r}: {exc}") from None

    def _load(self, path: str) -> None:
        ckpt_io.load_weights(self.generator, Path(path) / ckpt_io.GENERATOR_FILE)
        state = ckpt_io.load_training_state(path, self.discriminator)
        try:
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
            if self.use_amp and "scaler_g" in state:
                self.scaler_g.load_state_dict(state["scaler_g"])
                self.scaler_d.load_state_dict(state["scaler_d"])
        except (KeyError, ValueError, RuntimeError) as exc:
            raise BadInputError(f"training state in {path} does not fit this model: {exc}") from None
        self.step = int(ckpt_io.read_card(path)["step"])

    @torch.no_grad()
    def _style_targets(self) -> tuple[list[list[torch.Tensor]], list[list[PatchBank]]]:
        """Per style: the target Grams (whole image, once) and patch banks (one per patch tap).

        One style from several images (not ``multi_style``): the mean of the images' Grams and
        one bank pooling their patches."""
        cfg = self.config
        grams, banks = [], []
        for i, image in enumerate(self.styles):
            if image is None:  # never drawn (see train_styles)
                grams.append([])
                banks.append([])
                continue
            _, feats = self.perception(_to_tensor(image[None], self.device))
            grams.append([gram(f) for f in feats])
            banks.append([PatchBank(feats[t], cfg.swd_max_patches, cfg.seed + 7 * i + j)
                          for j, t in enumerate(self.perception.patch_taps)])
        if cfg.multi_style:
            return grams, banks
        mean_grams = [torch.stack([g[j] for g in grams]).mean(0) for j in range(len(grams[0]))]
        pooled = []
        for j in range(len(banks[0])):
            bank = banks[0][j]
            if len(banks) > 1:
                merged = torch.cat([b[j].patches for b in banks])
                keep = torch.randperm(len(merged), generator=torch.Generator().manual_seed(cfg.seed))
                bank.patches = merged[keep[: cfg.swd_max_patches].to(merged.device)]
            pooled.append(bank)
        return [mean_grams], [pooled]

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.use_amp)

    def _styled(self, which: np.ndarray | None):
        """The generator as a one-argument function of the content batch (the samples' styles bound)."""
        if which is None:
            return self._train_generator
        style = torch.nn.functional.one_hot(torch.as_tensor(which), self.config.n_styles).float().to(self.device)
        return lambda inp: self._train_generator(inp, style[: inp.shape[0]])

    def _discriminate(self, images: torch.Tensor, which: np.ndarray | None) -> torch.Tensor:
        return self.discriminator(images) if which is None else self.discriminator(images, which)

    def generator_losses(self, x: torch.Tensor, step: int, t_rng: torch.Generator,
                         which: np.ndarray | None = None,
                         swd_rng: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """G's output and its loss terms on content batch ``x`` (NCHW float in [0, 1]);
        ``which``: each sample's style index (multi-style runs); ``swd_rng``: the patch loss's
        random directions (the same on every rank of a torchrun job; ``t_rng`` when None)."""
        cfg = self.config
        styles = which if which is not None else np.zeros(x.shape[0], np.int64)
        generate = self._styled(which)
        with self._autocast():
            y = generate(x)
            feats_c, feats_s = self.perception(y)
            with torch.no_grad():
                target_c, _ = self.perception(x)
            norm = distributed.global_mean(target_c.float().pow(2).mean(), self.dist)  # the global batch's
            if which is None:
                targets = self.style_grams[0]
            else:
                targets = [torch.cat([self.style_grams[int(w)][j] for w in styles]) for j in range(len(feats_s))]
            logs = {
                "content": content_loss(feats_c, target_c) / norm.clamp_min(1e-12),
                "style": style_loss(feats_s, targets),
                "tv": total_variation(y.float()),
            }
            total = cfg.content_weight * logs["content"] + cfg.style_weight * logs["style"] + cfg.tv_weight * logs["tv"]
            if cfg.swd_weight > 0 and self.perception.patch_taps:
                terms = [swd_loss(feats_s[t], [self.style_banks[int(w)][j] for w in styles], cfg.swd_projections,
                                  swd_rng or t_rng)
                         for j, t in enumerate(self.perception.patch_taps)]
                logs["swd"] = sum(terms) / len(terms)
                total = total + cfg.swd_weight * logs["swd"]
            if cfg.stability > 0:
                weights = None
                if cfg.style_stability:
                    weights = torch.tensor([cfg.style_stability[int(w)] for w in styles], device=self.device)
                noise_t, shift_t = stability_losses(
                    generate, x, y, cfg.stability_noise, cfg.stability_shift, t_rng, weights
                )
                logs["stab_noise"], logs["stab_shift"] = noise_t, shift_t
                total = total + cfg.stability * (noise_t + shift_t)
            if cfg.adv != "none" and step > cfg.adv_start:
                self.discriminator.requires_grad_(False)
                logs["adv_g"] = generator_adv_loss(self._discriminate(y, which), cfg.adv)
                self.discriminator.requires_grad_(True)
                total = total + cfg.adv_weight * logs["adv_g"]
        logs["total"] = total
        return y, logs

    def train_step(self, step: int) -> dict[str, float]:
        """One G update and one D update for global step ``step`` (1-based)."""
        cfg = self.config
        np_rng, t_rng = _step_rngs(cfg.seed, step)
        t_rng = distributed.rank_generator(t_rng, cfg.seed, step, self.dist)
        # Every rank draws the global batch and takes its slice (distributed.shard): same data as alone.
        x = _to_tensor(distributed.shard(self.content.batch(np_rng, cfg.batch, cfg.size), self.dist), self.device)
        use_adv = cfg.adv != "none"
        which = None
        if cfg.multi_style:
            pool = np.asarray(cfg.train_styles or range(cfg.n_styles))
            which = pool[np_rng.integers(0, len(pool), cfg.batch)]
        if which is not None:  # each sample's real crop comes from its own style
            crops = np.concatenate([_style_crops([self.styles[int(w)]], np_rng, 1, cfg.size) for w in which])
        else:
            crops = _style_crops(self.styles, np_rng, cfg.batch, cfg.size) if use_adv else None
        real = _to_tensor(distributed.shard(crops, self.dist), self.device) if use_adv else None

        # drawn from the step's shared stream after the data: every rank projects on the same directions
        swd_rng = torch.Generator().manual_seed(int(np_rng.integers(0, 2**62)))
        self.generator.train()
        y, logs = self.generator_losses(x, step, t_rng, which, swd_rng)
        total = logs["total"]
        if not torch.isfinite(total):
            raise StylizeError(f"loss became {float(total)} at step {step}; lower the learning rates (--lr-g, --lr-d)")
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler_g.scale(total).backward()
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()

        if use_adv:
            with self._autocast():
                if which is None:
                    d_loss = discriminator_loss(self._train_discriminator(real), self.discriminator(y.detach()), cfg.adv)
                else:
                    d_loss = discriminator_loss(self.discriminator(real, which), self.discriminator(y.detach(), which),
                                                cfg.adv)
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler_d.scale(d_loss).backward()
            self.scaler_d.step(self.opt_d)
            self.scaler_d.update()
            logs["adv_d"] = d_loss
        return distributed.mean_logs({k: float(v.detach()) for k, v in logs.items()}, self.dist, self.device)

    def save(self, path: Path) -> Path:
        states = {"opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}
        if self.use_amp:
            states |= {"scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict()}
        extra = {
            "step": self.step,
            "train": self.config.to_dict(),
            "discriminator": self.discriminator.config.to_dict(),
            "perception": self.perception.name,
            "styles": self.config.style_names(),
        }
        self.generator.eval()
        return ckpt_io.save_generator(path, self.generator, extra, self.discriminator, states)

    def preview(self, path: Path, count: int = 3) -> Path:
        """input | output rows for the first ``count`` content images (centre crops)."""
        rows = []
        self.generator.eval()
        with torch.no_grad():
            for index in range(min(count, len(self.content))):
                try:
                    image = self.content.image(index)
                except BadInputError:  # a lazily read file that does not decode: leave it out
                    continue
                h, w = image.shape[:2]
                s = min(h, w, 2 * self.config.size)
                y0, x0 = (h - s) // 2, (w - s) // 2
                crop = np.ascontiguousarray(image[y0 : y0 + s, x0 : x0 + s])
                out = self.generator(_to_tensor(crop[None], self.device))
                out_u8 = (out.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()[0]
                rows.append((crop, out_u8))
        if not rows:
            return path
        return write_contact_sheet(rows, path, cell_height=min(256, 2 * self.config.size))

    def _log(self, record: dict[str, Any]) -> None:
        try:
            with open(self.out / "train.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise OutputError(f"cannot write {self.out / 'train.jsonl'}: {exc.strerror or exc}") from None

    def run(self) -> TrainResult:
        """Train up to ``config.steps``; Ctrl-C stops after the current step and saves a checkpoint."""
        cfg = self.config
        main = self.dist is None or self.dist.is_main  # rank 0 alone writes files and draws the bar
        try:
            if main:
                self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create run directory {self.out}: {exc.strerror or exc}") from None
        start_step, t0 = self.step, time.perf_counter()
        losses: dict[str, float] = {}
        interrupted = False
        bar = None
        if cfg.progress and main:
            bar = progress_bar(total=cfg.steps, initial=start_step, desc="train generator", unit="step")
        try:
            with _InterruptFlag() as flag:
                while self.step < cfg.steps:
                    losses = self.train_step(self.step + 1)
                    self.step += 1
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{losses['total']:.3f}", refresh=False)
                    if main and (self.step % cfg.log_every == 0 or self.step == cfg.steps):
                        rate = (self.step - start_step) / max(time.perf_counter() - t0, 1e-9)
                        self._log({"step": self.step, "wall_s": round(time.perf_counter() - t0, 3),
                                   "steps_per_s": round(rate, 4), "lr_g": cfg.lr_g, "lr_d": cfg.lr_d,
                                   **{k: round(v, 6) for k, v in losses.items()}})
                    if main and cfg.preview_every and self.step % cfg.preview_every == 0:
                        self.preview(self.out / "previews" / f"step_{self.step:07d}.png")
                    if main and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                        self.save(self.out / "checkpoints" / f"step_{self.step:07d}")
                    if distributed.any_rank(flag.requested, self.dist):
                        interrupted = True
                        break
        except KeyboardInterrupt:
            interrupted = True  # second Ctrl-C mid-step: weights may be mid-update; save anyway below
        finally:
            if bar is not None:
                bar.close()
        final = self.out / "checkpoints" / f"step_{self.step:07d}"
        if main:
            self.save(final)
            self.save(self.out / "final")
            if not interrupted:  # always one final sheet, whatever the interval
                self.preview(self.out / "previews" / "final.png")
        distributed.barrier(self.dist)  # no rank reports done before rank 0's checkpoint is on disk
        wall = time.perf_counter() - t0
        done = self.step - start_step
        return TrainResult(
            step=self.step, checkpoint=final, wall_seconds=wall,
            steps_per_second=done / wall if wall > 0 else math.nan, last_losses=losses,
            data_summary=self.content.stats.summary(), interrupted=interrupted,
        )


def train(config: TrainConfig, resume: str | None = None) -> TrainResult:
    return Trainer(config, resume=resume).run()


__all__ = ["TrainConfig", "Trainer", "TrainResult", "train", "RESUME_OVERRIDABLE"]
