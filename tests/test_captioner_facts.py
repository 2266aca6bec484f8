"""Facts: the noun table, slots, the grammar, synthetic fact sets, and recognising facts in pixels.

No trained model here: the grammar is checked against the facts it was given, the extractor's
colour/brightness/face rules against images whose answer is known.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from stylize_rt.caption_facts import (
    P_EDGES,
    PROBABLE,
    SLOTS,
    FactCoder,
    Facts,
    NounTable,
    Subject,
    fact_tokens,
    fact_vocabulary,
    p_bin,
)
from stylize_rt.errors import BadInputError
from stylize_rt.models import get_model
from stylize_rt.runtime.caption_facts import FaceDetector, colour_facts, crop_box, crop_for_encoder
from stylize_rt.training.caption_grammar import say
from stylize_rt.training.caption_metrics import NounChecker, casual_share
from stylize_rt.training.caption_nouns import build_table
from stylize_rt.training.caption_synth import make_facts

TABLE = build_table()


def group(noun: str) -> int:
    return next(i for i, g in enumerate(TABLE.groups) if g.noun == noun)


# --- the noun table ---------------------------------------------------------------------------
def test_every_imagenet_class_is_in_exactly_one_group_with_a_known_category():
    assert TABLE.classes == 1000 and len(TABLE) == 271
    assert sorted(np.concatenate(TABLE.members).tolist()) == list(range(1000))
    assert TABLE.one_hot().sum(axis=1).tolist() == [1.0] * 1000


@pytest.mark.parametrize("classes,noun", [((281, 282, 283, 284, 285), "cat"), ((151, 207, 254, 263), "dog"),
                                          ((657, 744, 812), "rocket"), ((504, 968), "cup"), ((967, 550), "coffee"),
                                          ((291, 292), "big cat"), ((985,), "flower"), ((698, 663), "temple")])
def test_classes_become_the_nouns_people_say(classes, noun):
    assert {TABLE.groups[int(TABLE.class_group[c])].noun for c in classes} == {noun}


def test_shipped_noun_table_is_the_one_the_builder_makes(tmp_path):
    """The runtime's nouns.json comes from `python -m stylize_rt.training.caption_nouns`: one definition."""
    shipped = NounTable.load(get_model("captioner").path("nouns"))
    assert shipped == TABLE
    assert NounTable.load(TABLE.save(tmp_path / "nouns.json")) == TABLE
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(BadInputError, match="not a stylize-rt noun table"):
        NounTable.load(tmp_path / "bad.json")


# --- slots ------------------------------------------------------------------------------------
def test_confidence_bins_have_the_grammar_thresholds_as_edges():
    assert [p_bin(p) for p in (0.0, 0.079, 0.08, 0.13, 0.2, 0.25, 0.49, 0.5, 1.0)] == [0, 0, 1, 2, 3, 4, 4, 5, 5]
    assert PROBABLE in P_EDGES


def test_facts_become_thirteen_known_tokens():
    coder = FactCoder(TABLE)
    facts = Facts([Subject(group("cat"), 0.9, "tabby"), Subject(group("dog"), 0.05)], faces=7, colours=["brown"],
                  brightness="dim", position="left")
    tokens = fact_tokens(facts, TABLE)
    assert len(tokens) == len(SLOTS) == 13
    assert tokens[:6] == ["noun:cat", "kind:tabby", "cat:animal", "p:5", "none", "faces:5"]  # faces capped at 5
    ids = coder.encode(facts)
    assert ids.dtype == np.int64 and [coder.vocab[i] for i in ids] == tokens
    assert coder.encode_batch([facts, Facts()]).shape == (2, 13)
    assert len(set(fact_vocabulary(TABLE))) == len(fact_vocabulary(TABLE))
    with pytest.raises(BadInputError, match="fact vocabulary"):
        FactCoder(TABLE, ["none"]).encode(facts)


# --- the grammar --------------------------------------------------------------------------------
def test_grammar_says_only_what_the_facts_support_and_says_it_casually():
    facts = make_facts(TABLE, 400, seed=3, split="test")
    rng = random.Random(0)
    sentences = [say(f, rng, TABLE) for f in facts]
    checker = NounChecker(TABLE)
    invented = [(s, checker.unsupported(s, f)) for s, f in zip(sentences, facts) if checker.unsupported(s, f)]
    assert not invented, invented[:3]
    assert casual_share(sentences) > 0.9
    assert len(set(sentences)) > 0.95 * len(sentences)


