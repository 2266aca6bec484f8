"""Caption metrics: BLEU-1..4, CIDEr-D, distinct-n (torch-free; used in training and benchmarks).

Scorers are established packages, not hand-written metrics: BLEU from sacrebleu (corpus
BLEU, multiple references, ``tokenize="none"`` on our own word split, reported on a 0..1
scale), CIDEr-D from pycocoevalcap when it is installed. distinct-n is the ratio of unique
to total n-grams over all generated captions (the usual diversity measure).
"""

from __future__ import annotations

from stylize_rt.tokenizer import split_words


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


__all__ = ["bleu_scores", "cider_score", "distinct_n", "caption_scores", "format_scores"]
