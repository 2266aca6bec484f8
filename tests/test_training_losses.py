"""Losses, the perception networks (incl. torchvision's VGG key layout) and the discriminator."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from stylize_rt.errors import BadInputError  # noqa: E402
from stylize_rt.nets.discriminator import DiscriminatorConfig, PatchDiscriminator  # noqa: E402
from stylize_rt.training.losses import (  # noqa: E402
    PatchBank,
    content_loss,
    discriminator_loss,
    generator_adv_loss,
    gram,
    stability_losses,
    style_loss,
    swd_loss,
    total_variation,
)
from stylize_rt.training.perception import (  # noqa: E402
    VGG_LAYOUTS,
    EfficientNetFeatures,
    RandomFeatures,
    VGGFeatures,
    build_perception,
    load_vgg,
)


def _torchvision_vgg_state(arch: str, seed: int = 0) -> dict:
    """A random state dict with exactly torchvision's key names and shapes (features + classifier)."""
    g = torch.Generator().manual_seed(seed)
    state, idx, c_in = {}, 0, 3
    for v in VGG_LAYOUTS[arch]:
        if v == "M":
            idx += 1
            continue
        state[f"features.{idx}.weight"] = torch.randn(v, c_in, 3, 3, generator=g) * 0.05
        state[f"features.{idx}.bias"] = torch.randn(v, generator=g) * 0.01
        c_in, idx = v, idx + 2
    for i, (o, n) in {0: (4096, 25088), 3: (4096, 4096), 6: (1000, 4096)}.items():
        state[f"classifier.{i}.weight"] = torch.zeros(1, 1).expand(o, n)  # shape only; cheap
        state[f"classifier.{i}.bias"] = torch.zeros(o)
    return state


def test_gram_is_normalized_and_known():
    f = torch.ones(1, 2, 4, 4)
    assert torch.allclose(gram(f), torch.full((1, 2, 2), 0.5))  # 16 / (2*4*4)
    assert torch.allclose(gram(torch.ones(1, 2, 8, 8)), gram(f))  # independent of image size


def test_simple_losses_on_known_inputs():
    x = torch.zeros(1, 3, 4, 4)
    assert float(total_variation(x)) == 0.0
    y = x.clone()
    y[..., ::2] = 1.0
    assert float(total_variation(y)) == pytest.approx(1.0)
    assert float(content_loss(y, y)) == 0.0 and float(content_loss(y, x)) == pytest.approx(0.5)
    feats = [torch.rand(1, 4, 8, 8), torch.rand(1, 8, 4, 4)]
    assert float(style_loss(feats, [gram(f) for f in feats])) == pytest.approx(0.0, abs=1e-9)
    assert float(style_loss(feats, [gram(f) * 2 for f in feats])) > 0.1


def test_adversarial_variants():
    hi, lo = torch.full((2, 1, 3, 3), 5.0), torch.full((2, 1, 3, 3), -5.0)
    for v in ("nonsat", "hinge"):
        assert float(discriminator_loss(hi, lo, v)) < float(discriminator_loss(lo, hi, v))
        assert float(generator_adv_loss(hi, v)) < float(generator_adv_loss(lo, v))
    assert float(discriminator_loss(hi, lo, "hinge")) == 0.0
    with pytest.raises(ValueError):
        generator_adv_loss(hi, "none")


def test_stability_loss_is_zero_for_identity_and_positive_for_noise_amplifier():
    x = torch.rand(2, 3, 32, 32)
    rng = torch.Generator().manual_seed(0)
    n, s = stability_losses(lambda t: t, x, x, 0.0, 2, rng)
    assert float(n) == 0.0 and float(s) == pytest.approx(0.0, abs=1e-7)  # identity commutes with shifts

    def amplify(t):  # position-dependent output (not shift-equivariant) that amplifies noise
        ramp = torch.linspace(0, 1, t.shape[-1]).view(1, 1, 1, -1)
        return 10 * t + ramp

    n2, s2 = stability_losses(amplify, x, amplify(x), 0.02, 2, torch.Generator().manual_seed(0))
    assert float(n2) > 0.1 and float(s2) > 0.01


def test_discriminator_gives_patch_logits():
    d = PatchDiscriminator(DiscriminatorConfig(width=8, layers=3))
    assert d(torch.rand(2, 3, 64, 48)).shape == (2, 1, 8, 6)


