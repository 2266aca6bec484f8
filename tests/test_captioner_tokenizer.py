"""Word-level tokenizer: round trips, special tokens, bad files (no torch needed)."""

from __future__ import annotations

import json

import pytest

from stylize_rt.errors import BadInputError
from stylize_rt.tokenizer import SPECIALS, Tokenizer, split_words

CAPTIONS = ["Oh, there's a little red ball right next to a big blue box!", "i see two little green triangles"]


def test_split_keeps_contractions_and_separates_punctuation():
    assert split_words("Oh, there's a BALL!") == ["oh", ",", "there's", "a", "ball", "!"]


def test_encode_decode_round_trip():
    tok = Tokenizer.build(CAPTIONS)
    assert tok.itos[:4] == list(SPECIALS)
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    ids = tok.encode(CAPTIONS[0])
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id and tok.unk_id not in ids
    assert tok.decode(ids) == "oh, there's a little red ball right next to a big blue box!"
    # decoding stops at <eos> and skips padding
    assert tok.decode(ids + [tok.pad_id, tok.stoi["ball"]]) == tok.decode(ids)


def test_unknown_words_map_to_unk():
    tok = Tokenizer.build(CAPTIONS)
    ids = tok.encode("a purple ball", add_special=False)
    assert ids == [tok.stoi["a"], tok.unk_id, tok.stoi["ball"]]
    assert tok.decode(ids) == "a <unk> ball"


def test_json_round_trip(tmp_path):
    tok = Tokenizer.build(CAPTIONS)
    path = tok.save(tmp_path / "sub" / "tokenizer.json")
    loaded = Tokenizer.load(path)
    assert loaded == tok and loaded.stoi == tok.stoi
    assert not list(path.parent.glob("*.tmp"))


@pytest.mark.parametrize(
    "content",
    ["", "{not json", json.dumps({"format": "other", "vocab": []}),
     json.dumps({"format": "stylize_rt.word_tokenizer", "vocab": ["a", "b"]})],
)
def test_bad_tokenizer_files_are_one_line_errors(tmp_path, content):
    path = tmp_path / "tokenizer.json"
    path.write_text(content)
    with pytest.raises(BadInputError) as err:
        Tokenizer.load(path)
    assert "\n" not in str(err.value)


def test_missing_tokenizer(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        Tokenizer.load(tmp_path / "nope.json")
