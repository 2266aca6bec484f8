"""Quantization-aware fine-tuning by distillation: weights whose INT8 graph passes its quality floor.

Quantizing the trained ``styles6`` generator as it is (``export.int8``: static QDQ, symmetric INT8
activations per tensor, weights per output channel) cost up to 6 dB against its FP32 graph and
tripled flicker under sensor noise (hatching 28.9 dB, flicker 3.50), so ``auto`` precision kept FP32
on CPU. This stage fine-tunes a copy of the generator that sees the same rounding as the INT8 graph:

- **Fake quantization where the INT8 graph has its QDQ pairs**: every ``Conv2d``'s input and output
  per tensor (symmetric INT8, scales fixed from the 99.999th percentile of ``|x|`` on the export's own
  calibration frames x every style, ONNX Runtime's percentile calibration), weights per output channel
  (``max |w| / 64``, ``export.int8.WEIGHT_QMAX``). Before any training this copy reproduces ONNX Runtime's INT8 numbers
  (docs/MODELS.md: hatching 28.8 dB / 3.52 simulated vs 28.9 / 3.50).
- **Distillation, with a stability term**: loss ``|S(x+n1) - T(x+n1)| + w |S(x+n1) - S(x+n2)|``
  (S the fake-quant student, T the frozen FP32 teacher, n1, n2 two draws of 2/255 Gaussian noise),
  Adam, random crops of the calibration photos, a random style's one-hot per crop.

The result is a new checkpoint with plain float weights (the fake quantization is removed): both
of its graphs are exported from it, and the INT8 graph is calibrated anew by ``export.int8``, so the
floor (``benchmarks.int8_quality``) compares INT8 against these weights' own FP32 graph.

``python -m stylize_rt.export.qat TEACHER_CKPT OUT_CKPT`` runs it; ``make models`` runs it as the
``styles6`` recipe's ``qat`` stage (``recipes.embedded``).
"""

from __future__ import annotations

import argparse
import copy
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from stylize_rt.errors import BadInputError, run_reporting_errors
from stylize_rt.export.frames import sample_frames
from stylize_rt.export.int8 import WEIGHT_QMAX, calibration_set
from stylize_rt.nets.checkpoint import load_generator, save_generator
from stylize_rt.nets.generator import Generator
from stylize_rt.progress import progress_bar
from stylize_rt.training.threads import apply_threads

CALIBRATION_PERCENTILE = 99.999  # ONNX Runtime's CalibrationMethod.Percentile default, which export.int8 uses
INT8_MAX = 127  # activations: symmetric 8-bit, as export.int8 calibrates them


@dataclass(frozen=True)
class QatConfig:
    """The fine-tuning recipe (docs/MODELS.md, "Quantization-aware fine-tuning")."""

    steps: int = 1500
    # w in the loss above. Worst INT8 noise / anchored shift flicker of styles6 (1500 steps): 4: 1.33 / 1.57
    # (hatching, over the shift target), 6: 1.07 / 1.37, 8: 0.94 / 1.23, the margin a rebuild needs.
    stability_weight: float = 8.0
    lr: float = 2e-4
    batch: int = 2
    crop: tuple[int, int] = (320, 480)  # (height, width): large crops, near the full-size photos of the floor
    pool: int = 128  # crops drawn once from the calibration photos
    noise: float = 2.0 / 255.0
    seed: int = 11

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.pool < 1:
            raise BadInputError("qat steps, batch and pool must be at least 1")
        if self.stability_weight < 0 or self.lr <= 0:
            raise BadInputError("qat stability weight must be >= 0 and lr > 0")


@dataclass(frozen=True)
class QatResult:
    generator: Generator  # plain float weights, fake quantization removed
    steps: int
    wall_seconds: float
    final_loss: float


