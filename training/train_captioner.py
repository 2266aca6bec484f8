"""Training the captioner: MLE with teacher forcing, then optional caption-GAN fine-tuning.

Three data sources (``TrainConfig.data``):

* ``facts`` (default, the product model): synthetic fact sets with grammar sentences, fresh
  every step (``caption_synth``): the decoder learns to speak about what the runtime recognises
  in a frame; no images needed.
* ``scenes``: rendered synthetic shape scenes with their references (the image captioner).
* ``coco``: a COCO-format caption set (the image captioner on real photos).

Everything is seeded (torch, numpy, data), so the same command gives the same checkpoint
on the same machine. Held-out scores come from a ``test`` seed stream training never draws
from, or from a held-out slice of a COCO-format set.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from stylize_rt.caption_facts import SLOTS, FactCoder
from stylize_rt.errors import BadInputError, OutputError
from stylize_rt.nets.captioner import (
    Captioner,
    CaptionerConfig,
    caption_loss,
    images_to_tensor,
    load_captioner,
    load_fact_coder,
    save_captioner,
)
from stylize_rt.progress import progress_bar
from stylize_rt.tokenizer import Tokenizer
from stylize_rt.training.caption_gan import (
    CaptionDiscriminator,
    GanConfig,
    discriminator_step,
    generator_step,
    pad_after_eos,
)
from stylize_rt.training.caption_metrics import caption_scores, distinct_n, format_scores
from stylize_rt.training.caption_nouns import build_table
from stylize_rt.training.caption_synth import FactBatches, build_tokenizer, held_out_facts
from stylize_rt.training.coco import CaptionData, load_coco_captions
from stylize_rt.training.scenes import scene_dataset

DATA = ("facts", "scenes", "coco")
FACT_MODEL = dict(max_len=32)  # captions about facts run longer than scene captions (~12 words)


@dataclass
class TrainConfig:
    out: str
    data: str = "facts"  # "facts", "scenes" or "coco" (set with coco_json)
    coco_json: str | None = None
    coco_images: str | None = None
    eval_facts: int = 500  # facts: held-out fact sets (5 grammar references each)
    train_scenes: int = 20000
    eval_scenes: int = 500
    eval_fraction: float = 0.1  # COCO only: last fraction of images held out
    min_word_count: int = 1  # rarer words become <unk> (5 is usual for real COCO)
    image_size: int = 64
    render_scale_max: float = 1.0  # synthetic training scenes drawn at up to this x size, then downsampled
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    init: str | None = None  # start from this captioner checkpoint (its weights and tokenizer)
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    gan: GanConfig = field(default_factory=lambda: GanConfig(steps=0))
    model: dict = field(default_factory=dict)  # CaptionerConfig overrides


    def __post_init__(self) -> None:
        if self.coco_json:
            self.data = "coco"
        if self.data not in DATA:
            raise ValueError(f"data must be one of {DATA}, got {self.data!r}")
        if self.data == "coco" and not self.coco_json:
            raise ValueError("data 'coco' needs coco_json")


def load_data(config: TrainConfig) -> tuple[CaptionData, CaptionData]:
    """(train, held-out) images for ``config`` (scenes or COCO; fact data is drawn per step)."""
    if config.data == "coco":
        if not config.coco_images:
            raise BadInputError("--coco-images is required with --coco")
        data = load_coco_captions(config.coco_json, config.coco_images, config.image_size)
        if len(data) < 2:
            raise BadInputError(f"{config.coco_json}: need at least 2 captioned images (one to hold out)")
        n_eval = max(1, int(round(len(data) * config.eval_fraction)))
        cut = len(data) - n_eval
        split = lambda a, b: CaptionData(data.images[a:b], data.references[a:b], data.names[a:b])  # noqa: E731
        return split(0, cut), split(cut, len(data))
    train = scene_dataset(config.train_scenes, config.seed, "train", config.image_size, config.render_scale_max)
    held_out = scene_dataset(config.eval_scenes, config.seed, "test", config.image_size)
    return train, held_out


class CaptionBatches:
    """Random (image, one of its references) batches, padded token tensors; seeded."""

    def __init__(self, data: CaptionData, tokenizer: Tokenizer, max_len: int, seed: int) -> None:
        self.data = data
        self.rng = np.random.default_rng(seed)
        self.pad_id = tokenizer.pad_id
        # pre-tokenize every reference once; truncate to max_len tokens after <bos> (keeping <eos>)
        self.encoded = [
            [self._clip(tokenizer.encode(c), max_len, tokenizer.eos_id) for c in refs] for refs in data.references
        ]

    @staticmethod
    def _clip(ids: list[int], max_len: int, eos: int) -> list[int]:
        return ids if len(ids) <= max_len + 1 else ids[:max_len] + [eos]

    def tokens(self, rows: list[list[int]]) -> torch.Tensor:
        width = max(len(r) for r in rows)
        out = np.full((len(rows), width), self.pad_id, np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return torch.from_numpy(out)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        idx = self.rng.integers(0, len(self.data), batch_size)
        rows = [self.encoded[i][self.rng.integers(0, len(self.encoded[i]))] for i in idx]
        return images_to_tensor(self.data.images[idx]), self.tokens(rows), idx


def encoder_input(model: Captioner, inputs: np.ndarray) -> torch.Tensor:
    """NHWC uint8 images -> float NCHW, or fact ids -> int64, whichever the model reads."""
    return torch.from_numpy(np.asarray(inputs, np.int64)) if model.config.input == "facts" else images_to_tensor(inputs)


@torch.no_grad()
def generate(model: Captioner, tokenizer: Tokenizer, images: np.ndarray, sample: bool = False, batch: int = 256):
    """Captions for NHWC uint8 images (or fact ids), greedy (or sampled at temperature 1)."""
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        x = encoder_input(model, images[i : i + batch])
        if sample:
            tokens, _ = model.sample(x, tokenizer.bos_id, tokenizer.eos_id)
        else:
            tokens = model.greedy(x, tokenizer.bos_id, tokenizer.eos_id)
        out += [tokenizer.decode(row) for row in tokens.tolist()]
    return out


def evaluate(model: Captioner, tokenizer: Tokenizer, data: CaptionData, seed: int = 0) -> dict:
    """Held-out BLEU/CIDEr/distinct-2 of greedy captions, and distinct-2 of sampled ones."""
    scores = caption_scores(generate(model, tokenizer, data.images), data.references)
    torch.manual_seed(seed)
    sampled = generate(model, tokenizer, data.images, sample=True)
    scores["sampled_distinct2"] = distinct_n(sampled, 2)
    scores["sampled_bleu4"] = caption_scores(sampled, data.references)["bleu4"]
    return scores


def mle_steps(
    model, opt, sched, batches: CaptionBatches | FactBatches, steps: int, batch_size: int, desc: str = "mle"
) -> list[float]:
    """Teacher-forced cross-entropy updates; returns the per-step losses."""
    losses = []
    model.train()
    bar = progress_bar(range(steps), desc=desc, unit="step", mininterval=2.0)
    for _ in bar:
        images, tokens, _ = batches.sample(batch_size)
        loss = caption_loss(model(images, tokens), tokens[:, 1:], batches.pad_id)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", refresh=False)
    return losses


def gan_finetune(model: Captioner, tokenizer: Tokenizer, batches: CaptionBatches | FactBatches, config: GanConfig,
                 seed: int) -> dict:
    """Discriminator pre-training, then alternating discriminator / policy-gradient updates."""
    torch.manual_seed(seed + 1)
    disc = CaptionDiscriminator(len(tokenizer), tokenizer.pad_id, model.encoder, model.config.feature_dim)
    d_opt = torch.optim.Adam(disc.parameters(), lr=config.disc_lr)
    g_opt = torch.optim.Adam(model.parameters(), lr=config.generator_lr)
    ids = (tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id)

    def d_update() -> dict:
        images, tokens, idx = batches.sample(config.batch_size)
        _, wrong, _ = batches.sample(config.batch_size)  # other images' captions
        model.eval()
        with torch.no_grad():
            fake, _ = model.sample(images, ids[0], ids[1], temperature=config.temperature)
        return discriminator_step(
            disc, d_opt, images, tokens[:, 1:], pad_after_eos(fake, ids[1], ids[2]), wrong[:, 1:]
        )

    d_stats: dict = {}
    bar = progress_bar(range(config.disc_pretrain), desc="gan: discriminator", unit="step", mininterval=2.0)
    for _ in bar:
        d_stats = d_update()
        bar.set_postfix(d_acc=f"{d_stats['d_acc']:.2f}", refresh=False)
    pretrain_acc = d_stats.get("d_acc")
    running = None
    history = []
    bar = progress_bar(range(config.steps), desc="gan: policy gradient", unit="step", mininterval=2.0)
    for _ in bar:
        for _ in range(config.disc_steps):
            d_stats = d_update()
        images, tokens, _ = batches.sample(config.batch_size)
        g_stats = generator_step(model, disc, g_opt, images, tokens, ids, config, running)
        running = g_stats["reward"] if running is None else 0.9 * running + 0.1 * g_stats["reward"]
        history.append({**g_stats, **d_stats})
        bar.set_postfix(reward=f"{g_stats['reward']:.3f}", d_acc=f"{d_stats['d_acc']:.2f}", refresh=False)
    model.eval()
    last = history[-50:] or [d_stats]
    summary = {k: float(np.mean([h[k] for h in last if k in h])) for k in last[0]}
    summary["d_acc_after_pretrain"] = pretrain_acc
    return summary


def _check_writable(out: Path) -> None:
    """Fail before training, not after: the checkpoint's folder must be creatable and writable."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=out.name + ".", suffix=".probe", dir=out.parent):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write checkpoint {out}: {exc.strerror or exc}") from None


