"""The shipped captioner on real photos (issue 14's acceptance test): runtime only, no torch.

The photos are the ones installed packages ship (scikit-image's data photos, scikit-learn's
sample images). What counts as naming each photo's subject is written out here, not imported
from the code under test.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from stylize_rt.models import get_model
from stylize_rt.runtime.captioner import Captioner
from stylize_rt.tokenizer import split_words

pytest.importorskip("skimage")
pytest.importorskip("sklearn")

from stylize_rt.training.caption_photos import load_photo

ACCEPTABLE = {
    "chelsea": {"cat", "kitten"},
    "coffee": {"coffee", "espresso", "cup"},
    "rocket": {"rocket", "shuttle", "launch"},
    "astronaut": {"person", "woman", "astronaut", "face", "someone", "somebody"},
    "china": {"temple", "palace", "pagoda", "building"},
    "flower": {"flower", "flowers", "daisy"},
}
CASUAL = {"oh", "um", "uh", "hmm", "so", "okay", "hey", "whoa", "wow", "aw", "aww", "huh", "look", "ooh", "well",
          "yeah", "yep", "alright", "kinda", "pretty", "maybe", "probably", "i think", "cute", "cool", "nice",
          "neat", "yum", "sweet", "guess", "just", "totally", "definitely", "super"}
UNSURE = ("not sure", "no idea", "hard to", "can't", "no clue", "don't know", "what even", "tough one")


def casual(text: str) -> bool:
    words = split_words(text)
    return any(w in CASUAL or "'" in w or w in ("!", "?") for w in words) or "i think" in text


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "stylize_rt", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def captioner():
    cap = Captioner(threads=1)
    yield cap
    cap.close()


@pytest.fixture(scope="module")
def captions(captioner):
    return {name: captioner.caption(load_photo(name)) for name in ACCEPTABLE}


def test_the_embedded_captioner_is_the_fact_captioner():
    model = get_model("captioner")
    for role in ("encoder", "fact_encoder", "decoder_step", "tokenizer", "nouns", "classifier", "weights", "config"):
        assert model.path(role).is_file(), role
    assert "stylize-rt train captioner" in model.source and model.extra["wall_s"]["total_s"] > 0
    config = json.loads(model.path("runtime_config").read_text())
    assert config["input"] == "facts" and config["classifier"]["check"]["passed"]
    total = sum(p.stat().st_size for p in model.directory.iterdir())
    assert total < 14e6  # INT8 classifier 5.5 MB + classifier weights 2.6 MB + decoder graphs ~3 MB


def test_it_names_the_subject_of_at_least_five_of_the_six_photos(captions):
    hits = {name: bool(set(split_words(text)) & ACCEPTABLE[name]) for name, text in captions.items()}
    assert sum(hits.values()) >= 5, captions
    print(json.dumps({n: [captions[n], hits[n]] for n in captions}, indent=1))


def test_the_captions_are_casual_and_not_all_alike(captions):
    texts = list(captions.values())
    assert sum(map(casual, texts)) >= 5, texts
    bigrams = [tuple(w[i : i + 2]) for w in map(split_words, texts) for i in range(len(w) - 1)]
    assert len(set(bigrams)) / len(bigrams) > 0.6, texts  # distinct-2 (the shape model: 0.02)


def test_when_it_does_not_know_it_says_so_and_talks_about_colour(captioner):
    """A blue wall (or a red and white awning): no ImageNet class is likely, so no object is made up."""
    rng = np.random.default_rng(0)
    blue = np.clip(rng.normal((30, 60, 200), 3, (360, 640, 3)), 0, 255).astype(np.uint8)
    stripes = np.where((np.arange(640) // 40 % 2 == 0)[None, :, None], np.array((220, 30, 30), np.uint8),
                       np.array((250, 250, 250), np.uint8)).repeat(360, 0).astype(np.uint8)
    for frame, colour in ((blue, "blue"), (stripes, "red")):
        text, facts = captioner.describe(frame)
        assert facts.subjects[0].prob < 0.25, facts
        assert any(u in text for u in UNSURE) and colour in text, text
        assert not facts.closeup and facts.position == "middle"  # nothing to place in an unsure frame


def test_every_beam_from_1_to_32_ends_with_its_end_token(captioner):
    cap = captioner.spec.max_len
    for name in ("chelsea", "coffee", "astronaut"):
        ids = captioner.preprocess([load_photo(name)])
        for beam in (1, 2, 3, 5, 8, 13, 20, 32):
            tokens = captioner.beam_tokens(ids, beam, length_penalty=1.0)
            words = [captioner.tokenizer.itos[t] for t in tokens]
            grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
            assert 2 <= len(tokens) < cap - 1 and len(grams) == len(set(grams)), (name, beam, words)


def test_caption_cli_on_the_photos_without_a_model_flag(tmp_path):
    import cv2

    paths = []
    for name in ("chelsea", "rocket"):
        paths.append(tmp_path / f"{name}.png")
        cv2.imwrite(str(paths[-1]), load_photo(name)[..., ::-1])
    proc = run_cli("caption", *paths, "--beam", "3", "--facts")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "chelsea.png: " in out and "rocket.png: " in out and "facts: cat" in out and "facts: rocket" in out


@pytest.mark.slow
def test_every_beam_width_on_every_packaged_photo():
    from stylize_rt.benchmarks.caption_quality import beam_check

    cap = Captioner()
    try:
        report = beam_check(cap)
    finally:
        cap.close()
    assert report["captions"] == 12 * 32
    assert report["empty"] == report["ended_at_the_cap"] == report["with_repeated_trigram"] == 0, report


@pytest.mark.slow
def test_held_out_synthetic_bleu4_for_regression():
    """BLEU-4 of greedy captions on 300 held-out synthetic fact sets (the shipped model: ~0.5)."""
    from stylize_rt.benchmarks.caption_quality import synthetic_bleu

    cap = Captioner(faces=False)
    try:
        scores = synthetic_bleu(cap, 300, seed=0, beams=(1,))["1"]
    finally:
        cap.close()
    assert scores["bleu4"] >= 0.45 and scores["with_unsupported_nouns"] < 0.02 and scores["casual_share"] > 0.9


def test_bench_times_the_fact_captioner_parts():
    from stylize_rt.benchmarks.harness import Budget, measure_captioner

    [row], skipped = measure_captioner(Budget(warmup=1, iters=3, seconds=None), threads=1)
    assert skipped is None and row["kind"] == "facts" and row["precision"] == "int8" and row["frame"] == "640x360"
    # every part timed (no ordering asserted: three samples on a shared machine say nothing about speed)
    assert min(row[k] for k in ("encoder_ms", "caption_ms", "caption_with_faces_ms", "faces_ms", "token_ms")) > 0
    assert row["tokens"] >= 3 and row["iters"] == 3


@pytest.mark.slow
def test_the_overlay_a_b_runs_the_stream_with_real_captions():
    from stylize_rt.benchmarks.harness import measure_caption_overlay

    result = measure_caption_overlay(get_model("mosaic").path("onnx"), frames=40, rounds=1, interval_s=0.0)
    assert result["plain_fps"] > 0 and result["captions_fps"] > 0 and result["captions_per_run"][0] >= 1


def test_graphs_opened_elsewhere_give_the_same_captions(captioner, captions):
    """The Triton path: the three graphs come from outside (here: local sessions), the loop is the same."""
    from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend

    folder = captioner.directory
    graphs = tuple(OnnxRuntimeBackend(folder / f, threads=1) for f in
                   ("encoder.onnx", "fact_encoder.onnx", "decoder_step.onnx"))
    outside = Captioner(folder, graphs=graphs)
    assert {n: outside.caption(load_photo(n)) for n in ("chelsea", "rocket")} == \
        {n: captions[n] for n in ("chelsea", "rocket")}
    from stylize_rt.errors import BadInputError

    with pytest.raises(BadInputError, match="3 graphs"):
        Captioner(folder, graphs=graphs[:2])
    outside.close()


def test_captioning_a_frame_never_imports_torch():
    code = ("import sys, numpy as np; from stylize_rt.runtime.captioner import Captioner; "
            "c = Captioner(); c.caption(np.zeros((36, 64, 3), np.uint8), beam=2); sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
