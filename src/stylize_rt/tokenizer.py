"""Word-level caption tokenizer, saved as JSON beside the weights.

It lives in the runtime (not in training) because the ONNX captioner needs it to turn
token ids back into words without torch. Text is lower-cased and punctuation marks
become their own tokens, so "Oh, there's a ball!" -> ["oh", ",", "there's", "a", "ball", "!"];
apostrophes stay inside words because spoken contractions ("there's") are one word.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from stylize_rt.errors import BadInputError
from stylize_rt.fileio import read_json, write_atomic

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
FORMAT = "stylize_rt.word_tokenizer"
FORMAT_VERSION = 1

_TOKEN_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")
_NO_SPACE_BEFORE = {",", ".", "!", "?", ";", ":"}


def split_words(text: str) -> list[str]:
    """Lower-case ``text`` and split it into words and single punctuation marks."""
    return _TOKEN_RE.findall(text.lower())


def join_words(words: Sequence[str]) -> str:
    """Inverse of ``split_words`` for display: no space before punctuation."""
    out = ""
    for word in words:
        if out and word not in _NO_SPACE_BEFORE:
            out += " "
        out += word
    return out


class Tokenizer:
    """Maps words to ids and back. Ids 0..3 are ``<pad> <bos> <eos> <unk>`` in that order."""

    def __init__(self, words: Iterable[str]) -> None:
        vocab = list(SPECIALS)
        seen = set(vocab)
        for word in words:
            if word not in seen:
                vocab.append(word)
                seen.add(word)
        self.itos: list[str] = vocab
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(vocab)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = (self.stoi[s] for s in SPECIALS)

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.itos == other.itos

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> "Tokenizer":
        """Vocabulary of every word seen ``min_count`` times, most frequent first (ties alphabetical)."""
        counts = Counter(w for c in captions for w in split_words(c))
        words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        return cls(words)

    def encode(self, text: str, add_special: bool = True) -> list[int]:
        ids = [self.stoi.get(w, self.unk_id) for w in split_words(text)]
        return [self.bos_id, *ids, self.eos_id] if add_special else ids

    def decode(self, ids: Iterable[int]) -> str:
        """Ids to text; stops at ``<eos>``, skips ``<pad>``/``<bos>``."""
        words = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            words.append(self.itos[i] if 0 <= i < len(self.itos) else UNK)
        return join_words(words)

    def digest(self) -> str:
        """Short hash of the vocabulary: stored beside weights to catch a swapped tokenizer.json."""
        return hashlib.sha256(json.dumps(self.itos).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": FORMAT_VERSION, "specials": list(SPECIALS), "vocab": self.itos}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON atomically (temp file in the same folder, then rename)."""
        return write_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Tokenizer":
        path = Path(path)
        data = read_json(path, "tokenizer")
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("vocab"), list):
            raise BadInputError(f"{path} is not a stylize-rt tokenizer JSON")
        vocab = data["vocab"]
        if tuple(vocab[: len(SPECIALS)]) != SPECIALS or len(set(vocab)) != len(vocab):
            raise BadInputError(f"corrupt tokenizer {path}: special tokens missing or duplicate words")
        return cls(vocab[len(SPECIALS):])


__all__ = ["Tokenizer", "split_words", "join_words", "PAD", "BOS", "EOS", "UNK", "SPECIALS"]