def test_random_features_are_fixed_by_seed_and_frozen():
    a, b = RandomFeatures(), RandomFeatures()
    x = torch.rand(1, 3, 64, 64)
    (ca, sa), (cb, sb) = a(x), b(x)
    assert torch.equal(ca, cb) and all(torch.equal(p, q) for p, q in zip(sa, sb))
    assert not any(p.requires_grad for p in a.parameters())
    assert not a.train().training
    assert isinstance(build_perception(None, kind="random"), RandomFeatures)


def test_efficientnet_is_the_default_perception_with_its_taps():
    net = build_perception(None)
    assert isinstance(net, EfficientNetFeatures) and net.name == "efficientnet-lite0"
    content, style = net(torch.rand(1, 3, 64, 96))
    assert content.shape == (1, 24, 16, 24)  # block2: 1/4
    assert [f.shape[1] for f in style] == [32, 96, 144, 240] and net.patch_taps == (2,)  # block3.dw: 144 ch, 1/8
    assert style[2].shape[-2:] == (8, 12) and not any(p.requires_grad for p in net.parameters())


def test_swd_patch_loss_is_zero_on_the_style_itself_and_grows_with_the_difference():
    g = torch.Generator().manual_seed(0)
    style = torch.rand(1, 8, 12, 12, generator=g)
    bank = PatchBank(style)
    same = swd_loss(style, [bank], 32, torch.Generator().manual_seed(1))
    near = swd_loss(style * 0.9, [bank], 32, torch.Generator().manual_seed(1))
    far = swd_loss(style * 0.5, [bank], 32, torch.Generator().manual_seed(1))
    assert float(same) < 1e-9 and 0 < float(near) < float(far)
    out = torch.rand(2, 8, 12, 12, requires_grad=True)
    swd_loss(out, [bank, bank], 16, torch.Generator().manual_seed(2)).backward()
    assert out.grad is not None and float(out.grad.abs().sum()) > 0


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_vgg_loads_torchvision_key_layout(tmp_path, arch):
    state = _torchvision_vgg_state(arch)
    path = tmp_path / f"{arch}.pth"
    torch.save(state, path)
    model = load_vgg(path)  # arch inferred from the number of conv layers
    assert model.name == arch
    loaded = model.state_dict()
    for key, value in loaded.items():  # every kept layer got exactly the file's tensor
        assert torch.equal(value, state[key]), key
    content, style = model(torch.rand(1, 3, 32, 32))
    assert content.shape[1] == (128 if arch == "vgg16" else 512) and len(style) in (4, 5)


def test_vgg_key_mapping_is_checked(tmp_path):
    state = _torchvision_vgg_state("vgg16")
    prefixed = {k.replace("features.", "body."): v for k, v in state.items()}
    torch.save(prefixed, tmp_path / "prefixed.pth")
    with pytest.raises(BadInputError, match="not a torchvision VGG state dict"):
        load_vgg(tmp_path / "prefixed.pth")
    # shift every conv index by one: what a wrong mapping (e.g. counting convs, not modules) looks like
    renumbered = {}
    for k, v in state.items():
        if k.startswith("features."):
            _, idx, leaf = k.split(".")
            k = f"features.{int(idx) + 1}.{leaf}"
        renumbered[k] = v
    torch.save(renumbered, tmp_path / "renumbered.pth")
    with pytest.raises(BadInputError, match="does not fit vgg16: missing"):
        load_vgg(tmp_path / "renumbered.pth", "vgg16")


def test_vgg_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        load_vgg(tmp_path / "none.pth")
    good = tmp_path / "vgg16.pth"
    torch.save(_torchvision_vgg_state("vgg16"), good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(BadInputError, match="cannot read VGG weights"):
        load_vgg(truncated)
    with pytest.raises(BadInputError, match="does not fit vgg19"):
        load_vgg(good, "vgg19")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "odd.pth")
    with pytest.raises(BadInputError, match="expected 13"):
        load_vgg(tmp_path / "odd.pth")


def test_vgg_module_numbering_matches_torchvision():
    names = {k for k in VGGFeatures("vgg16").state_dict()}
    # torchvision VGG16: convs at features.0,2,5,7,10,12,14,17,19,21 (up to relu4_3 at 22)
    assert {int(k.split(".")[1]) for k in names} == {0, 2, 5, 7, 10, 12, 14, 17, 19, 21}
