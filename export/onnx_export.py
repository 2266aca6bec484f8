"""Generator checkpoints to verified ONNX graphs: dynamic batch, height and width.

Opset 17 is the newest opset that every consumer we target parses and runs: TensorRT
10.0's ONNX parser reads opsets 9..20 (11.x keeps that range), ONNX Runtime >= 1.14
runs 17 on CPU and CUDA, and 17 is where InstanceNormalization, Resize (nearest,
asymmetric) and reflect Pad all have their current definitions. Newer opsets add nothing
this generator uses and would lock out TensorRT 8.6/ORT < 1.16 users for no gain.

The legacy TorchScript exporter (``dynamo=False``) is used because it writes the decoder's
size arithmetic (the crop to the encoder stage's size) as plain Shape/Slice ops that stay
dynamic; the dynamo exporter specializes such sizes unless every dim is marked dynamic.

Pipeline (``export_checkpoint``): trace -> ``onnx.checker`` (full check) -> shape
inference -> onnxslim if bit-identical -> FP16 safety statistics (``stylize_rt.fp32_layers``)
-> metadata -> optional FP16 / INT8 conversion -> parity against PyTorch and TensorRT lint
-> atomic write. Nothing is left at the output path unless every step passed.

A multi-style generator (``n_styles > 1``, uint8 NHWC only) exports with the control inputs
of the graph contract: ``input`` (uint8 [N, H, W, 3]), ``style`` (float32 [N, n_styles]),
``strength`` (float32 [N]) and ``preserve_color`` (float32 [N], 0 or 1); batch is dynamic
for all four, n_styles is fixed. The graph does the controls' arithmetic itself
(``MultiStyleUInt8NHWC``), and ``stylize_rt.styles`` lists the style names.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import onnx
import torch
from torch import nn

from stylize_rt import __version__, contract
from stylize_rt.errors import BadInputError, OutputError
from stylize_rt.export import fp16
from stylize_rt.export.frames import graph_feeds, n_styles_of, sample_frames
from stylize_rt.export.graph_links import links
from stylize_rt.export.int8 import calibration_set, quantize_int8
from stylize_rt.export.metadata import generator_metadata, get_metadata, set_metadata
from stylize_rt.export.norm_reshape import constant_norm_reshapes
from stylize_rt.export.simplify import simplify
from stylize_rt.export.trt_lint import lint_model
from stylize_rt.export.verify import require_pass, verify_generator
from stylize_rt.fileio import atomic_file, check_writable_dir
from stylize_rt.nets.checkpoint import load_generator
from stylize_rt.nets.generator import MultiStyleUInt8NHWC, UInt8NHWC

OPSET = 17
IOLayout = Literal["float32_nchw", "uint8_nhwc"]
# Frames used for the FP16 activation statistics (more pixels = larger instance-norm sums).
STATS_FRAMES, STATS_SIZE = 3, (192, 256)


def _log_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _trace(generator: nn.Module, io_layout: str):
    """Export ``generator`` with the legacy exporter; return the ``ModelProto`` (checked, shapes inferred)."""
    model = generator.eval()
    n_styles = getattr(getattr(generator, "config", None), "n_styles", 1)
    names, samples = [contract.INPUT_IMAGE], ()
    if n_styles > 1 and io_layout != "uint8_nhwc":
        raise BadInputError(f"a multi-style generator exports as uint8_nhwc only (asked for {io_layout})")
    if io_layout == "uint8_nhwc":
        model = (MultiStyleUInt8NHWC if n_styles > 1 else UInt8NHWC)(generator).eval()
        sample = torch.randint(0, 256, (2, 64, 48, 3), dtype=torch.uint8)
        axes = {0: "batch", 1: "height", 2: "width"}
        if n_styles > 1:
            names += list(contract.CONTROL_INPUTS)
            samples = (torch.full((2, n_styles), 1.0 / n_styles), torch.tensor([1.0, 0.5]), torch.tensor([0.0, 1.0]))
    elif io_layout == "float32_nchw":
        sample = torch.rand(1, 3, 64, 48)
        axes = {0: "batch", 2: "height", 3: "width"}
    else:
        raise BadInputError(f"unknown IO layout {io_layout!r}; choose from {', '.join(contract.IO_LAYOUTS)}")
    with tempfile.TemporaryDirectory(prefix="stylize_rt_trace_") as tmp:
        path = os.path.join(tmp, "trace.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (sample, *samples),
                path,
                dynamo=False,
                opset_version=OPSET,
                input_names=names,
                output_names=["output"],
                dynamic_axes={"output": axes, **{n: (axes if n == contract.INPUT_IMAGE else {0: "batch"}) for n in names}},
            )
        graph = onnx.load(path)
    onnx.checker.check_model(graph, full_check=True)
    return onnx.shape_inference.infer_shapes(graph, check_type=True, strict_mode=True)


def cast_uint8_inputs_first(model) -> int:
    """Move each uint8 graph input's Cast ahead of the data-movement op that precedes it (in place).

    TensorRT only lets a UINT8 network input feed a Cast layer directly -- not even a
    Transpose (NVIDIA/TensorRT#3985) -- while ``x.permute(...).float()`` traces as
    Transpose(uint8) -> Cast. Swapping them computes the same values. Returns the swaps made.
    """

    _producers, consumers = links(model.graph)
    swaps = 0
    for value in model.graph.input:
        if value.type.tensor_type.elem_type != 2:  # UINT8
            continue
        users = consumers.get(value.name, [])
        if len(users) != 1 or users[0].op_type not in ("Transpose", "Reshape", "Identity"):
            continue
        move = users[0]
        after = consumers.get(move.output[0], [])
        if len(after) != 1 or after[0].op_type != "Cast":
            continue
        cast = after[0]
        moved_out, cast_out = move.output[0], cast.output[0]
        cast.input[0], cast.output[0] = value.name, moved_out
        move.input[0], move.output[0] = moved_out, cast_out
        swaps += 1
    if swaps:
        # The swapped tensor changed type: drop stale inferred shapes/types, then re-infer.
        del model.graph.value_info[:]
        fp16.topological_sort(model.graph)
    return swaps


def _check_feeds(io_layout: str, n_styles: int = 1, seed: int = 3) -> list[dict[str, np.ndarray]]:

    feeds = []
    for i, (b, h, w) in enumerate(((1, 48, 64), (2, 33, 47), (3, 20, 24))):
        frames, _ = sample_frames(b, h, w, seed=seed + i)
        feeds.append(graph_feeds(frames, io_layout, n_styles, seed=seed + i))
    return feeds


def build_graph(generator: nn.Module, io_layout: str, simplify_graph: bool = True, log: Callable[[str], None] | None = None):
    """``(ModelProto, Fp16Report)``: the FP32 graph, simplified when bit-identical, with its FP32-layer list.

    The graph carries ``stylize_rt.io_layout``, ``stylize_rt.version`` and ``stylize_rt.fp32_layers``.
    """

    log = log or (lambda _msg: None)

    graph = _trace(generator, io_layout)
    if cast_uint8_inputs_first(graph) + constant_norm_reshapes(graph):
        graph = onnx.shape_inference.infer_shapes(graph, check_type=True, strict_mode=True)
        onnx.checker.check_model(graph, full_check=True)
    log(f"traced: opset {OPSET}, {len(graph.graph.node)} nodes, onnx.checker full check and shape inference passed")
    n_styles = n_styles_of(graph)
    if simplify_graph:
        graph, report = simplify(graph, _check_feeds(io_layout, n_styles))
        log(report.line())
    fp16.name_nodes(graph)
    frames, source = sample_frames(STATS_FRAMES, *STATS_SIZE, seed=11)
    # every style's one-hot: the activation ranges of all styles decide the FP32 islands
    feeds = [graph_feeds(f[None], io_layout, n_styles, style=s if n_styles > 1 else None)
             for f in frames for s in range(n_styles)]
    stats = fp16.activation_stats(graph, feeds, frames=source)
    keep = stats.keep_fp32 + fp16.io_island_nodes(graph)
    set_metadata(
        graph,
        {
            contract.VERSION: __version__,
            contract.IO_LAYOUT: io_layout,
            contract.OPSET: str(OPSET),
            contract.FP32_LAYERS: fp16.fp32_layers_json(keep),
        },
    )
    return graph, stats


def save_atomic(model, path: str | os.PathLike[str]) -> Path:
    """Serialize ``model`` through :func:`stylize_rt.fileio.atomic_file`: never a half-written model."""
    try:
        with atomic_file(path) as handle:
            handle.write(model.SerializeToString())
    except ValueError as exc:  # a protobuf over 2 GB cannot be serialized in one piece
        raise OutputError(f"cannot write {path}: {exc}") from None
    return Path(path)


def check_writable(path: str | os.PathLike[str]) -> None:
    """Fail before minutes of work if ``path`` cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory")
    check_writable_dir(path.parent)


def export_generator(
    generator: nn.Module,
    path: str | os.PathLike[str],
    io_layout: IOLayout = "float32_nchw",
    metadata: dict[str, str] | None = None,
    simplify: bool = True,
    card: dict | None = None,
    verify: bool = False,
) -> Path:
    """Write ``generator`` as an FP32 ONNX graph to ``path`` atomically.

    The graph is checked, simplified when bit-identical and carries ``stylize_rt.fp32_layers``.
    With the checkpoint ``card`` it also gets the kind/style/config-hash metadata; with
    ``verify`` the in-memory model is parity-checked first (``VerificationError`` on failure,
    nothing written). ``metadata`` entries are added last. ``export_checkpoint`` adds
    precisions and the full report.
    """

    check_writable(path)
    graph, _stats = build_graph(generator, io_layout, simplify_graph=simplify)
    if card is not None:
        set_metadata(graph, generator_metadata(card, io_layout, "fp32", OPSET))
    if verify:
        report = verify_generator(generator, graph, io_layout, "fp32", label=str(path))
        require_pass(report)
        set_metadata(graph, {contract.VERIFIED: json.dumps(report.summary())})
    set_metadata(graph, dict(metadata or {}))
    return save_atomic(graph, path)


@dataclass
class ExportResult:
    path: Path
    precision: str
    io_layout: str
    metadata: dict[str, str]
    lines: list[str] = field(default_factory=list)
    parity: object | None = None
    lint: object | None = None
    int8: object | None = None


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    io_layout: str = "uint8_nhwc",
    precision: str = "fp32",
    verify: bool = True,
    calibration: str | os.PathLike[str] | None = None,
    calibration_method: str = "percentile",
    min_psnr: float | None = None,
    log: Callable[[str], None] | None = None,
    int8_target: str = contract.INT8_TARGET_TRT,
) -> ExportResult:
    """Checkpoint directory -> verified ONNX file at ``output`` (see the module docstring).

    ``int8_target`` (INT8 only): ``tensorrt``, the Q/DQ form both TensorRT and ONNX Runtime read, or
    ``onnxruntime``, the faster CPU form with the same values (``export.int8_cpu``)."""

    log = log or _log_stderr
    if io_layout not in contract.IO_LAYOUTS:
        raise BadInputError(f"unknown IO layout {io_layout!r}; choose from {', '.join(contract.IO_LAYOUTS)}")
    if precision not in contract.GRAPH_PRECISIONS:
        raise BadInputError(f"unknown precision {precision!r}; choose from {', '.join(contract.GRAPH_PRECISIONS)}")
    if int8_target not in contract.INT8_TARGETS:
        raise BadInputError(f"unknown INT8 target {int8_target!r}; choose from {', '.join(contract.INT8_TARGETS)}")
    output = Path(output)
    generator, card = load_generator(checkpoint)
    created = _missing_parents(output)
    try:
        check_writable(output)
        return _export_loaded(generator, card, output, io_layout, precision, verify, calibration,
                              calibration_method, min_psnr, log, int8_target)
    except BaseException:
        for folder in created:  # leave no empty folders behind either
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def _missing_parents(path: Path) -> list[Path]:
    """Parent folders of ``path`` that do not exist yet, deepest first."""
    missing = []
    for parent in path.absolute().parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