class _PerChannelWeightQuant(nn.Module):
    """Weight fake quantization as ``export.int8`` quantizes weights: symmetric, per output channel."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        scale = (w.detach().abs().amax(dim=(1, 2, 3)) / WEIGHT_QMAX).clamp_min(1e-12)
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -WEIGHT_QMAX, WEIGHT_QMAX)


def _fake_quant(x: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.fake_quantize_per_tensor_affine(x, scale, 0, -INT8_MAX - 1, INT8_MAX)


def _one_hot(n_styles: int, index: int, count: int) -> torch.Tensor | None:
    if n_styles < 2:
        return None
    style = torch.zeros(count, n_styles)
    style[:, index] = 1.0
    return style


def _to_float(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).float() / 255.0


def activation_scales(generator: Generator, frames: np.ndarray) -> list[tuple[float, float]]:
    """Per ``Conv2d`` (in module order): the (input, output) INT8 scales ONNX Runtime's percentile
    calibration gives on ``frames`` under every style's one-hot."""
    convs = [m for m in generator.modules() if isinstance(m, nn.Conv2d)]
    seen: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {id(c): ([], []) for c in convs}

    def record(module, inputs, output):
        seen[id(module)][0].append(inputs[0].detach().abs().flatten().numpy())
        seen[id(module)][1].append(output.detach().abs().flatten().numpy())

    hooks = [c.register_forward_hook(record) for c in convs]
    try:
        with torch.no_grad():
            x = _to_float(frames)
            for index in range(generator.config.n_styles):
                generator.forward_nhwc(x, _one_hot(generator.config.n_styles, index, len(frames)))
    finally:
        for hook in hooks:
            hook.remove()
    scales = []
    for conv in convs:
        ins, outs = (float(np.percentile(np.concatenate(v), CALIBRATION_PERCENTILE)) for v in seen[id(conv)])
        scales.append((max(ins, 1e-12) / INT8_MAX, max(outs, 1e-12) / INT8_MAX))
    return scales


def fake_quant_copy(generator: Generator, scales: list[tuple[float, float]]) -> Generator:
    """A copy of ``generator`` whose convs compute as the INT8 graph does (straight-through gradients)."""
    student = copy.deepcopy(generator)
    convs = [m for m in student.modules() if isinstance(m, nn.Conv2d)]
    if len(convs) != len(scales):
        raise ValueError(f"{len(scales)} scales for {len(convs)} convs")
    for conv, (in_scale, out_scale) in zip(convs, scales):
        parametrize.register_parametrization(conv, "weight", _PerChannelWeightQuant())
        conv.register_forward_pre_hook(lambda _m, inputs, s=in_scale: (_fake_quant(inputs[0], s),))
        conv.register_forward_hook(lambda _m, _inputs, output, s=out_scale: _fake_quant(output, s))
    return student


def plain_copy(student: Generator, like: Generator) -> Generator:
    """``student``'s float weights in a plain generator (no parametrizations, no hooks)."""
    plain = copy.deepcopy(like)
    state = {}
    for key, value in student.state_dict().items():
        state[key.replace("parametrizations.weight.original", "weight")] = value
    plain.load_state_dict(state)
    return plain.eval()


