"""Static INT8 quantization (QDQ) calibrated on sample frames, with its quality loss measured.

QDQ format (QuantizeLinear/DequantizeLinear pairs around each Conv's input and weights)
is the one graph both consumers read: ONNX Runtime CPU fuses it into QLinearConv, and
TensorRT builds INT8 kernels from explicit Q/DQ (no calibrator in the builder). TensorRT
only accepts symmetric INT8 (zero point 0), so activations and weights are signed INT8
with symmetric ranges, weights per output channel; biases stay float (TensorRT's
DequantizeLinear reads INT8, not ORT's default INT32 bias encoding). Only Convs are quantized: instance
normalization, the pre/post-processing and the final sigmoid stay float, because that is
where 8 bits visibly band flat regions.

``target="onnxruntime"`` then rewrites that graph into ONNX Runtime's CPU form
(``export.int8_cpu``): the same values, with the pads and upsamples moved onto 8-bit tensors,
which TensorRT cannot read, and the frame's quantization and the output's sigmoid run as 256-entry
tables (``export.int8_cpu_ends``). The embedded models ship that form as their CPU path.

Multi-style graphs calibrate over every style: each calibration frame is fed once per style
with that style's one-hot, so the activation ranges cover all of them, and the PSNR is
measured per style (the worst one is the graph's number).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx

from stylize_rt import contract
from stylize_rt.export.frames import graph_feeds, n_styles_of, read_image_folder, sample_frames
from stylize_rt.export.int8_cpu import onnxruntime_cpu_form
from stylize_rt.export.metadata import get_metadata, set_metadata
from stylize_rt.export.parity import ort_session, psnr

# Weights on a 7-bit grid, |q| <= 64 (ONNX Runtime's reduce_range): x86 CPUs without VNNI multiply
# u8 activations by s8 weights with VPMADDUBSW, which saturates a pair's sum at 16 bits
# (255 * 127 * 2 > 32767). On such a CPU (AVX2, e.g. AMD Zen 3) full-range weights took the shipped
# styles6 graph from 33.3 to 21.4 dB; at |q| <= 64 (255 * 64 * 2 = 32640) every CPU computes the exact
# integer sums VNNI and TensorRT do, and the graph measured 33.8 dB.
WEIGHT_QMAX = 64
CALIBRATION_SIZE = (128, 128)  # (height, width) of calibration frames
CALIBRATION_FRAMES = 16


@dataclass
class Int8Report:
    calibration: str
    calibration_frames: int
    method: str
    quantized_convs: int
    psnr_db: float  # worst held-out PSNR of the INT8 graph against the FP32 graph (ONNX Runtime)
    held_out: str
    per_style_psnr: dict[int, float] = field(default_factory=dict)  # multi-style graphs: style index -> worst PSNR
    target: str = contract.INT8_TARGET_TRT
    moved_quantizations: int = 0  # the ONNX Runtime CPU form: quantizations moved ahead of pads/upsamples

    def lines(self) -> list[str]:
        styles = ""
        if self.per_style_psnr:
            styles = " (per style: " + ", ".join(f"{k}: {v:.1f}" for k, v in self.per_style_psnr.items()) + ")"
        lines = [
            f"int8: QDQ, symmetric int8 activations and per-channel weights, {self.quantized_convs} Convs quantized, "
            f"{self.method} calibration on {self.calibration_frames} feeds ({self.calibration})",
        ]
        if self.target == contract.INT8_TARGET_ORT:
            lines.append(f"int8: ONNX Runtime CPU form, {self.moved_quantizations} quantizations moved ahead of "
                         "their pads/upsamples onto 8-bit tensors, the frame quantized and the output written by table lookups "
                         "(the same values up to float rounding; TensorRT cannot read this form)")
        lines.append(f"int8 quality: PSNR {self.psnr_db:.1f} dB vs the FP32 graph on {self.held_out}{styles}")
        return lines


class _FrameReader:
    """ONNX Runtime's CalibrationDataReader protocol over pre-made feeds (one frame per call)."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._items = iter(feeds)

    def get_next(self):
        return next(self._items, None)