def train(config: TrainConfig, log=tqdm.write) -> dict:
    """Train, evaluate on held-out data, write the checkpoint to ``config.out``; return the report."""
    start = time.time()
    _check_writable(Path(config.out))
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    coder = None
    if config.data == "facts":
        batches, held_out, model, tokenizer, coder, init_info = _fact_setup(config)
        train_size: int | str = "unlimited (synthetic fact sets drawn every step)"
    else:  # bad data is reported before anything else is said
        batches, held_out, model, tokenizer, init_info, train_size = _image_setup(config)
    print(f"captioner training: {torch.get_num_threads()} CPU thread(s) (--threads)", file=sys.stderr)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    warmup = min(100, max(1, config.steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, config.steps)))),
    )
    losses = mle_steps(model, opt, sched, batches, config.steps, config.batch_size) if config.steps else []
    mle_wall = time.time() - start
    report: dict = {
        "data": config.data,
        "vocab_size": len(tokenizer),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_images": train_size,
        "held_out_images": len(held_out),
        "init": init_info,
        "mle": {
            "steps": config.steps,
            "first_loss": losses[0] if losses else None,
            "final_loss": float(np.mean(losses[-50:])) if losses else None,
            "wall_s": round(mle_wall, 1),
        },
    }
    report["mle"]["held_out"] = evaluate(model, tokenizer, held_out, config.seed)
    log(f"held-out after MLE ({mle_wall:.0f} s): {format_scores(report['mle']['held_out'])}")
    if config.gan.steps > 0:
        gan_start = time.time()
        report["gan"] = {"train": gan_finetune(model, tokenizer, batches, config.gan, config.seed)}
        report["gan"]["held_out"] = evaluate(model, tokenizer, held_out, config.seed)
        report["gan"]["wall_s"] = round(time.time() - gan_start, 1)
    report["wall_s"] = round(time.time() - start, 1)
    train_dict = asdict(config)
    save_captioner(config.out, model, tokenizer, extra={"train": train_dict, "report": report}, coder=coder)
    return report


