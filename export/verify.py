"""Does the ONNX graph compute what the PyTorch model computes? Checked, not assumed.

Parity runs the checkpoint in PyTorch (float32) and the graph in ONNX Runtime CPU on real
photos cropped to several sizes, odd ones and batches > 1 included, because the classic
export bugs (a crop computed for the trace size, a pad that only works on even sizes)
show up only there. Tolerances depend on the graph's precision:

* fp32, float32 NCHW out: max abs error <= 1e-4 (on [0, 1] outputs).
* fp32, uint8 NHWC out: at least 99.9% of values within 1 level (rounding ties may flip).
* fp16: no inf/NaN, PSNR >= 40 dB against the float32 PyTorch output.
* int8: no inf/NaN, PSNR >= ``min_psnr`` (default 20 dB): int8 is a quality trade-off,
  so the number is reported and the floor only catches a broken calibration.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx

from stylize_rt import contract
from stylize_rt.errors import BadInputError, StylizeError, first_line
from stylize_rt.export import fp16, metadata
from stylize_rt.export.frames import control_feeds, sample_frames, to_feed
from stylize_rt.export.parity import ort_session, psnr, torch_reference
from stylize_rt.export.trt_lint import lint_file
from stylize_rt.nets.checkpoint import load_generator
from stylize_rt.progress import progress_bar

# (batch, height, width): the minimum size, odd sizes, a batch of 2 and of 3, non-square,
# and a 16:9 frame big enough for realistic instance-norm statistics.
DEFAULT_SIZES: tuple[tuple[int, int, int], ...] = ((1, 16, 16), (2, 37, 53), (1, 64, 96), (3, 31, 17), (1, 144, 256))
FP32_MAX_ABS = 1e-4
UINT8_WITHIN_1 = 0.999
FP16_MIN_PSNR = 40.0
INT8_MIN_PSNR = 20.0


class VerificationError(StylizeError):
    """The exported graph does not match the model it was exported from."""

    exit_code = 1


# ---------------------------------------------------------------- metrics


@dataclass
class SizeResult:
    batch: int
    height: int
    width: int
    max_abs: float
    psnr_db: float
    within_1: float  # fraction of values within one uint8 level (after quantizing float outputs)
    nonfinite: int
    passed: bool

    def line(self) -> str:
        verdict = "ok" if self.passed else "FAIL"
        return (
            f"  {f'{self.batch}x{self.height}x{self.width}':<11} max|err| {self.max_abs:.3g}  PSNR {self.psnr_db:.1f} dB  "
            f"within 1 level {100 * self.within_1:.3f}%  non-finite {self.nonfinite}  {verdict}"
        )


@dataclass
class ParityReport:
    model: str
    io_layout: str
    precision: str
    frames: str
    criterion: str
    sizes: list[SizeResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.sizes) and all(s.passed for s in self.sizes)

    @property
    def worst_psnr(self) -> float:
        return min(s.psnr_db for s in self.sizes)

    @property
    def worst_max_abs(self) -> float:
        return max(s.max_abs for s in self.sizes)

    def lines(self) -> list[str]:
        head = f"parity PyTorch fp32 vs ONNX Runtime CPU ({self.precision}, {self.io_layout}) on {self.frames}: {self.criterion}"
        return [head, *(s.line() for s in self.sizes)]

    def summary(self) -> dict:
        return {
            "precision": self.precision,
            "io_layout": self.io_layout,
            "worst_max_abs": round(self.worst_max_abs, 6),
            "worst_psnr_db": round(self.worst_psnr, 2) if math.isfinite(self.worst_psnr) else "inf",
            "sizes": [[s.batch, s.height, s.width] for s in self.sizes],
            "passed": self.passed,
        }


def _criterion(precision: str, io_layout: str, min_psnr: float | None) -> str:
    if precision == "fp32":
        if io_layout == "uint8_nhwc":
            return f">= {100 * UINT8_WITHIN_1:.1f}% of values within 1 level"
        return f"max abs error <= {FP32_MAX_ABS:g}"
    floor = min_psnr if min_psnr is not None else (FP16_MIN_PSNR if precision == "fp16" else INT8_MIN_PSNR)
    return f"no inf/NaN and PSNR >= {floor:g} dB"


def _judge(precision: str, io_layout: str, result: SizeResult, min_psnr: float | None) -> bool:
    if result.nonfinite:
        return False
    if precision == "fp32":
        if io_layout == "uint8_nhwc":
            return result.within_1 >= UINT8_WITHIN_1
        return result.max_abs <= FP32_MAX_ABS
    floor = min_psnr if min_psnr is not None else (FP16_MIN_PSNR if precision == "fp16" else INT8_MIN_PSNR)
    return result.psnr_db >= floor


def compare_outputs(reference: np.ndarray, output: np.ndarray, io_layout: str) -> tuple[float, float, float, int]:
    """(max abs error, PSNR, fraction within one 8-bit level, count of non-finite values)."""
    if reference.shape != output.shape:
        raise VerificationError(f"output shape {output.shape} differs from PyTorch's {reference.shape}")
    out64 = output.astype(np.float64)
    nonfinite = int(np.size(out64) - np.count_nonzero(np.isfinite(out64)))
    ref64 = reference.astype(np.float64)
    if nonfinite:
        return math.inf, -math.inf, 0.0, nonfinite
    diff = np.abs(ref64 - out64)
    if io_layout == "uint8_nhwc":
        return float(diff.max()), psnr(ref64, out64, 255.0), float(np.mean(diff <= 1)), 0
    levels = np.abs(np.rint(np.clip(ref64, 0, 1) * 255) - np.rint(np.clip(out64, 0, 1) * 255))
    return float(diff.max()), psnr(ref64, out64, 1.0), float(np.mean(levels <= 1)), 0


def verify_generator(
    generator,
    model,
    io_layout: str,
    precision: str = "fp32",
    sizes: Sequence[tuple[int, int, int]] = DEFAULT_SIZES,
    min_psnr: float | None = None,
    seed: int = 1234,
    label: str = "",
) -> ParityReport:
    """Parity of an ONNX generator (path or ``ModelProto``) with its PyTorch ``generator``.

    Returns the report; the caller decides whether a failure raises (``require_pass``).
    """
    session = ort_session(model)
    input_name = session.get_inputs()[0].name
    n_styles = next((int(i.shape[1]) for i in session.get_inputs() if i.name == contract.INPUT_STYLE), 1)
    source = ""
    report = ParityReport(
        model=label or str(model if isinstance(model, (str, os.PathLike)) else "<in memory>"),
        io_layout=io_layout,
        precision=precision,
        frames="",
        criterion=_criterion(precision, io_layout, min_psnr),
    )
    # disable=None: a bar on terminals only, so logs and CLI tests stay clean.
    for i, (batch, height, width) in enumerate(progress_bar(sizes, desc="parity", unit="size", leave=False)):
        frames, source = sample_frames(batch, height, width, seed=seed + i, held_out=True)
        feed = {input_name: to_feed(frames, io_layout)}
        controls = control_feeds(batch, n_styles, seed=seed + i) if n_styles > 1 else None
        want = torch_reference(generator, frames, io_layout, controls)
        got = session.run(None, {**feed, **(controls or {})})[0]
        max_abs, psnr_db, within_1, nonfinite = compare_outputs(want, got, io_layout)
        result = SizeResult(batch, height, width, max_abs, psnr_db, within_1, nonfinite, False)
        result.passed = _judge(precision, io_layout, result, min_psnr)
        report.sizes.append(result)
    report.frames = source
    return report


def require_pass(report: ParityReport) -> None:
    """Raise a one-line ``VerificationError`` naming the worst size when parity failed."""
    if report.passed:
        return
    bad = [s for s in report.sizes if not s.passed]
    worst = bad[0]
    raise VerificationError(
        f"{report.model}: {report.precision} graph does not match PyTorch at "
        f"{worst.batch}x{worst.height}x{worst.width} (max|err| {worst.max_abs:.3g}, PSNR {worst.psnr_db:.1f} dB, "
        f"non-finite {worst.nonfinite}; needs {report.criterion}); {len(bad)}/{len(report.sizes)} sizes failed"
    )


def _infer_precision(model) -> str:
    ops = {n.op_type for n in model.graph.node}
    if "QuantizeLinear" in ops or "DequantizeLinear" in ops:
        return "int8"
    if any(init.data_type == 10 for init in model.graph.initializer):
        return "fp16"
    return "fp32"


def verify_file(
    model_path: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str],
    sizes: Sequence[tuple[int, int, int]] | None = None,
    min_psnr: float | None = None,
    log=print,
) -> ParityReport:
    """``stylize-rt verify``: checker, metadata, FP16 islands, TensorRT lint, then parity (raises on failure)."""

    path = Path(model_path)
    meta = metadata.read_metadata(path)  # BadInputError for missing / non-ONNX files
    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # noqa: BLE001 - onnx.checker raises its own types
        raise BadInputError(f"{path} fails onnx.checker: {first_line(exc)}") from None
    kind = meta.get(contract.KIND, "generator")
    if kind != "generator":
        raise BadInputError(f"{path} is a {kind} model; verify a generator .onnx or a captioner folder")
    generator, card = load_generator(checkpoint)
    extra = [i.name for i in model.graph.input if i.name != contract.INPUT_IMAGE]
    if len(model.graph.input) != 1 and sorted(extra) != sorted(contract.CONTROL_INPUTS):
        raise BadInputError(f"{path} has inputs {[i.name for i in model.graph.input]}; a generator graph has "
                            f"{contract.INPUT_IMAGE!r} (and a multi-style one {', '.join(contract.CONTROL_INPUTS)})")
    io_layout = meta.get(contract.IO_LAYOUT) or (
        "uint8_nhwc" if model.graph.input[0].type.tensor_type.elem_type == 2 else "float32_nchw"
    )
    precision = meta.get(contract.PRECISION) or _infer_precision(model)
    log(f"{path}: generator, {precision}, {io_layout}, style {meta.get(contract.STYLE, '?')}, "
        f"exported by stylize-rt {meta.get(contract.VERSION, '?')}")
    expected = metadata.config_hash(card)
    if meta.get(contract.CONFIG_HASH) and meta[contract.CONFIG_HASH] != expected:
        log(f"warning: {path} was exported from a checkpoint with a different config than {checkpoint}")
    keep = contract.fp32_layers(meta)
    log(f"fp32 layers for FP16 engines ({contract.FP32_LAYERS}): {len(keep)} nodes")
    if precision == "fp16":
        problems = [p for p in fp16.check_fp16_graph(model, model, keep) if "changed type" not in p]
        for problem in problems:
            log(f"warning: FP16 graph: {problem} (an FP16 engine may overflow there)")
        if not problems:
            log("fp16 islands: every InstanceNormalization and FP32 layer runs in FP32 with explicit Casts")
    if not contract.for_tensorrt(meta):
        log("tensorrt lint: skipped (the ONNX Runtime CPU form of an INT8 graph is not for TensorRT)")
    else:
        for line in lint_file(path).lines():
            log(line)
    report = verify_generator(generator, path, io_layout, precision, sizes=sizes or DEFAULT_SIZES, min_psnr=min_psnr, label=str(path))
    for line in report.lines():
        log(line)
    require_pass(report)
    log("verified: parity within tolerance at every size")
    return report
