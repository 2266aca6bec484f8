"""Decoding guarantees (runtime.caption_decode) with a stand-in step model that *wants* to loop or to stop.

No model files: the stand-in is a numpy function with the exported step's interface. The real
graphs are checked the same way in test_captioner_embedded.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from stylize_rt.runtime import caption_decode as dec
from stylize_rt.tokenizer import Tokenizer

TOK = Tokenizer(["a", "big", "ball", "purple", "um", ","])
CYCLE = {TOK.stoi[a]: TOK.stoi[b] for a, b in (("a", "big"), ("big", "ball"), ("ball", "a"))}


def looping_step_stand_in(eos_bias: float, seed: int = 0):
    """Prefers the cycle a -> big -> ball -> a ...; ``eos_bias`` pushes <eos> down (-5) or up (+10)."""
    rng = np.random.default_rng(seed)

    def step(token, state):
        logits = rng.normal(0, 0.3, (len(token), len(TOK)))
        for i, t in enumerate(token):
            logits[i, CYCLE.get(int(t), TOK.stoi["a"])] += 5.0
        logits[:, TOK.eos_id] += eos_bias
        return logits, {k: v.copy() for k, v in state.items()}

    return step


def state(rows: int = 1) -> dict:
    return {"hidden": np.zeros((rows, 2), np.float32), "context": np.zeros((rows, 2), np.float32)}


def rules(**kw) -> dec.DecodeRules:
    return dec.DecodeRules(TOK.bos_id, TOK.eos_id, TOK.pad_id, TOK.unk_id, max_len=kw.pop("max_len", 24), **kw)


def repeats_a_trigram(ids: list[int]) -> bool:
    grams = [tuple(ids[i : i + 3]) for i in range(len(ids) - 2)]
    return len(grams) != len(set(grams))


def test_banned_tokens():
    assert dec.banned_tokens([1, 2, 3, 1, 2], 3) == [3]
    assert dec.banned_tokens([1, 2], 3) == []
    assert dec.banned_tokens([5, 6, 5], 2) == [6]
    assert dec.banned_tokens([5, 6], 0) == []


@pytest.mark.parametrize("eos_bias", [-5.0, 10.0])  # loops forever / wants to stop at once
def test_every_beam_gives_a_nonempty_caption_that_ends_before_the_cap_without_repeats(eos_bias):
    r = rules()
    for beam in range(1, 33):
        ids = dec.beam_search(looping_step_stand_in(eos_bias), state(), beam, r, length_penalty=1.0)
        assert len(ids) >= r.min_tokens, beam  # <eos> is blocked until min_tokens tokens exist
        assert len(ids) <= r.max_len - 1  # the last step can only be <eos>: the caption ends with it
        assert not {TOK.eos_id, TOK.unk_id, TOK.bos_id, TOK.pad_id} & set(ids)
        assert not repeats_a_trigram(ids), (beam, TOK.decode(ids))


def test_without_rules_the_stand_in_does_loop_and_runs_into_the_cap():
    ids = dec.greedy(looping_step_stand_in(-5.0), state(), 1, rules(constrained=False))[0]
    assert repeats_a_trigram(ids) and len(ids) == 24
    blocked = dec.greedy(looping_step_stand_in(-5.0), state(), 1, rules())[0]
    assert not repeats_a_trigram(blocked) and len(blocked) == 23


def test_greedy_never_gives_an_empty_caption_even_when_eos_is_likeliest():
    ids = dec.greedy(looping_step_stand_in(10.0), state(3), 3, rules())
    assert [len(r) for r in ids] == [2, 2, 2]  # min_tokens, then the model's <eos>


def test_beam_one_is_greedy():
    for seed in range(3):
        a = dec.greedy(looping_step_stand_in(0.0, seed), state(), 1, rules())[0]
        b = dec.beam_search(looping_step_stand_in(0.0, seed), state(), 1, rules())
        assert a == b


def test_sampling_keeps_the_rules_and_varies():
    rng = np.random.default_rng(0)
    rows = dec.sample(looping_step_stand_in(-1.0), state(16), 16, rules(), rng, temperature=1.5, top_p=0.95)
    assert all(len(r) >= 2 and not repeats_a_trigram(r) and len(r) <= 23 for r in rows)
    assert len({tuple(r) for r in rows}) > 1
    with pytest.raises(ValueError):
        dec.sample(looping_step_stand_in(0.0), state(), 1, rules(), rng, temperature=0.0)


def test_length_penalty_one_ranks_by_mean_logprob():
    """Two captions: "a big" (log-prob -0.598 over 3 tokens with <eos>) and "a big ball um" (-0.799
    over 5). The summed log-prob prefers the short one, the mean (length penalty 1) the long one."""
    table = {(): {"a": 0.0}, ("a",): {"big": 0.0}, ("a", "big"): {"<eos>": np.log(0.55), "ball": np.log(0.45)},
             ("a", "big", "ball"): {"um": 0.0}, ("a", "big", "ball", "um"): {"<eos>": 0.0}}
    prefixes: list[tuple[str, ...]] = [()]

    def step(token, st):  # state "pid": which prefix each row continues (rows are re-indexed by the search)
        pids = []
        for pid, t in zip(st["pid"], token):
            prefix = prefixes[int(pid)] + ((TOK.itos[int(t)],) if int(t) != TOK.bos_id else ())
            prefixes.append(prefix)
            pids.append(len(prefixes) - 1)
        logits = np.full((len(token), len(TOK)), -np.inf)
        for i, pid in enumerate(pids):
            for word, value in table.get(prefixes[pid], {}).items():
                logits[i, TOK.stoi[word]] = value
        return logits, {"pid": np.array(pids)}

    def best(penalty: float) -> str:
        return TOK.decode(dec.beam_search(step, {"pid": np.zeros(1, int)}, 2, rules(min_tokens=1), penalty))

    assert best(0.0) == "a big"
    assert best(1.0) == "a big ball um"
