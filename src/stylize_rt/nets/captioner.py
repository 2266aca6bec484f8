"""The captioner: an encoder and an attention GRU decoder (Show-Attend-Tell family).

Two encoders share the decoder: ``input="facts"`` (the default product model) reads the 13
fact-token ids the runtime recognised in a frame (``stylize_rt.caption_facts``) and turns them
into 13 attention "cells"; ``input="image"`` is a compact CNN over pixels (the synthetic
shape-scene model and COCO training). Everything below is the same for both.

Designed for export, so the runtime (ONNX Runtime, TensorRT) drives the decoding loop:

* ``encode(images)`` is one graph: image -> spatial feature grid ``features`` [B, L, D],
  the attention keys precomputed from it ``keys`` [B, L, A] (so each step does not redo
  that projection), and the initial recurrent state ``hidden`` [B, H] and ``context`` [B, D].
* ``step(token, hidden, context, features, keys)`` is one decoder step with the state
  explicit in and out: the previous token and the previous attention context go into the
  GRU (input feeding), the new hidden state attends over the grid, and the logits come
  from hidden state, new context and token embedding together.

Teacher-forced training runs the very same ``step`` in a loop, so a stepwise decode in
any runtime is the training-time computation, not an approximation of it.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from stylize_rt import __version__
from stylize_rt.caption_facts import P_EDGES, SLOTS, FactCoder, NounTable
from stylize_rt.contract import CAPTIONER_NOUNS_FILE as NOUNS_FILE
from stylize_rt.contract import CAPTIONER_TOKENIZER_FILE as TOKENIZER_FILE
from stylize_rt.contract import CHECKPOINT_CARD as CONFIG_FILE
from stylize_rt.errors import BadInputError, OutputError
from stylize_rt.fileio import replace_dir
from stylize_rt.nets.checkpoint import load_weights, read_card, save_weights
from stylize_rt.tokenizer import Tokenizer


@dataclass
class CaptionerConfig:
    vocab_size: int
    image_size: int = 64
    channels: tuple[int, ...] = (24, 48, 96)  # one stride-2 stage each: grid = image_size / 2**len
    feature_dim: int = 128
    embed_dim: int = 64
    hidden_dim: int = 192
    attention_dim: int = 96
    dropout: float = 0.1
    max_len: int = 24  # tokens generated at most, <eos> included
    input: str = "image"  # "image": CNN over pixels; "facts": fact-token ids (FactEncoder)
    fact_tokens: int = 0  # facts: size of the fact vocabulary
    fact_slots: int = 0  # facts: ids per fact set

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if self.vocab_size < 5:
            raise ValueError(f"vocab_size must be at least 5 (4 special tokens + 1 word), got {self.vocab_size}")
        if self.input not in ("image", "facts"):
            raise ValueError(f"input must be 'image' or 'facts', got {self.input!r}")
        if self.input == "facts" and (self.fact_tokens < 2 or self.fact_slots < 1):
            raise ValueError("a fact captioner needs fact_tokens >= 2 and fact_slots >= 1")
        if self.input == "image" and self.image_size % (2 ** len(self.channels)):
            raise ValueError(f"image_size {self.image_size} is not divisible by 2**{len(self.channels)}")

    @property
    def grid(self) -> int:
        return self.image_size // 2 ** len(self.channels)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "CaptionerConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown captioner config keys {unknown}")
        return cls(**data)


class ImageEncoder(nn.Module):
    """Float NCHW RGB in [0, 1] -> [B, L, D] feature grid with a learned position code.

    The position code matters: attention pooling is order-free, and captions say "left
    of" and "above", so every grid cell has to know where it is.
    """

    def __init__(self, config: CaptionerConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in config.channels:
            layers += [
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, padding=1),
                nn.ReLU(inplace=True),
            ]
            c_in = c_out
        layers.append(nn.Conv2d(c_in, config.feature_dim, 1))
        self.body = nn.Sequential(*layers)
        self.position = nn.Parameter(torch.zeros(1, config.feature_dim, config.grid, config.grid))
        nn.init.normal_(self.position, std=0.1)
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.body((images - self.mean) * 2.0)
        x = F.relu(x + self.position)
        return x.flatten(2).transpose(1, 2)  # [B, L, D]


class FactEncoder(nn.Module):
    """Fact-token ids [B, L] int64 -> [B, L, D]: token embedding + a learned per-slot code, then a
    residual MLP. The slot code says which fact a cell holds (the same token, e.g. a colour,
    means "frame colour" in one slot and "subject colour" in another)."""

    def __init__(self, config: CaptionerConfig) -> None:
        super().__init__()
        d = config.feature_dim
        self.tokens = nn.Embedding(config.fact_tokens, d)
        self.slots = nn.Parameter(torch.randn(1, config.fact_slots, d) * 0.1)
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, d))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tokens(ids) + self.slots
        return torch.relu(x + self.mlp(x))


class Captioner(nn.Module):
    def __init__(self, config: CaptionerConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.encoder = FactEncoder(c) if c.input == "facts" else ImageEncoder(c)
        self.init_hidden = nn.Linear(c.feature_dim, c.hidden_dim)
        self.key = nn.Linear(c.feature_dim, c.attention_dim)
        self.query = nn.Linear(c.hidden_dim, c.attention_dim, bias=False)
        self.score = nn.Linear(c.attention_dim, 1, bias=False)
        self.embed = nn.Embedding(c.vocab_size, c.embed_dim)
        self.gru = nn.GRUCell(c.embed_dim + c.feature_dim, c.hidden_dim)
        self.pre_out = nn.Linear(c.hidden_dim + c.feature_dim + c.embed_dim, c.hidden_dim)
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear(c.hidden_dim, c.vocab_size)

    # --- the two exported pieces -------------------------------------------------------
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images [B, 3, S, S] in [0, 1] (or fact ids [B, L]) -> (features, keys, hidden, context)."""
        features = self.encoder(images)
        mean = features.mean(dim=1)
        hidden = torch.tanh(self.init_hidden(mean))
        return features, self.key(features), hidden, mean

    def step(
        self,
        token: torch.Tensor,
        hidden: torch.Tensor,
        context: torch.Tensor,
        features: torch.Tensor,
        keys: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One decoder step -> (logits [B, V], hidden [B, H], context [B, D], attention [B, L])."""
        emb = self.embed(token)
        hidden = self.gru(torch.cat([emb, context], dim=1), hidden)
        scores = self.score(torch.tanh(keys + self.query(hidden).unsqueeze(1))).squeeze(2)
        attention = torch.softmax(scores, dim=1)
        context = torch.bmm(attention.unsqueeze(1), features).squeeze(1)
        out = torch.tanh(self.pre_out(torch.cat([hidden, context, emb], dim=1)))
        return self.out(self.drop(out)), hidden, context, attention

    # --- training and reference decoding ---------------------------------------------
    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: tokens [B, T] (starting with <bos>) -> logits [B, T-1, V] for tokens[:, 1:]."""
        features, keys, hidden, context = self.encode(images)
        logits = []
        for t in range(tokens.shape[1] - 1):
            step_logits, hidden, context, _ = self.step(tokens[:, t], hidden, context, features, keys)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)

    @torch.no_grad()
    def greedy(self, images: torch.Tensor, bos_id: int, eos_id: int, max_len: int | None = None) -> torch.Tensor:
        """Greedy decode -> [B, T] token ids (without <bos>), padded with <eos> after the end."""
        tokens, _ = self._decode(images, bos_id, eos_id, max_len, sample=False)
        return tokens

    def sample(
        self, images: torch.Tensor, bos_id: int, eos_id: int, max_len: int | None = None, temperature: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled decode with gradients -> (tokens [B, T], log-probs of the chosen tokens [B, T]).

        Positions after the first <eos> hold <eos> and log-prob 0, so sums are per caption.
        """
        return self._decode(images, bos_id, eos_id, max_len, sample=True, temperature=temperature)

    def _decode(self, images, bos_id, eos_id, max_len, sample, temperature=1.0):
        max_len = max_len or self.config.max_len
        features, keys, hidden, context = self.encode(images)
        token = torch.full((images.shape[0],), bos_id, dtype=torch.long, device=images.device)  # images: or fact ids
        done = torch.zeros_like(token, dtype=torch.bool)
        out_tokens, out_logp = [], []
        for _ in range(max_len):
            logits, hidden, context, _ = self.step(token, hidden, context, features, keys)
            logp = torch.log_softmax(logits / temperature if sample else logits, dim=1)
            if sample:
                token = torch.multinomial(logp.exp(), 1).squeeze(1)
            else:
                token = logp.argmax(dim=1)
            chosen = logp.gather(1, token.unsqueeze(1)).squeeze(1)
            token = torch.where(done, torch.full_like(token, eos_id), token)
            out_logp.append(torch.where(done, torch.zeros_like(chosen), chosen))
            out_tokens.append(token)
            done = done | (token == eos_id)
            if bool(done.all()):
                break
        return torch.stack(out_tokens, dim=1), torch.stack(out_logp, dim=1)


def caption_loss(logits: torch.Tensor, targets: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Mean token cross-entropy over non-pad targets."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=pad_id)


def images_to_tensor(images_uint8) -> torch.Tensor:
    """NHWC uint8 RGB (numpy) -> float NCHW in [0, 1]."""
    x = torch.as_tensor(images_uint8)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


__all__ = [
    "Captioner", "CaptionerConfig", "ImageEncoder", "FactEncoder", "caption_loss", "images_to_tensor", "save_captioner",
    "load_captioner", "load_fact_coder",
]


# --- checkpoints: CKPT/config.json + captioner.safetensors + tokenizer.json ---------------
# (+ nouns.json for a fact captioner; its fact vocabulary is in the card under "facts")
WEIGHTS_FILE = "captioner.safetensors"


def vocab_digest(tokenizer) -> str:
    """A short hash of the vocabulary, stored in the card to catch a swapped tokenizer.json."""
    return tokenizer.digest()


def save_captioner(path, model: Captioner, tokenizer, extra: dict | None = None, coder: FactCoder | None = None):
    """Write a captioner checkpoint directory atomically (built beside, then renamed).

    A fact captioner (``config.input == "facts"``) needs its ``coder``: the noun table goes to
    ``nouns.json``, the fact vocabulary into the card."""
    if len(tokenizer) != model.config.vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} words, model {model.config.vocab_size}")
    if (model.config.input == "facts") != (coder is not None):
        raise ValueError("a fact captioner is saved with its FactCoder, an image captioner without")
    if coder is not None and len(coder.vocab) != model.config.fact_tokens:
        raise ValueError(f"fact vocabulary has {len(coder.vocab)} tokens, model {model.config.fact_tokens}")
    ckpt = Path(path)
    card = {
        "kind": "captioner",
        "captioner": model.config.to_dict(),
        "vocab_sha256_16": vocab_digest(tokenizer),
        "stylize_rt_version": __version__,
        **({"facts": coder.to_dict()} if coder is not None else {}),
        **(extra or {}),
    }
    try:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=ckpt.name + ".", suffix=".tmp", dir=ckpt.parent))
        save_weights(model, tmp / WEIGHTS_FILE)
        tokenizer.save(tmp / TOKENIZER_FILE)
        if coder is not None:
            coder.table.save(tmp / NOUNS_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(card, indent=2) + "\n")
    except OSError as exc:
        raise OutputError(f"cannot write checkpoint {ckpt}: {exc.strerror or exc}") from None
    return replace_dir(tmp, ckpt)


def load_captioner(path):
    """Load ``CKPT/`` -> (eval-mode Captioner, Tokenizer, card); one-line errors on any mismatch."""
    ckpt = Path(path)
    card = read_card(ckpt, kind="captioner")
    try:
        config = CaptionerConfig.from_dict(card["captioner"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInputError(f"bad captioner config in {ckpt / CONFIG_FILE}: {exc}") from None
    tokenizer = Tokenizer.load(ckpt / TOKENIZER_FILE)
    if len(tokenizer) != config.vocab_size:
        raise BadInputError(
            f"vocabulary mismatch in {ckpt}: {TOKENIZER_FILE} has {len(tokenizer)} tokens "
            f"but the model was built for {config.vocab_size}"
        )
    digest = card.get("vocab_sha256_16")
    if digest is not None and digest != vocab_digest(tokenizer):
        raise BadInputError(
            f"vocabulary mismatch in {ckpt}: {TOKENIZER_FILE} is not the tokenizer this model was trained with"
        )
    model = Captioner(config)
    load_weights(model, ckpt / WEIGHTS_FILE)
    return model.eval(), tokenizer, card


def load_fact_coder(path, card: dict) -> FactCoder:
    """The ``FactCoder`` of a fact-captioner checkpoint (its nouns.json + the card's fact vocabulary)."""
    ckpt = Path(path)
    facts = card.get("facts")
    if not isinstance(facts, dict) or not isinstance(facts.get("vocab"), list):
        raise BadInputError(f"{ckpt} is not a fact captioner checkpoint (no fact vocabulary in its card)")
    coder = FactCoder(NounTable.load(ckpt / NOUNS_FILE), facts["vocab"], tuple(facts.get("p_edges", P_EDGES)))
    if list(facts.get("slots", SLOTS)) != list(SLOTS):
        raise BadInputError(f"{ckpt}: fact slots {facts.get('slots')} differ from this version's {list(SLOTS)}")
    return coder
