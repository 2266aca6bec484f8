"""The PyTorch captioner: step equivalence, MLE, GAN step, checkpoints (tiny models, CPU)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from stylize_rt.errors import BadInputError  # noqa: E402
from stylize_rt.nets.captioner import (  # noqa: E402
    Captioner,
    CaptionerConfig,
    caption_loss,
    load_captioner,
    save_captioner,
)
from stylize_rt.tokenizer import Tokenizer  # noqa: E402
from stylize_rt.training.caption_gan import (  # noqa: E402
    CaptionDiscriminator,
    GanConfig,
    discriminator_step,
    generator_step,
    pad_after_eos,
)
from stylize_rt.training.scenes import scene_dataset  # noqa: E402
from stylize_rt.training.train_captioner import CaptionBatches  # noqa: E402

TINY = dict(image_size=32, channels=(8, 16), feature_dim=16, embed_dim=8, hidden_dim=16, attention_dim=8, max_len=20)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny ops: one thread avoids oversubscription stalls on a busy shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return scene_dataset(64, seed=0, split="train", size=32)


@pytest.fixture(scope="module")
def tokenizer(data):
    return Tokenizer.build(data.all_captions())


def tiny_model(tokenizer, seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return Captioner(CaptionerConfig(vocab_size=len(tokenizer), dropout=dropout, **TINY))


def test_stepwise_decode_equals_teacher_forced_pass(data, tokenizer):
    model = tiny_model(tokenizer).eval()
    batches = CaptionBatches(data, tokenizer, 20, seed=0)
    images, tokens, _ = batches.sample(5)
    full = model(images, tokens)
    features, keys, hidden, context = model.encode(images)
    for t in range(tokens.shape[1] - 1):
        logits, hidden, context, attention = model.step(tokens[:, t], hidden, context, features, keys)
        torch.testing.assert_close(logits, full[:, t], rtol=0, atol=1e-5)
        torch.testing.assert_close(attention.sum(1), torch.ones(5))
    # greedy decoding is the argmax of the teacher-forced pass fed with its own output
    greedy = model.greedy(images, tokenizer.bos_id, tokenizer.eos_id, max_len=8)
    fed = torch.cat([torch.full((5, 1), tokenizer.bos_id), greedy], dim=1)
    assert torch.equal(model(images, fed).argmax(-1), greedy)


def test_a_few_mle_steps_lower_the_loss(data, tokenizer):
    model = tiny_model(tokenizer)
    batches = CaptionBatches(data, tokenizer, 20, seed=0)
    images, tokens, _ = batches.sample(16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = caption_loss(model(images, tokens), tokens[:, 1:], tokenizer.pad_id)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_sample_log_probs_stop_after_eos(data, tokenizer):
    model = tiny_model(tokenizer)
    images = torch.rand(4, 3, 32, 32)
    torch.manual_seed(1)
    tokens, logp = model.sample(images, tokenizer.bos_id, tokenizer.eos_id, max_len=12)
    assert tokens.shape == logp.shape and logp.requires_grad
    for row, lp in zip(tokens.tolist(), logp):
        if tokenizer.eos_id in row:
            end = row.index(tokenizer.eos_id)
            assert all(t == tokenizer.eos_id for t in row[end:])
            assert torch.all(lp[end + 1 :] == 0)
    padded = pad_after_eos(torch.tensor([[5, 2, 7, 2]]), eos_id=2, pad_id=0)
    assert padded.tolist() == [[5, 2, 0, 0]]


def test_gan_step_runs_and_changes_weights(data, tokenizer):
    model = tiny_model(tokenizer, dropout=0.1)
    torch.manual_seed(0)
    disc = CaptionDiscriminator(len(tokenizer), tokenizer.pad_id, model.encoder, 16, embed_dim=8, hidden_dim=16)
    batches = CaptionBatches(data, tokenizer, 20, seed=0)
    images, tokens, _ = batches.sample(8)
    _, wrong, _ = batches.sample(8)
    ids = (tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id)
    d_before = [p.detach().clone() for p in disc.parameters()]
    fake, _ = model.sample(images, ids[0], ids[1])
    d_stats = discriminator_step(disc, torch.optim.Adam(disc.parameters(), 1e-3), images, tokens[:, 1:],
                                 pad_after_eos(fake.detach(), ids[1], ids[2]), wrong[:, 1:])
    assert all(k in d_stats for k in ("d_loss", "d_acc"))
    assert any(not torch.equal(a, b) for a, b in zip(d_before, disc.parameters()))
    frozen = dict(disc.named_parameters())
    assert all(torch.equal(frozen[f"image_encoder.{k}"], v) for k, v in model.encoder.named_parameters())
    for baseline in ("greedy", "mean"):
        g_before = [p.detach().clone() for p in model.parameters()]
        config = GanConfig(mle_weight=0.0, baseline=baseline)  # pure policy gradient must move the weights too
        stats = generator_step(model, disc, torch.optim.Adam(model.parameters(), 1e-3), images, tokens, ids, config)
        assert 0.0 <= stats["reward"] <= 1.0
        changed = [not torch.equal(a, b) for a, b in zip(g_before, model.parameters())]
        assert any(changed)


def test_checkpoint_round_trip_and_vocabulary_mismatch(tmp_path, data, tokenizer):
    model = tiny_model(tokenizer).eval()
    ckpt = save_captioner(tmp_path / "ckpt", model, tokenizer, extra={"note": "test"})
    assert sorted(p.name for p in ckpt.iterdir()) == ["captioner.safetensors", "config.json", "tokenizer.json"]
    loaded, tok2, card = load_captioner(ckpt)
    assert card["kind"] == "captioner" and tok2 == tokenizer
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(loaded.encode(x)[0], model.encode(x)[0])

    # a tokenizer with one word more: the sizes disagree
    Tokenizer([*tokenizer.itos[4:], "zebra"]).save(ckpt / "tokenizer.json")
    with pytest.raises(BadInputError, match="vocabulary mismatch"):
        load_captioner(ckpt)
    # same size, different words: caught by the vocabulary hash in the card
    swapped = tokenizer.itos[4:]
    swapped[0], swapped[1] = swapped[1], swapped[0]
    Tokenizer(swapped).save(ckpt / "tokenizer.json")
    with pytest.raises(BadInputError, match="vocabulary mismatch"):
        load_captioner(ckpt)


def test_wrong_kind_and_truncated_weights(tmp_path, tokenizer):
    ckpt = save_captioner(tmp_path / "ckpt", tiny_model(tokenizer), tokenizer)
    weights = ckpt / "captioner.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(BadInputError, match="truncated"):
        load_captioner(ckpt)
    card = json.loads((ckpt / "config.json").read_text())
    card["kind"] = "generator"
    (ckpt / "config.json").write_text(json.dumps(card))
    with pytest.raises(BadInputError, match="expected a captioner"):
        load_captioner(ckpt)
