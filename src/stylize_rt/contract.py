"""The model contract: what every stage agrees on about a model file, written down once.

The exporter writes these ONNX metadata keys, the engine builder carries them into engine
sidecars, and the runtime and the benchmarks read them back; checkpoints and exported
captioners use these file names. A model says its IO convention here (tensor layout,
element type, value range) so that no stage has to guess it from the graph.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from stylize_rt.errors import BadInputError

# -- ONNX metadata keys (namespaced so they never collide with what other tools add) ---------
KIND = "stylize_rt.kind"  # "generator" | "captioner"
STYLE = "stylize_rt.style"
IO_LAYOUT = "stylize_rt.io_layout"  # one of IO_LAYOUTS
INPUT_RANGE = "stylize_rt.input_range"  # one of INPUT_RANGES; default by layout (DEFAULT_RANGE)
PRECISION = "stylize_rt.precision"  # one of GRAPH_PRECISIONS
CONFIG_HASH = "stylize_rt.config_sha256"
VERSION = "stylize_rt.version"
OPSET = "stylize_rt.opset"
# JSON list of ONNX node names that must run in FP32 in an FP16 engine (read by engines/).
FP32_LAYERS = "stylize_rt.fp32_layers"
# JSON object: what the verification measured at export time (parity, PSNR).
VERIFIED = "stylize_rt.verified"
# INT8 graphs: worst held-out PSNR (dB) against the FP32 graph, measured at export.
INT8_PSNR = "stylize_rt.int8_psnr_db"
# INT8 graphs shipped as a CPU path: JSON {"passed": bool, ...the measured floors}; `auto` precision
# takes the INT8 graph on CPU only where this says it met its quality floor.
INT8_QUALITY = "stylize_rt.int8_quality"
# INT8 graphs: which consumer their Q/DQ form is for. "tensorrt": symmetric signed INT8 at each conv
# (also what ONNX Runtime reads); "onnxruntime": the CPU form (export/int8_cpu.py), unsigned 8-bit
# pads and upsamples ahead of the convs, which TensorRT cannot read.
INT8_TARGET = "stylize_rt.int8_target"
INT8_TARGET_TRT = "tensorrt"
INT8_TARGET_ORT = "onnxruntime"
INT8_TARGETS = (INT8_TARGET_TRT, INT8_TARGET_ORT)


# A graph in ONNX Runtime's CPU form of an FP32 generator (export/cpu_form.py): the SHA-256 of the
# generator.onnx it was made from; a folder's CPU form runs only while that file is unchanged.
CPU_FORM_OF = "stylize_rt.cpu_form_of_sha256"


def for_tensorrt(meta: dict[str, str]) -> bool:
    """False for an INT8 graph in ONNX Runtime's CPU form (its metadata says so): TensorRT's parser
    rejects its unsigned Q/DQ, so builds refuse it and the TensorRT lint does not apply."""
    return meta.get(INT8_TARGET) != INT8_TARGET_ORT
# Captioner graphs: the model config (JSON) and which part of the captioner a graph is.
CAPTIONER_CONFIG = "stylize_rt.captioner_config"
PART = "stylize_rt.part"
# Multi-style generators: JSON list of style names, in the order of the ``style`` input's weights.
STYLES = "stylize_rt.styles"
# Generators: the sampling grid in px (8: space-to-depth and two stride-2 convs). A frame moved by a
# multiple of it comes back moved exactly; the runtime's grid anchor uses it (runtime.grid_anchor).
GRID = "stylize_rt.grid_px"
# What a backend adds about how it runs a model (not written into files).
ENGINE_PRECISION = "stylize_rt.engine.precision"
TORCH_PRECISION = "stylize_rt.torch.precision"
TORCH_DEVICE = "stylize_rt.torch.device"
TORCH_COMPILE = "stylize_rt.torch.compile"

# -- IO conventions -----------------------------------------------------------------------------
IO_LAYOUTS = ("uint8_nhwc", "float32_nchw")
AXIS_ORDERS = ("nhwc", "nchw")
INPUT_RANGES: dict[str, tuple[float, float]] = {"0-255": (0.0, 255.0), "0-1": (0.0, 1.0), "-1-1": (-1.0, 1.0)}
DEFAULT_RANGE = {"uint8_nhwc": "0-255", "float32_nchw": "0-1"}
GRAPH_PRECISIONS = ("fp32", "fp16", "int8")  # what an exported generator graph computes in
# A generator graph's inputs: the frames, and (multi-style graphs) the controls, float32, batch first:
# style [N, n_styles] weights (one-hot or convex), strength [N] in 0..1, preserve_color [N] 0 or 1.
INPUT_IMAGE = "input"
INPUT_STYLE = "style"
INPUT_STRENGTH = "strength"
INPUT_PRESERVE_COLOR = "preserve_color"
CONTROL_INPUTS = (INPUT_STYLE, INPUT_STRENGTH, INPUT_PRESERVE_COLOR)

# -- Files -----------------------------------------------------------------------------------
CHECKPOINT_CARD = "config.json"  # a checkpoint directory's card
GENERATOR_WEIGHTS = "generator.safetensors"
CHECKPOINT_ONNX = "generator.onnx"  # shipped beside the weights by the embedded models
CHECKPOINT_ONNX_INT8 = "generator_int8.onnx"  # the quantized CPU path, where a folder ships one
CHECKPOINT_ONNX_CPU = "generator_cpu.onnx"  # generator.onnx in ONNX Runtime's CPU form (export/cpu_form.py)
CAPTIONER_FORMAT = "stylize_rt.captioner"  # captioner.json's "format"
CAPTIONER_CONFIG_FILE = "captioner.json"
CAPTIONER_ENCODER_FILE = "encoder.onnx"
CAPTIONER_DECODER_FILE = "decoder_step.onnx"
CAPTIONER_TOKENIZER_FILE = "tokenizer.json"
# A fact captioner's folder also holds (encoder.onnx is then the image classifier):
CAPTIONER_FACT_ENCODER_FILE = "fact_encoder.onnx"  # fact ids -> features, keys, hidden, context
CAPTIONER_NOUNS_FILE = "nouns.json"  # ImageNet class -> noun group table (stylize_rt.caption_facts)
CAPTIONER_CLASSIFIER_FILE = "classifier.npz"  # the classifier's last layer: weight [classes, channels] fp16, bias


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype and shape of a model input/output; dynamic dimensions are ``None``."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]


def fp32_layers(meta: dict[str, str]) -> list[str]:
    """The node names an FP16 engine must keep in FP32 (empty when the key is absent)."""
    raw = meta.get(FP32_LAYERS)
    if not raw:
        return []
    try:
        names = json.loads(raw)
    except json.JSONDecodeError:
        raise BadInputError(f"ONNX metadata {FP32_LAYERS} is not a JSON list of node names: {raw[:60]!r}") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadInputError(f"ONNX metadata {FP32_LAYERS} is not a JSON list of node names")
    return names



def grid_px(meta: dict[str, str]) -> int | None:
    """A generator's sampling grid in px from its metadata (``GRID``); None when absent or below 2."""
    raw = meta.get(GRID)
    if raw is None:
        return None
    try:
        grid = int(raw)
    except ValueError:
        raise BadInputError(f"ONNX metadata {GRID} is not a whole number of pixels: {raw[:60]!r}") from None
    return grid if grid >= 2 else None