def test_an_unsure_caption_says_so_and_names_colours_instead_of_an_object():
    facts = Facts([Subject(group("bubble"), 0.05), Subject(group("ball"), 0.03)], colours=["blue", "white"])
    rng = random.Random(1)
    for _ in range(30):
        text = say(facts, rng, TABLE)
        assert any(h in text for h in ("not sure", "no idea", "hard to", "can't", "no clue", "don't know",
                                       "what even", "tough one")), text
        assert "blue" in text, text
        assert "ball" not in text, text


def test_many_paraphrases_per_fact_set_never_one_template():
    facts = Facts([Subject(group("cat"), 0.92)], colours=["brown", "orange"])
    rng = random.Random(0)
    sentences = [say(facts, rng, TABLE) for _ in range(30)]
    assert len(set(sentences)) >= 25 and all("cat" in s for s in sentences)


def test_people_come_from_faces_and_wear_the_clothing_noun():
    facts = Facts([Subject(group("helmet"), 0.3)], faces=1, colours=["gray"])
    rng = random.Random(0)
    sentences = [say(facts, rng, TABLE) for _ in range(20)]
    assert all(any(w in s for w in ("person", "someone", "somebody", "face")) for s in sentences), sentences
    assert sum("helmet" in s for s in sentences) >= 10


def test_synthetic_streams_are_reproducible_and_disjoint():
    a, b = make_facts(TABLE, 50, 0, "train"), make_facts(TABLE, 50, 0, "train")
    assert [f.to_dict() for f in a] == [f.to_dict() for f in b]
    test = make_facts(TABLE, 50, 0, "test")
    assert not {str(f.to_dict()) for f in a} & {str(f.to_dict()) for f in test}
    assert Facts.from_dict(a[0].to_dict()) == a[0]


# --- recognising facts in pixels ------------------------------------------------------------------
def test_crop_is_the_centre_square():
    assert crop_box(360, 640) == (22, 162, 315)
    assert crop_for_encoder(np.zeros((360, 640, 3), np.uint8)).shape == (224, 224, 3)
    assert crop_for_encoder(np.zeros((5, 3, 3), np.uint8)).shape == (224, 224, 3)


@pytest.mark.parametrize("rgb,colour,brightness,gray", [
    ((30, 60, 200), "blue", "dim", False), ((240, 240, 240), "white", "bright", True),
    ((10, 10, 10), "black", "dark", True), ((240, 60, 60), "red", "normal", False),
    ((40, 160, 40), "green", "normal", False),
])
def test_colour_and_brightness_rules(rgb, colour, brightness, gray):
    image = np.zeros((90, 160, 3), np.uint8) + np.array(rgb, np.uint8)
    colours, bright, is_gray, _ = colour_facts(image)
    assert colours[0] == colour and bright == brightness and is_gray == gray


def test_subject_colour_comes_from_where_the_classifier_looks():
    image = np.zeros((90, 160, 3), np.uint8) + np.array((0, 128, 128), np.uint8)  # teal background
    image[30:60, 60:100] = (255, 140, 0)  # an orange thing in the middle
    weights = np.zeros((90, 160), np.float32)
    weights[30:60, 60:100] = 1.0
    colours, _, _, subject = colour_facts(image, weights)
    assert colours[0] == "teal" and subject == "orange"
    assert colour_facts(image, np.ones((90, 160), np.float32))[3] is None  # the background is not "the subject"


def test_haar_faces_find_the_astronaut_and_no_cat():
    pytest.importorskip("skimage")
    if FaceDetector.cascade_path() is None:
        pytest.skip("this OpenCV has no Haar cascades (OpenCV 5); the project pins 4.x")
    from stylize_rt.training.caption_photos import load_photo

    faces = FaceDetector()
    boxes = faces(load_photo("astronaut"))
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert 0.3 < x + w / 2 < 0.7 and y + h / 2 < 0.5  # her face: upper middle of the frame
    assert faces(load_photo("chelsea")) == [] and faces(np.zeros((4, 4, 3), np.uint8)) == []