def _export_loaded(generator, card, output: Path, io_layout, precision, verify, calibration,
                   calibration_method, min_psnr, log, int8_target=contract.INT8_TARGET_TRT) -> ExportResult:

    lines: list[str] = []

    def say(message: str) -> None:
        lines.append(message)
        log(message)

    graph, stats = build_graph(generator, io_layout, log=say)
    set_metadata(graph, generator_metadata(card, io_layout, precision, OPSET))
    for line in stats.lines():
        say(line)
    result = ExportResult(output, precision, io_layout, {})

    if precision == "fp16":
        keep = contract.fp32_layers(get_metadata(graph))

        frames, _ = sample_frames(2, 96, 128, seed=21)
        naive = fp16.naive_fp16_check(generator, frames, io_layout)
        say(f"fp16: all-FP16 model without FP32 islands (PyTorch per-layer simulation): {naive}")
        try:
            graph = fp16.convert_to_fp16(graph, keep)
        except ValueError as exc:
            raise BadInputError(f"FP16 conversion failed: {exc}") from None
        summary = fp16.fp16_summary(graph)
        say(
            f"fp16: {summary['fp16_nodes']} FP16 nodes, {summary['fp32_nodes']} FP32 nodes (islands), "
            f"{summary['casts']} explicit Casts, {summary['fp16_weights']} FP16 / {summary['fp32_weights']} FP32 weight tensors"
        )
    elif precision == "int8":

        frames, source = calibration_set(calibration)
        try:
            graph, int8_report = quantize_int8(graph, io_layout, frames, source, method=calibration_method,
                                               target=int8_target)
        except ValueError as exc:
            raise BadInputError(f"INT8 quantization failed: {exc}") from None
        result.int8 = int8_report
        for line in int8_report.lines():
            say(line)
        set_metadata(graph, {contract.INT8_PSNR: f"{int8_report.psnr_db:.2f}"})

    if not contract.for_tensorrt(get_metadata(graph)):
        say("tensorrt lint: skipped (the ONNX Runtime CPU form of the INT8 graph is not for TensorRT)")
    else:
        lint_report = lint_model(graph)
        result.lint = lint_report
        for line in lint_report.lines():
            say(line)

    if verify:
        report = verify_generator(generator, graph, io_layout, precision, min_psnr=min_psnr, label=str(output))
        for line in report.lines():
            say(line)
        require_pass(report)
        result.parity = report
        set_metadata(graph, {contract.VERIFIED: json.dumps(report.summary())})
    else:
        say("verification skipped (--no-verify)")
    save_atomic(graph, output)
    result.metadata = get_metadata(graph)
    say(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB, {precision}, {io_layout})")
    result.lines = lines
    return result
