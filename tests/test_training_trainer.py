"""Training steps, checkpoints, exact resume, bad checkpoints, previews and logs (tiny, CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stylize_rt.errors import BadInputError  # noqa: E402
from stylize_rt.nets.checkpoint import load_generator, load_training_state, save_generator  # noqa: E402
from stylize_rt.nets.generator import Generator, GeneratorConfig  # noqa: E402
from stylize_rt.training.data import ContentImages, ContentStats  # noqa: E402
from stylize_rt.training.trainer import TrainConfig, Trainer, _to_tensor  # noqa: E402


def _content() -> ContentImages:
    rng = np.random.default_rng(0)
    images = []
    for i in range(3):
        yy, xx = np.mgrid[0:48, 0:56]
        img = np.stack([xx * 4, yy * 5, (xx * yy + 40 * i) % 256], -1)
        images.append(np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8))
    return ContentImages(images, ["a", "b", "c"], ContentStats(found=3, used=3))


def _config(tmp_path, **kw) -> TrainConfig:
    base = dict(out=str(tmp_path / "run"), steps=4, batch=2, size=32, channels=(4, 8, 8), res_blocks=1,
                stem_kernel=3, d_width=8, d_layers=2, stability=1.0, stability_shift=2, style_size=96,
                progress=False, preview_every=0, checkpoint_every=2, log_every=1)
    base.update(kw)
    return TrainConfig(**base)


def _weights(gen) -> dict:
    return {k: v.clone() for k, v in gen.state_dict().items()}


def test_training_steps_lower_the_loss_on_a_fixed_batch(tmp_path):
    trainer = Trainer(_config(tmp_path, adv="none", stability=0.0, lr_g=5e-3, perception="random", swd_weight=0.0),
                      content=_content())
    x = _to_tensor(trainer.content.batch(np.random.default_rng(7), 2, 32), trainer.device)
    with torch.no_grad():
        before = float(trainer.generator_losses(x, 1, torch.Generator())[1]["total"])
    for step in range(1, 16):
        trainer.train_step(step)
    with torch.no_grad():
        after = float(trainer.generator_losses(x, 1, torch.Generator())[1]["total"])
    assert after < 0.8 * before


def test_checkpoint_round_trip_is_exact(tmp_path):
    torch.manual_seed(0)
    gen = Generator(GeneratorConfig(channels=(4, 8, 8), res_blocks=1, stem_kernel=3))
    save_generator(tmp_path / "ck", gen, {"step": 3})
    loaded, card = load_generator(tmp_path / "ck")
    assert card["step"] == 3 and card["kind"] == "generator"
    for k, v in gen.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    x = torch.rand(1, 3, 21, 19)
    with torch.no_grad():
        assert torch.equal(gen.eval()(x), loaded(x))
    # a generator-only checkpoint (like the embedded model) cannot be resumed
    with pytest.raises(BadInputError, match="cannot be resumed"):
        load_training_state(tmp_path / "ck", None)


def test_resume_continues_exactly(tmp_path):
    straight = Trainer(_config(tmp_path / "a"), content=_content())
    straight.run()
    half = Trainer(_config(tmp_path / "b", steps=2), content=_content())
    half.run()
    resumed = Trainer(_config(tmp_path / "b", steps=4), resume=str(tmp_path / "b" / "run" / "final"), content=_content())
    assert resumed.step == 2
    result = resumed.run()
    assert result.step == 4
    for model in ("generator", "discriminator"):
        a, b = getattr(straight, model).state_dict(), getattr(resumed, model).state_dict()
        for k in a:
            assert torch.allclose(a[k], b[k], atol=1e-6, rtol=1e-5), (model, k)
    # a wrong resume (different step count) would differ: guard that the test can fail
    assert not torch.allclose(next(half.generator.head.parameters()), next(straight.generator.head.parameters()))
    log = [json.loads(line) for line in (tmp_path / "b" / "run" / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert {"content", "style", "tv", "stab_noise", "stab_shift", "adv_g", "adv_d", "total"} <= set(log[-1])
    assert (tmp_path / "b" / "run" / "checkpoints" / "step_0000002" / "training_state.pt").is_file()


def test_resume_rejects_bad_checkpoints(tmp_path):
    Trainer(_config(tmp_path, steps=1), content=_content()).run()
    final = tmp_path / "run" / "final"
    # wrong kind
    card = json.loads((final / "config.json").read_text())
    (tmp_path / "cap").mkdir()
    (tmp_path / "cap" / "config.json").write_text(json.dumps({**card, "kind": "captioner"}))
    with pytest.raises(BadInputError, match="captioner checkpoint, expected a generator"):
        Trainer(_config(tmp_path), resume=str(tmp_path / "cap"), content=_content())
    # truncated generator weights
    w = final / "generator.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(BadInputError, match="corrupt or truncated weights"):
        Trainer(_config(tmp_path), resume=str(final), content=_content())
    # truncated optimizer state
    ck = tmp_path / "run" / "checkpoints" / "step_0000001"
    state = ck / "training_state.pt"
    state.write_bytes(state.read_bytes()[:50])
    with pytest.raises(BadInputError, match="corrupt training state"):
        Trainer(_config(tmp_path), resume=str(ck), content=_content())
    with pytest.raises(BadInputError, match="not a checkpoint"):
        Trainer(_config(tmp_path), resume=str(tmp_path / "nothing"), content=_content())


def test_previews_are_contact_sheets(tmp_path):
    from PIL import Image

    trainer = Trainer(_config(tmp_path, steps=1, preview_every=1, adv="hinge"), content=_content())
    trainer.run()
    sheet = Image.open(tmp_path / "run" / "previews" / "step_0000001.png")
    cell, gap = 64, 4  # 3 rows of input | output at min(256, 2 * size) px
    assert sheet.mode == "RGB" and sheet.size == (2 * cell + 3 * gap, 3 * cell + 4 * gap)
    assert (tmp_path / "run" / "previews" / "final.png").is_file()


@pytest.mark.gpu
def test_cuda_amp_training_and_resume(tmp_path):
    cfg = _config(tmp_path, device="cuda", amp=True, steps=2)
    trainer = Trainer(cfg, content=_content())
    assert trainer.use_amp
    result = trainer.run()
    assert result.step == 2 and all(np.isfinite(v) for v in result.last_losses.values())
    resumed = Trainer(_config(tmp_path, device="cuda", amp=True, steps=3), resume=str(tmp_path / "run" / "final"),
                      content=_content())
    assert resumed.step == 2 and resumed.run().step == 3
