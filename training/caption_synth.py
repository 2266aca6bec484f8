"""Synthetic fact sets and sentences in unlimited numbers: the fact captioner's training data.

No images: the decoder only ever sees facts, and real frames produce facts of the same kind,
so (facts, grammar sentence) pairs drawn here are all it needs. Distributions are broad on
purpose (every noun group equally likely as the subject, confidence spread over the three
bands, 0-5 faces, any colours), with the co-occurrences real frames have (faces often come with
a clothing noun; black-and-white frames have no chromatic colours). Reproducible from
``(seed, split)``; the train and held-out streams never share a seed.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from stylize_rt.caption_facts import (
    BRIGHTNESS,
    CHROMATIC,
    COLOUR_NAMES,
    POSITIONS,
    FactCoder,
    Facts,
    NounTable,
    Subject,
)
from stylize_rt.tokenizer import Tokenizer
from stylize_rt.training.caption_grammar import references, say

SPLITS = {"train": 0, "tokenizer": 1, "test": 2}


class FactSampler:
    """Draws random ``Facts`` for one noun table."""

    def __init__(self, table: NounTable) -> None:
        self.table = table
        self.clothing = [i for i, g in enumerate(table.groups) if g.category in ("clothing", "person")]
        self.kinds = [table.group_kinds(g) for g in range(len(table))]

    def __call__(self, rng: np.random.Generator) -> Facts:
        groups = len(self.table)
        faces = int(rng.choice(6, p=[0.62, 0.22, 0.08, 0.04, 0.02, 0.02]))
        g1 = int(rng.choice(self.clothing)) if faces and rng.random() < 0.5 else int(rng.integers(groups))
        band = rng.choice(3, p=[0.45, 0.3, 0.25])
        p1 = float(rng.uniform(0.5, 1.0) if band == 0 else rng.uniform(0.25, 0.5) if band == 1 else rng.uniform(0.02, 0.25))
        kinds = self.kinds[g1]
        subjects = [Subject(g1, p1, str(rng.choice(kinds)) if kinds and rng.random() < 0.6 else None)]
        rest = 1.0 - p1
        for _ in range(2):
            g = int(rng.integers(groups))
            while any(s.group == g for s in subjects):
                g = int(rng.integers(groups))
            p = float(rng.uniform(0, min(subjects[-1].prob, rest)))
            rest -= p
            subjects.append(Subject(g, p, None))
        gray = bool(rng.random() < 0.1)
        if gray:
            colours = [str(c) for c in rng.choice(["gray", "black", "white"], size=int(rng.integers(1, 3)), replace=False)]
            subject_colour = None
        else:
            colours = [str(c) for c in rng.choice(COLOUR_NAMES, size=int(rng.integers(1, 3)), replace=False)]
            subject_colour = str(rng.choice(CHROMATIC)) if rng.random() < 0.55 else None
        return Facts(
            subjects=subjects, faces=faces, colours=colours, subject_colour=subject_colour,
            brightness=str(rng.choice(BRIGHTNESS, p=[0.12, 0.18, 0.55, 0.15])), gray=gray,
            position=str(rng.choice(POSITIONS, p=[0.2, 0.6, 0.2])), closeup=bool(rng.random() < 0.2),
        )


def fact_stream(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS[split]]))


def make_facts(table: NounTable, n: int, seed: int = 0, split: str = "train") -> list[Facts]:
    rng, sampler = fact_stream(seed, split), FactSampler(table)
    return [sampler(rng) for _ in range(n)]


def held_out_facts(table: NounTable, n: int = 500, refs: int = 5, seed: int = 0) -> tuple[list[Facts], list[list[str]]]:
    """``n`` fact sets from the ``test`` stream, ``refs`` grammar references each."""
    facts = make_facts(table, n, seed, "test")
    return facts, [references(f, refs, 10_000 + i, table) for i, f in enumerate(facts)]


def build_tokenizer(table: NounTable, seed: int = 0, sentences: int = 60000) -> Tokenizer:
    """Words of ``sentences`` grammar sentences (their own seed stream), plus every noun, plural and
    kind word, so the decoder can say any group even if the sample missed it."""
    rng = random.Random(seed + 1000)
    text = [say(f, rng, table) for f in make_facts(table, sentences, seed, "tokenizer")]
    extra = [w for g in table.groups for w in (g.noun, g.plural)] + table.kinds
    return Tokenizer.build(text + extra, min_count=1)


class FactBatches:
    """Fresh random (fact ids, sentence tokens) batches every call: no epochs, no fixed set.

    ``sample`` has the shape the trainer and the caption GAN expect from any data source:
    (encoder input, padded token tensor, what was drawn).
    """

    def __init__(self, coder: FactCoder, tokenizer: Tokenizer, max_len: int, seed: int) -> None:
        self.coder = coder
        self.tok = tokenizer
        self.pad_id = tokenizer.pad_id
        self.max_len = max_len
        self.sampler = FactSampler(coder.table)
        self.rng = fact_stream(seed, "train")
        self.words = random.Random(seed)

    def tokens(self, sentences: list[str]) -> torch.Tensor:
        rows = []
        for s in sentences:
            ids = self.tok.encode(s)
            rows.append(ids if len(ids) <= self.max_len + 1 else ids[: self.max_len] + [self.tok.eos_id])
        out = np.full((len(rows), max(len(r) for r in rows)), self.pad_id, np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return torch.from_numpy(out)

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor, list[Facts]]:
        facts = [self.sampler(self.rng) for _ in range(n)]
        sentences = [say(f, self.words, self.coder.table) for f in facts]
        return torch.from_numpy(self.coder.encode_batch(facts)), self.tokens(sentences), facts


__all__ = ["FactSampler", "FactBatches", "make_facts", "held_out_facts", "build_tokenizer", "fact_stream", "SPLITS"]
