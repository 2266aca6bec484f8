"""What the fact captioner knows about a frame, and how that becomes the decoder's input.

The captioner does not describe pixels: the runtime recognises *facts* (the encoder's likeliest
noun groups with their probabilities, a face count, colours, brightness, layout), and a small
decoder says them casually. The same facts are drawn synthetically in training, so this module
is the one definition both sides share (torch-free; numpy only):

* ``Facts`` / ``Subject``: one frame's facts;
* ``NounTable``: ImageNet's 1000 classes -> speakable noun groups ("all dog breeds -> dog"),
  saved as ``nouns.json`` beside the model (built by ``stylize_rt.training.caption_nouns``);
* the confidence thresholds the grammar hedges at, and the 13 *slots* that turn ``Facts`` into
  fact-token ids. Probabilities enter as bins whose edges are the thresholds, so hedging is a
  lookup for the decoder and the thresholds live in one place.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from stylize_rt.errors import BadInputError
from stylize_rt.fileio import read_json, write_atomic

# Top-group probability: >= CONFIDENT say it plainly; >= PROBABLE hedge ("looks like"); below
# that "not sure what that is". A second group >= ALTERNATIVE is offered when the first is not
# confident ("a temple, or maybe a church"). Chosen on the packaged photos: docs/CAPTIONER.md.
CONFIDENT = 0.50
PROBABLE = 0.25
ALTERNATIVE = 0.12
MENTION_UNSURE = 0.12  # an unsure caption may still add "maybe a X?" at this probability
P_EDGES = (0.08, ALTERNATIVE, 0.15, PROBABLE, CONFIDENT)  # every threshold the grammar uses

COLOUR_NAMES = ("red", "orange", "yellow", "green", "teal", "blue", "purple", "pink", "brown", "black", "white", "gray")
CHROMATIC = ("red", "orange", "yellow", "green", "teal", "blue", "purple", "pink", "brown")
BRIGHTNESS = ("dark", "dim", "normal", "bright")
POSITIONS = ("left", "middle", "right")
# "clothing": something a person wears, so the grammar speaks of someone wearing it.
CATEGORIES = ("animal", "person", "clothing", "food", "drink", "vehicle", "place", "scenery", "plant", "thing")
MAX_FACES = 5
SLOTS = ("noun1", "kind1", "cat1", "p1", "noun2", "faces", "colour1", "colour2", "subjcolour", "bright", "gray",
         "pos", "close")
NOUNS_FORMAT = "stylize_rt.caption_nouns"


@dataclass
class Subject:
    group: int  # index into NounTable.groups
    prob: float  # summed softmax probability of the group's classes
    kind: str | None = None  # e.g. "beagle" for "dog", when one class holds most of the group


@dataclass
class Facts:
    subjects: list[Subject] = field(default_factory=list)  # likeliest group first (up to 3)
    faces: int = 0
    colours: list[str] = field(default_factory=list)  # the frame's dominant colours, most first (<= 2)
    subject_colour: str | None = None  # colour where the encoder looks, when it differs from the background
    brightness: str = "normal"
    gray: bool = False  # black-and-white picture
    position: str = "middle"  # where the subject (or the biggest face) is
    closeup: bool = False  # the subject (or a face) fills much of the frame

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Facts":
        data = dict(data)
        data["subjects"] = [Subject(**s) for s in data.get("subjects", [])]
        return cls(**data)


def confidence(prob: float) -> str:
    """``high`` (say it), ``mid`` (hedge) or ``low`` (not sure)."""
    return "high" if prob >= CONFIDENT else "mid" if prob >= PROBABLE else "low"


def article(word: str) -> str:
    return "an" if re.match(r"[aeio]|u[^n]|hour", word) else "a"


@dataclass(frozen=True)
class NounGroup:
    noun: str
    plural: str
    category: str


class NounTable:
    """ImageNet class -> speakable noun group (+ an optional kind word per class)."""

    def __init__(self, groups: list[NounGroup], class_group: list[int], class_kind: list[str | None]) -> None:
        if len(class_group) != len(class_kind):
            raise ValueError("class_group and class_kind differ in length")
        bad = sorted({g.category for g in groups} - set(CATEGORIES))
        if bad or any(not 0 <= g < len(groups) for g in class_group):
            raise ValueError(f"bad noun table (unknown categories {bad} or group ids out of range)")
        self.groups = groups
        self.class_group = np.asarray(class_group, np.int64)
        self.class_kind = list(class_kind)
        self.members = [np.flatnonzero(self.class_group == g) for g in range(len(groups))]

    def __len__(self) -> int:
        return len(self.groups)

    @property
    def classes(self) -> int:
        return len(self.class_group)

    @property
    def kinds(self) -> list[str]:
        return sorted({k for k in self.class_kind if k})

    def group_kinds(self, group: int) -> list[str]:
        return sorted({self.class_kind[c] for c in self.members[group] if self.class_kind[c]})

    def one_hot(self) -> np.ndarray:
        """[classes, groups] 0/1 matrix: class probabilities @ it = group probabilities."""
        out = np.zeros((self.classes, len(self.groups)), np.float32)
        out[np.arange(self.classes), self.class_group] = 1.0
        return out

    def to_dict(self) -> dict:
        return {"format": NOUNS_FORMAT, "version": 1,
                "groups": [asdict(g) for g in self.groups],
                "class_group": self.class_group.tolist(), "class_kind": self.class_kind}

    def save(self, path: str | os.PathLike[str]) -> Path:
        return write_atomic(path, json.dumps(self.to_dict()) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "NounTable":
        data = read_json(Path(path), "noun table")
        if not isinstance(data, dict) or data.get("format") != NOUNS_FORMAT:
            raise BadInputError(f"{path} is not a stylize-rt noun table")
        try:
            groups = [NounGroup(**g) for g in data["groups"]]
            return cls(groups, [int(g) for g in data["class_group"]], list(data["class_kind"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInputError(f"corrupt noun table {path}: {exc}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NounTable) and self.to_dict() == other.to_dict()


# --- slots: Facts -> fact-token ids -------------------------------------------------------
def fact_vocabulary(table: NounTable) -> list[str]:
    """Every fact token a slot can hold; "none" is id 0."""
    v = ["none"]
    v += [f"noun:{g.noun}" for g in table.groups]
    v += [f"kind:{k}" for k in table.kinds]
    v += [f"cat:{c}" for c in CATEGORIES]
    v += [f"p:{i}" for i in range(len(P_EDGES) + 1)]
    v += [f"faces:{i}" for i in range(MAX_FACES + 1)]
    v += [f"colour:{c}" for c in COLOUR_NAMES]
    v += [f"bright:{b}" for b in BRIGHTNESS]
    v += ["gray:yes", "gray:no"] + [f"pos:{p}" for p in POSITIONS] + ["close:yes", "close:no"]
    return v


def p_bin(prob: float, edges: tuple[float, ...] = P_EDGES) -> int:
    return int(np.searchsorted(np.asarray(edges), prob, side="right"))


def fact_tokens(facts: Facts, table: NounTable, edges: tuple[float, ...] = P_EDGES) -> list[str]:
    """The 13 slot tokens of ``facts`` (one per ``SLOTS`` entry)."""
    s1 = facts.subjects[0] if facts.subjects else None
    s2 = facts.subjects[1] if len(facts.subjects) > 1 else None
    g1 = table.groups[s1.group] if s1 else None
    return [
        f"noun:{g1.noun}" if g1 else "none",
        f"kind:{s1.kind}" if s1 and s1.kind else "none",
        f"cat:{g1.category}" if g1 else "none",
        f"p:{p_bin(s1.prob, edges)}" if s1 else "p:0",
        f"noun:{table.groups[s2.group].noun}" if s2 is not None and s2.prob >= ALTERNATIVE else "none",
        f"faces:{min(facts.faces, MAX_FACES)}",
        f"colour:{facts.colours[0]}" if facts.colours else "none",
        f"colour:{facts.colours[1]}" if len(facts.colours) > 1 else "none",
        f"colour:{facts.subject_colour}" if facts.subject_colour else "none",
        f"bright:{facts.brightness}",
        "gray:yes" if facts.gray else "gray:no",
        f"pos:{facts.position}",
        "close:yes" if facts.closeup else "close:no",
    ]


class FactCoder:
    """Facts -> int64 fact-token ids [len(SLOTS)], with the vocabulary a model was trained on."""

    def __init__(self, table: NounTable, vocab: list[str] | None = None,
                 edges: tuple[float, ...] = P_EDGES) -> None:
        self.table = table
        self.vocab = list(vocab) if vocab is not None else fact_vocabulary(table)
        self.index = {t: i for i, t in enumerate(self.vocab)}
        self.edges = tuple(float(e) for e in edges)

    def encode(self, facts: Facts) -> np.ndarray:
        tokens = fact_tokens(facts, self.table, self.edges)
        missing = [t for t in tokens if t not in self.index]
        if missing:
            raise BadInputError(f"fact tokens {missing} are not in the model's fact vocabulary")
        return np.array([self.index[t] for t in tokens], np.int64)

    def encode_batch(self, facts: list[Facts]) -> np.ndarray:
        return np.stack([self.encode(f) for f in facts]) if facts else np.zeros((0, len(SLOTS)), np.int64)

    def to_dict(self) -> dict:
        return {"slots": list(SLOTS), "vocab": self.vocab, "p_edges": list(self.edges)}


def describe(facts: Facts, table: NounTable) -> str:
    """One line for logs and contact sheets: "cat 0.92, big cat 0.02; colours brown+orange"."""
    subj = ", ".join(f"{table.groups[s.group].noun}{'/' + s.kind if s.kind else ''} {s.prob:.2f}"
                     for s in facts.subjects[:2])
    extra = [f"faces {facts.faces}"] if facts.faces else []
    extra.append(f"colours {'+'.join(facts.colours) or '-'}")
    if facts.subject_colour:
        extra.append(f"subject {facts.subject_colour}")
    if facts.brightness != "normal":
        extra.append(facts.brightness)
    if facts.gray:
        extra.append("b&w")
    if facts.position != "middle":
        extra.append(facts.position)
    if facts.closeup:
        extra.append("close-up")
    return f"{subj or 'nothing'}; {', '.join(extra)}"


__all__ = [
    "Facts", "Subject", "NounTable", "NounGroup", "FactCoder", "fact_vocabulary", "fact_tokens", "p_bin",
    "confidence", "article", "describe", "CONFIDENT", "PROBABLE", "ALTERNATIVE", "MENTION_UNSURE", "P_EDGES",
    "COLOUR_NAMES", "CHROMATIC", "BRIGHTNESS", "POSITIONS", "CATEGORIES", "SLOTS", "MAX_FACES",
]
