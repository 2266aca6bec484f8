"""Caption metrics: BLEU-1..4, CIDEr-D, distinct-n, casual register, unsupported nouns (torch-free;
used in training and benchmarks).

Scorers are established packages, not hand-written metrics: BLEU from sacrebleu (corpus
BLEU, multiple references, ``tokenize="none"`` on our own word split, reported on a 0..1
scale), CIDEr-D from pycocoevalcap when it is installed. distinct-n is the ratio of unique
to total n-grams over all generated captions (the usual diversity measure).
"""

from __future__ import annotations

from stylize_rt.caption_facts import ALTERNATIVE, COLOUR_NAMES, Facts, NounTable
from stylize_rt.tokenizer import split_words

# Spoken-style markers: a caption is "casual" when it has at least one (a filler or interjection,
# a contraction, "!" or "?", or a hedge/tag word).
FILLERS = frozenset({"oh", "um", "uh", "hmm", "hm", "well", "so", "okay", "alright", "yeah", "yep", "hey", "whoa",
                     "wow", "ooh", "aw", "aww", "huh", "look", "hi", "hello"})
HEDGES = frozenset({"kinda", "pretty", "super", "totally", "maybe", "probably", "honestly", "cute", "cool", "nice",
                    "neat", "yum", "sweet", "mmm", "weird", "definitely", "guess", "think", "clue", "guessing", "just"})
PERSON_WORDS = frozenset({"person", "people", "someone", "somebody", "face", "faces"})


def _tok(text: str) -> str:
    return " ".join(split_words(text))


def bleu_scores(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """Corpus BLEU-1..4 (0..1) with sacrebleu; every hypothesis may have several references."""
    from sacrebleu.metrics import BLEU  # the [train] extra's scorer, needed only when scoring

    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError("need one non-empty reference list per hypothesis")
    if any(not refs for refs in references):
        raise ValueError("every hypothesis needs at least one reference")
    width = max(len(r) for r in references)
    # sacrebleu wants equally long reference streams; repeating a reference changes nothing
    # (clipped counts take the max over references, the closest length is the same).
    streams = [[_tok(refs[min(k, len(refs) - 1)]) for refs in references] for k in range(width)]
    hyps = [_tok(h) for h in hypotheses]
    out = {}
    for n in range(1, 5):
        metric = BLEU(tokenize="none", max_ngram_order=n, effective_order=False)
        out[f"bleu{n}"] = metric.corpus_score(hyps, streams).score / 100.0
    return out


def cider_score(hypotheses: list[str], references: list[list[str]]) -> float | None:
    """CIDEr-D (pycocoevalcap's scorer) on our tokenization; None when the package is absent."""
    try:
        from pycocoevalcap.cider.cider import Cider  # optional scorer
    except ImportError:
        return None
    gts = {i: [_tok(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [_tok(h)] for i, h in enumerate(hypotheses)}
    score, _ = Cider().compute_score(gts, res)
    return float(score)


def distinct_n(captions: list[str], n: int) -> float:
    """Unique n-grams / all n-grams over the captions (0 when there are none)."""
    grams = [tuple(w[i : i + n]) for w in (split_words(c) for c in captions) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def casual_markers(caption: str) -> int:
    """How many spoken-style markers ``caption`` has (see ``FILLERS``/``HEDGES``)."""
    words = split_words(caption)
    return sum(w in FILLERS or w in HEDGES or "'" in w or w in ("!", "?") for w in words)


def casual_share(captions: list[str], at_least: int = 1) -> float:
    """Fraction of captions with at least ``at_least`` casual markers."""
    return sum(casual_markers(c) >= at_least for c in captions) / len(captions) if captions else 0.0


class NounChecker:
    """Finds the nouns a caption says that its facts do not back up (an invented object)."""

    def __init__(self, table: NounTable) -> None:
        self.table = table
        self.index: dict[tuple[str, ...], set[int]] = {}
        for gi, g in enumerate(table.groups):
            for word in {g.noun, g.plural, *table.group_kinds(gi)}:
                self.index.setdefault(tuple(split_words(word)), set()).add(gi)
        for c in COLOUR_NAMES:  # "orange" is a fruit kind and a colour: colours are not nouns here
            self.index.pop((c,), None)
        self.longest = max(len(k) for k in self.index)

    def unsupported(self, caption: str, facts: Facts) -> list[str]:
        allowed = {facts.subjects[0].group} if facts.subjects else set()
        if len(facts.subjects) > 1 and facts.subjects[1].prob >= ALTERNATIVE:
            allowed.add(facts.subjects[1].group)
        people_ok = facts.faces > 0 or bool(
            facts.subjects and self.table.groups[facts.subjects[0].group].category in ("clothing", "person"))
        words, bad, i = split_words(caption), [], 0
        while i < len(words):
            for n in range(self.longest, 0, -1):
                key = tuple(words[i : i + n])
                if key in self.index:
                    if key[0] in PERSON_WORDS or key[-1] in PERSON_WORDS:
                        ok = people_ok or bool(self.index[key] & allowed)
                    else:
                        ok = key in (("thing",), ("things",)) or bool(self.index[key] & allowed)
                    if not ok:
                        bad.append(" ".join(key))
                    i += n
                    break
            else:
                i += 1
        return bad


def caption_scores(hypotheses: list[str], references: list[list[str]]) -> dict[str, float | None]:
    scores: dict[str, float | None] = dict(bleu_scores(hypotheses, references))
    scores["cider"] = cider_score(hypotheses, references)
    scores["distinct1"] = distinct_n(hypotheses, 1)
    scores["distinct2"] = distinct_n(hypotheses, 2)
    scores["captions"] = len(hypotheses)
    return scores


def format_scores(scores: dict) -> str:
    parts = [f"BLEU-{n} {scores[f'bleu{n}']:.3f}" for n in range(1, 5)]
    cider = scores.get("cider")
    parts.append("CIDEr-D n/a (pip install pycocoevalcap)" if cider is None else f"CIDEr-D {cider:.3f}")
    parts.append(f"distinct-2 {scores['distinct2']:.3f}")
    return ", ".join(parts)


__all__ = ["bleu_scores", "cider_score", "distinct_n", "caption_scores", "format_scores", "casual_markers",
           "casual_share", "NounChecker"]