def _init_info(config: TrainConfig, card: dict) -> dict:
    return {"path": str(config.init), "train": card.get("train"), "wall_s": card.get("report", {}).get("wall_s")}


def _image_setup(config: TrainConfig):
    train_data, held_out = load_data(config)
    init_info = None
    if config.init:
        model, tokenizer, init_card = load_captioner(config.init)
        if model.config.input != "image":
            raise BadInputError(f"{config.init} is a fact captioner; --data {config.data} trains an image captioner")
        if model.config.image_size != config.image_size:
            raise BadInputError(
                f"{config.init} was trained at image size {model.config.image_size}, not {config.image_size}"
            )
        init_info = _init_info(config, init_card)
    else:
        tokenizer = Tokenizer.build(train_data.all_captions(), min_count=config.min_word_count)
        model = Captioner(CaptionerConfig(vocab_size=len(tokenizer), image_size=config.image_size, **config.model))
    batches = CaptionBatches(train_data, tokenizer, model.config.max_len, config.seed)
    return batches, held_out, model, tokenizer, init_info, len(train_data)


def _fact_setup(config: TrainConfig):
    """Fact captioner: the noun table, its fact vocabulary, a tokenizer over grammar sentences."""
    init_info = None
    if config.init:
        model, tokenizer, init_card = load_captioner(config.init)
        if model.config.input != "facts":
            raise BadInputError(f"{config.init} is an image captioner; --data facts trains a fact captioner")
        coder = load_fact_coder(config.init, init_card)
        init_info = _init_info(config, init_card)
    else:
        coder = FactCoder(build_table())
        tokenizer = build_tokenizer(coder.table, config.seed)
        model = Captioner(CaptionerConfig(vocab_size=len(tokenizer), input="facts", fact_tokens=len(coder.vocab),
                                          fact_slots=len(SLOTS), **{**FACT_MODEL, **config.model}))
    # a fine-tune (--init) draws another stretch of the stream than the run it starts from
    batches = FactBatches(coder, tokenizer, model.config.max_len, config.seed + (7 if config.init else 0))
    facts, references = held_out_facts(coder.table, config.eval_facts, seed=config.seed)
    held_out = CaptionData(coder.encode_batch(facts), references, [f"test-{config.seed}-{i}" for i in range(len(facts))])
    return batches, held_out, model, tokenizer, coder, init_info


__all__ = ["TrainConfig", "train", "evaluate", "generate", "CaptionBatches", "load_data", "mle_steps", "gan_finetune",
           "encoder_input", "DATA"]