def quantize_int8(
    fp32_model,
    io_layout: str,
    calibration_frames: np.ndarray,
    calibration_source: str,
    method: str = "percentile",
    eval_sizes: Sequence[tuple[int, int, int]] = ((1, 96, 128), (2, 61, 45)),
    target: str = contract.INT8_TARGET_TRT,
):
    """``(int8 ModelProto, Int8Report)`` for the FP32 ``fp32_model`` (a ModelProto); ``target``: which
    consumer's form (``contract.INT8_TARGETS``), recorded in the graph's ``stylize_rt.int8_target``."""
    if target not in contract.INT8_TARGETS:
        raise ValueError(f"unknown INT8 target {target!r}; choose from {', '.join(contract.INT8_TARGETS)}")
    n_styles = n_styles_of(fp32_model)
    styles = range(n_styles) if n_styles > 1 else [None]
    feeds = [graph_feeds(frame[None], io_layout, n_styles, style=s) for frame in calibration_frames for s in styles]
    int8 = quantize_qdq(fp32_model, feeds, method)
    del int8.metadata_props[:]
    int8.metadata_props.extend(fp32_model.metadata_props)
    set_metadata(int8, {contract.INT8_TARGET: contract.INT8_TARGET_TRT})
    onnx.checker.check_model(int8, full_check=True)
    dequantized = {o for n in int8.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    quantized_convs = sum(1 for n in int8.graph.node if n.op_type == "Conv" and n.input[1] in dequantized)
    moved = 0
    if target == contract.INT8_TARGET_ORT:
        int8, moved = onnxruntime_cpu_form(int8)
    per_style = {}
    for s in styles:
        per_style[s], held_out = int8_psnr(fp32_model, int8, io_layout, eval_sizes, style=s)
    report = Int8Report(
        calibration=calibration_source + (f", each with all {n_styles} styles' one-hot" if n_styles > 1 else ""),
        calibration_frames=len(feeds),
        method=method,
        quantized_convs=quantized_convs,
        psnr_db=min(per_style.values()),
        held_out=held_out,
        per_style_psnr={k: v for k, v in per_style.items() if k is not None},
        target=get_metadata(int8)[contract.INT8_TARGET],  # what the graph says: nothing moved, still both
        moved_quantizations=moved,
    )
    return int8, report


def quantize_qdq(
    fp32_model,
    feeds: list[dict[str, np.ndarray]],
    method: str = "percentile",
    tensorrt: bool = True,
    preprocess: bool = False,
):
    """The static QDQ quantization every INT8 graph here goes through -> the INT8 ModelProto.

    ``tensorrt=True`` (generators): what TensorRT accepts, symmetric signed INT8 activations,
    only Convs, float biases, weights on the 7-bit grid that no x86 CPU saturates (``WEIGHT_QMAX``). ``tensorrt=False`` (the captioner's classifier, an ONNX Runtime
    CPU graph): asymmetric unsigned INT8 activations on every op ORT quantizes, so the whole
    trunk runs fused in INT8; on EfficientNet-Lite0 this kept the top noun of all 12 packaged
    photos where the TensorRT form lost two, and ran faster (docs/CAPTIONER.md).
    ``preprocess`` runs ORT's shape inference + graph optimisation first.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static  # heavy

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if method not in methods:
        raise ValueError(f"unknown calibration method {method!r}; choose from {sorted(methods)}")
    if tensorrt:
        # Biases stay float: TensorRT's DequantizeLinear takes INT8 (not INT32) and fuses the bias itself.
        # reduce_range: weights on the 7-bit grid of WEIGHT_QMAX (activations keep 8 bits).
        settings = dict(op_types_to_quantize=["Conv"], activation_type=QuantType.QInt8, reduce_range=True,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
    else:
        settings = dict(activation_type=QuantType.QUInt8, extra_options={"ActivationSymmetric": False})
    with tempfile.TemporaryDirectory(prefix="stylize_rt_int8_") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(fp32_model, str(src))
        if preprocess:
            from onnxruntime.quantization.shape_inference import quant_pre_process  # heavy, as above

            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(src), str(pre))
            src = pre
        # The quantizer logs a "run pre-processing first" hint on the root logger; our graph is
        # already shape-inferred and simplified, so the hint is noise in a one-line-error CLI.
        # The histogram calibrators also print progress to stdout; the CLI report owns stdout.
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                quantize_static(str(src), str(dst), _FrameReader(feeds), quant_format=QuantFormat.QDQ,
                                per_channel=True, weight_type=QuantType.QInt8, calibrate_method=methods[method],
                                **settings)
        finally:
            logging.disable(previous)
        return onnx.load(str(dst))


def int8_psnr(fp32_model, int8_model, io_layout: str, sizes: Sequence[tuple[int, int, int]],
              style: int | None = None) -> tuple[float, str]:
    """Worst PSNR of the INT8 graph against the FP32 graph on held-out photos (never calibration ones);
    ``style``: a multi-style graph's style (its one-hot, full strength)."""

    n_styles = n_styles_of(fp32_model)
    reference, quantized = ort_session(fp32_model), ort_session(int8_model)
    worst, held_out = float("inf"), ""
    for i, (batch, height, width) in enumerate(sizes):
        frames, held_out = sample_frames(batch, height, width, seed=900 + i, held_out=True)
        feed = graph_feeds(frames, io_layout, n_styles, style=style if n_styles > 1 else None)
        want, got = reference.run(None, feed)[0], quantized.run(None, feed)[0]
        if not np.all(np.isfinite(got.astype(np.float64))):
            raise ValueError("the INT8 graph produced inf/NaN on held-out frames")
        worst = min(worst, psnr(want, got, 255.0 if io_layout == "uint8_nhwc" else 1.0))
    return worst, held_out


def calibration_set(folder: str | os.PathLike[str] | None, count: int = CALIBRATION_FRAMES, seed: int = 7):
    """``(frames, source)``: crops of the user's images in ``folder``, else bundled photos."""

    height, width = CALIBRATION_SIZE
    photos = read_image_folder(folder) if folder is not None else None
    return sample_frames(count, height, width, seed=seed, photos=photos)