def fine_tune(teacher: Generator, config: QatConfig = QatConfig(), progress: bool = True,
              log: Callable[[str], None] = print) -> QatResult:
    """Fine-tune a fake-quant copy of ``teacher`` against it (see the module docstring)."""
    t0 = time.perf_counter()
    teacher = teacher.eval().requires_grad_(False)
    n_styles = teacher.config.n_styles
    calibration, _source = calibration_set(None)
    student = fake_quant_copy(teacher, activation_scales(teacher, calibration))
    student.requires_grad_(True)
    pool, _ = sample_frames(config.pool, *config.crop, seed=config.seed)
    rng = np.random.default_rng(config.seed)
    noise = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(student.parameters(), lr=config.lr)
    bar = progress_bar(total=config.steps, desc="qat fine-tune", unit="step", disable=None if progress else True)
    loss_value = float("nan")
    try:
        for step in range(config.steps):
            x = _to_float(pool[rng.integers(0, len(pool), config.batch)])
            style = None
            if n_styles > 1:
                style = torch.zeros(config.batch, n_styles)
                style[torch.arange(config.batch), torch.from_numpy(rng.integers(0, n_styles, config.batch))] = 1.0
            x1 = (x + torch.randn(x.shape, generator=noise) * config.noise).clamp(0, 1)
            x2 = (x + torch.randn(x.shape, generator=noise) * config.noise).clamp(0, 1)
            with torch.no_grad():
                target = teacher.forward_nhwc(x1, style)
            s1, s2 = student.forward_nhwc(x1, style), student.forward_nhwc(x2, style)
            loss = (s1 - target).abs().mean() + config.stability_weight * (s1 - s2).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_value = float(loss.detach())
            if not np.isfinite(loss_value):
                raise BadInputError(f"qat fine-tune diverged at step {step} (loss {loss_value}); lower --lr")
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss_value:.4f}")
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    log(f"qat fine-tune: {config.steps} steps in {wall:.0f} s, final loss {loss_value:.4f}")
    return QatResult(plain_copy(student, teacher), config.steps, round(wall, 1), round(loss_value, 6))


def fine_tune_checkpoint(teacher_ckpt: str | os.PathLike[str], out: str | os.PathLike[str],
                         config: QatConfig = QatConfig(), progress: bool = True, source: str | None = None,
                         log: Callable[[str], None] = print) -> Path:
    """Fine-tune the checkpoint at ``teacher_ckpt`` and write the result as a checkpoint at ``out``
    (its card: the teacher's, plus ``"qat"`` with the recipe, wall time and threads)."""
    teacher_ckpt, out = Path(teacher_ckpt), Path(out)
    if out.resolve() == teacher_ckpt.resolve():
        raise BadInputError(f"the fine-tuned checkpoint would overwrite its teacher {teacher_ckpt}; choose another out")
    teacher, card = load_generator(teacher_ckpt)
    if "qat" in card:
        raise BadInputError(f"{teacher_ckpt} is already quantization-aware fine-tuned; fine-tune its teacher instead")
    result = fine_tune(teacher, config, progress, log)
    extra = {k: v for k, v in card.items() if k not in ("kind", "generator", "stylize_rt_version")}
    extra["qat"] = {**asdict(config), "teacher_step": card.get("step"), "wall_seconds": result.wall_seconds,
                    "threads": torch.get_num_threads(), "final_loss": result.final_loss,
                    **({"source": source} if source else {})}
    return save_generator(out, result.generator, extra)


def build_parser() -> argparse.ArgumentParser:
    d = QatConfig()
    p = argparse.ArgumentParser(prog="python -m stylize_rt.export.qat", description=__doc__.split("\n\n")[0])
    p.add_argument("teacher", help="the trained generator checkpoint (a directory with config.json)")
    p.add_argument("out", help="where the fine-tuned checkpoint goes (a new directory)")
    p.add_argument("--steps", type=int, default=d.steps, help=f"fine-tuning steps (default {d.steps})")
    p.add_argument("--stability-weight", type=float, default=d.stability_weight,
                   help=f"weight of the noise-stability term (default {d.stability_weight:g})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr:g})")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: 1 on up to 2 cores)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    source = " ".join(["python -m stylize_rt.export.qat", *map(shlex.quote, (a for a in argv if a != "--no-progress"))])

    def job() -> int:
        apply_threads(args.threads)
        config = QatConfig(steps=args.steps, stability_weight=args.stability_weight, lr=args.lr)
        path = fine_tune_checkpoint(args.teacher, args.out, config, not args.no_progress, source)
        print(f"wrote {path}")
        return 0

    return run_reporting_errors(job, prog="python -m stylize_rt.export.qat")


if __name__ == "__main__":
    sys.exit(main())
