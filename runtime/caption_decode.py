"""Decoding over an exported decoder step, in numpy: greedy, beam search and nucleus sampling.

The captioners (image and fact) export one decoder *step* with its recurrent state explicit,
and this module drives the loop. The rules that keep captions from degenerating apply to every
search alike (``DecodeRules``, unless ``constrained=False``):

* no word n-gram occurs twice (``no_repeat_ngram``, default 3): a token that would complete an
  n-gram already in the hypothesis gets -inf, so "a big ball a big ball ..." cannot happen;
* ``<eos>`` is blocked until ``min_tokens`` tokens exist, so no caption is empty;
* at the last allowed step only ``<eos>`` is allowed, so every caption ends with its end token
  rather than at the cap;
* ``<pad> <bos> <unk>`` are never produced.

``constrained=False`` applies none of them: the graphs' own argmax decode, which the export
verifier compares with PyTorch's greedy decode token for token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

State = dict[str, np.ndarray]
StepFn = Callable[[np.ndarray, State], tuple[np.ndarray, State]]  # (tokens [B], state) -> (logits [B, V], state)


@dataclass(frozen=True)
class DecodeRules:
    bos: int
    eos: int
    pad: int
    unk: int
    max_len: int  # tokens generated at most, <eos> included
    no_repeat_ngram: int = 3
    min_tokens: int = 2
    constrained: bool = True


def banned_tokens(seq: list[int], n: int) -> list[int]:
    """Tokens that would repeat an n-gram of ``seq`` if appended."""
    if n <= 0 or len(seq) < n - 1:
        return []
    if n == 1:
        return list(set(seq))
    head = tuple(seq[len(seq) - (n - 1):])
    return [seq[i + n - 1] for i in range(len(seq) - n + 1) if tuple(seq[i : i + n - 1]) == head]


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def apply_rules(logp: np.ndarray, prefixes: list[list[int]], t: int, rules: DecodeRules) -> np.ndarray:
    """``logp`` [rows, vocab] with every token no caption may take next at step ``t`` set to -inf."""
    if not rules.constrained:
        return logp
    logp = logp.copy()
    logp[:, [rules.bos, rules.pad, rules.unk]] = -np.inf
    if t >= rules.max_len - 1:  # out of room: the caption ends here, with its end token
        logp[:] = -np.inf
        logp[:, rules.eos] = 0.0
        return logp
    for row, prefix in enumerate(prefixes):
        if len(prefix) < rules.min_tokens:
            logp[row, rules.eos] = -np.inf
        banned = banned_tokens(prefix, rules.no_repeat_ngram)
        if banned:
            logp[row, banned] = -np.inf
    return logp


def _left_to_right(step: StepFn, state: State, rows: int, rules: DecodeRules,
                   choose: Callable[[np.ndarray], np.ndarray], temperature: float = 1.0) -> list[list[int]]:
    """One token per row per step, picked by ``choose`` from the rule-masked log-probabilities."""
    token = np.full(rows, rules.bos, np.int64)
    done = np.zeros(rows, bool)
    out: list[list[int]] = [[] for _ in range(rows)]
    for t in range(rules.max_len):
        logits, state = step(token, state)
        token = choose(apply_rules(log_softmax(logits.astype(np.float64) / temperature), out, t, rules))
        for i in np.flatnonzero(~done):
            if token[i] == rules.eos:
                done[i] = True
            else:
                out[i].append(int(token[i]))
        if done.all():
            break
    return out


def greedy(step: StepFn, state: State, rows: int, rules: DecodeRules) -> list[list[int]]:
    """Argmax at every step, ``rows`` captions as one batch -> token ids (without <bos>/<eos>)."""
    return _left_to_right(step, state, rows, rules, lambda logp: logp.argmax(axis=1))


def sample(step: StepFn, state: State, rows: int, rules: DecodeRules, rng: np.random.Generator,
           temperature: float = 0.8, top_p: float = 0.9) -> list[list[int]]:
    """Nucleus sampling (the smallest set of tokens holding ``top_p`` of the probability, at
    ``temperature``) under the same rules: varied captions over a stream, nothing the rules forbid."""
    if temperature <= 0 or not 0 < top_p <= 1:
        raise ValueError(f"temperature must be > 0 and top_p in (0, 1], got {temperature}, {top_p}")

    def choose(logp: np.ndarray) -> np.ndarray:
        token = np.empty(len(logp), np.int64)
        for i, row in enumerate(logp):
            p = np.exp(row - row.max())
            p /= p.sum()
            order = np.argsort(-p, kind="stable")
            keep = order[: int(np.searchsorted(np.cumsum(p[order]), top_p)) + 1]
            token[i] = keep[rng.choice(len(keep), p=p[keep] / p[keep].sum())]
        return token

    return _left_to_right(step, state, rows, rules, choose, temperature)


def beam_search(step: StepFn, state: State, beam: int, rules: DecodeRules, length_penalty: float = 0.0) -> list[int]:
    """Beam search for one input (state rows = 1) -> the best token ids (without <bos>/<eos>).

    Scores are summed log-probabilities; finished captions are ranked by
    ``score / length ** length_penalty`` (length counts the end token; 0 = the most probable
    sequence, 1 = mean log-probability per token, so wide beams do not prefer the shortest
    caption). The search ends once ``beam`` captions have finished. At ``beam == 1`` it takes
    exactly the greedy path.
    """
    if beam < 1:
        raise ValueError(f"beam width must be at least 1, got {beam}")
    live: list[list[int]] = [[]]
    scores = np.zeros(1, np.float64)
    token = np.array([rules.bos], np.int64)
    finished: list[tuple[float, list[int]]] = []  # (ranking score, tokens)

    def rank(score: float, length: int) -> float:
        return score / (max(1, length) ** length_penalty) if length_penalty else score

    for t in range(rules.max_len):
        logits, state = step(token, state)
        logp = apply_rules(log_softmax(logits.astype(np.float64)), live, t, rules)
        cand = (scores[:, None] + logp).ravel()
        order = np.argsort(-cand, kind="stable")[: 2 * beam]  # ties: lowest index, like argmax
        vocab = logp.shape[1]
        rows, words, new_scores = [], [], []
        for flat in order:
            if not np.isfinite(cand[flat]):
                break
            row, word = divmod(int(flat), vocab)
            if word == rules.eos:
                finished.append((rank(cand[flat], len(live[row]) + 1), live[row]))
            else:
                rows.append(row)
                words.append(word)
                new_scores.append(cand[flat])
            if len(rows) == beam:
                break
        if len(finished) >= beam or not rows:
            break
        if t == rules.max_len - 1:  # unconstrained only: the live beams end here, unterminated
            finished += [(rank(s, len(live[r]) + 1), live[r] + [w]) for r, w, s in zip(rows, words, new_scores)]
            break
        index = np.array(rows)
        live = [live[r] + [w] for r, w in zip(rows, words)]
        scores = np.array(new_scores)
        token = np.array(words, np.int64)
        state = {k: v[index] for k, v in state.items()}
    return max(finished, key=lambda f: f[0])[1]  # max keeps the first of equals: the earliest found


__all__ = ["DecodeRules", "greedy", "sample", "beam_search", "apply_rules", "banned_tokens", "log_softmax"]
