"""PyTorch backend: a generator checkpoint directory run eagerly or through ``torch.compile``.

It presents exactly the tensors the ONNX export of the same checkpoint would: input
``"input"``, output ``"output"``, uint8 NHWC frames (the default, as the embedded model ships)
or float32 NCHW in [0, 1], and the ``stylize_rt.io_layout`` metadata, so a ``Stylizer`` and
the benchmarks treat it like any other backend. torch is imported in the constructor only:
the runtime package stays importable without it.

Precision: ``fp32`` everywhere; ``fp16`` on CUDA and ``bf16`` (CPU with AVX-512-BF16/AMX, or
CUDA) run the convolutions under autocast, with FP32 islands like the export's FP16 graph:
instance norms (autocast would run them in the low precision: FP16 statistics overflow) and
the first and last layers (in BF16 they cost up to 7 output levels on the embedded model; in
FP32, at most 2-3). ``auto`` = fp16 on CUDA, fp32 on CPU.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from stylize_rt import __version__, contract
from stylize_rt.contract import IO_LAYOUTS, TensorSpec
from stylize_rt.errors import BadInputError, MissingDependencyError
from stylize_rt.runtime.backends.base import BackendBase, warm_up
from stylize_rt.runtime.backends.options import TorchOptions, make_options

PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags Linux reports (empty elsewhere)."""
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_fast_bf16(flags: set[str] | None = None) -> bool:
    """AVX-512-BF16 or AMX-BF16: the CPUs where bfloat16 convolutions beat float32."""
    flags = cpu_flags() if flags is None else flags
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def torch_unavailable(options: TorchOptions) -> str | None:
    """Why the torch backend cannot run here with ``options`` (the backend table asks), or None."""
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (pip install 'stylize-rt[train]')"
    if options.device and options.device.startswith("cuda"):
        import torch  # asked about the torch backend on CUDA: torch is found above

        if not torch.cuda.is_available():
            return "this torch build sees no CUDA GPU"
    return None


class TorchBackend(BackendBase):
    """Runs a generator checkpoint (``config.json`` + ``generator.safetensors``) with PyTorch.

    Options: :class:`TorchOptions`. ``compile``: the first call per new shape compiles;
    ``threads``: CPU intra-op threads (0 = torch's default); ``timing`` (CUDA) records events
    per call, read as ``last_timings``.
    """

    name = "torch"

    def __init__(self, checkpoint: str | os.PathLike[str], options: TorchOptions | None = None, **fields: Any) -> None:
        options = make_options(TorchOptions, options, self.name, **fields)
        if options.omp_wait_policy and "torch" not in sys.modules:
            # OpenMP reads it once, when torch loads: a policy for our own pipeline threads, never
            # the default (PyTorch as users run it keeps OpenMP's own policy).
            os.environ["OMP_WAIT_POLICY"] = options.omp_wait_policy
        try:
            import torch  # the optional torch backend: the runtime imports torch nowhere else
        except ImportError:
            raise MissingDependencyError("the torch backend needs PyTorch: pip install 'stylize-rt[train]'") from None
        from stylize_rt.nets.checkpoint import load_generator  # the networks need torch, loaded just above

        io_layout, precision, threads = options.io_layout, options.precision, options.threads
        device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
        compile, channels_last = options.compile, options.channels_last
        if io_layout not in IO_LAYOUTS:
            raise BadInputError(f"unknown io_layout {io_layout!r} (choose from {', '.join(IO_LAYOUTS)})")
        if precision not in PRECISIONS:
            raise BadInputError(f"unknown precision {precision!r} for torch (choose from {', '.join(PRECISIONS)})")
        self._torch = torch
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise MissingDependencyError("device 'cuda' asked for, but this torch has no CUDA GPU available")
        if self.device.type not in ("cpu", "cuda"):
            raise BadInputError(f"unsupported device {device!r} (cpu or cuda[:N])")
        if precision == "auto":
            precision = "fp16" if self.device.type == "cuda" else "fp32"
        if precision == "fp16" and self.device.type != "cuda":
            raise BadInputError("fp16 runs on CUDA only; on CPU use fp32 or bf16")
        if precision == "bf16" and self.device.type == "cpu" and not cpu_has_fast_bf16():
            raise MissingDependencyError("bf16 on CPU needs AVX-512-BF16 or AMX (not in this CPU's flags)")
        if threads > 0:
            torch.set_num_threads(threads)
        self.precision = precision
        self.io_layout = io_layout

        generator, card = load_generator(checkpoint)
        self._autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        model = _wrapper_class(torch)(generator, io_layout, self.device.type, self._autocast_dtype)
        model = model.eval().to(self.device)
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        for p in model.parameters():
            p.requires_grad_(False)
        self._model = torch.compile(model, dynamic=True) if compile else model
        self.path = Path(checkpoint)
        self.card = card
        self._staging = None  # pinned host buffer for CUDA uploads
        # CUDA events around upload / model / download, for the benchmarks (``last_timings``).
        self._events = (
            [torch.cuda.Event(enable_timing=True) for _ in range(4)] if options.timing and self.device.type == "cuda"
            else None
        )

        if io_layout == "uint8_nhwc":
            self.inputs = [TensorSpec("input", np.dtype(np.uint8), (None, None, None, 3))]
            self.outputs = [TensorSpec("output", np.dtype(np.uint8), (None, None, None, 3))]
        else:
            self.inputs = [TensorSpec("input", np.dtype(np.float32), (None, 3, None, None))]
            self.outputs = [TensorSpec("output", np.dtype(np.float32), (None, 3, None, None))]
        self.metadata = {
            contract.VERSION: __version__,
            contract.IO_LAYOUT: io_layout,
            contract.TORCH_PRECISION: precision,
            contract.TORCH_DEVICE: str(self.device),
            contract.TORCH_COMPILE: str(bool(compile)).lower(),
        }
        self.warmup_seconds = warm_up(self, options.warmup, *(options.warmup_shape or (256, 256)))

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        array = feeds["input"]
        events = self._events
        x = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.type == "cuda":
            if events:
                events[0].record()
            x = self._stage(x).to(self.device, non_blocking=True)
            if events:
                events[1].record()
        if self.io_layout == "float32_nchw":
            x = x.contiguous(memory_format=self._memory_format)
        with torch.inference_mode():
            y = self._model(x)
        if events:
            events[2].record()
        out = y.cpu().contiguous().numpy()
        if events:
            events[3].record()
        return {"output": out}

    @property
    def last_timings(self) -> dict[str, float]:
        """H2D / compute / D2H milliseconds of the last CUDA ``infer`` (needs ``timing=True``)."""
        if not self._events:
            return {}
        self._events[3].synchronize()
        a, b, c, d = self._events
        return {"h2d_ms": a.elapsed_time(b), "compute_ms": b.elapsed_time(c), "d2h_ms": c.elapsed_time(d)}

    def _stage(self, x):
        """Copy into a reused page-locked buffer (grown as needed): async H2D without pinning per call."""
        torch = self._torch
        if self._staging is None or self._staging.numel() < x.numel() * x.element_size():
            self._staging = torch.empty(x.numel() * x.element_size(), dtype=torch.uint8).pin_memory()
        view = self._staging[: x.numel() * x.element_size()].view(x.dtype).view(x.shape)
        view.copy_(x)
        return view

    def close(self) -> None:
        self._model = None
        self._staging = None


def _wrapper_class(torch):
    """The export's IO convention around a generator, with autocast inside ``forward``.

    Same arithmetic as ``training.generator.UInt8NHWC`` (what the ONNX export wraps), except
    that only the generator runs under autocast: the uint8 <-> float conversions and the final
    ``* 255`` and rounding stay float32 (in bfloat16, 255 * y is only exact to a whole level).
    """

    class KeepFP32(torch.nn.Module):
        """Runs ``module`` in float32 inside an autocast region."""

        def __init__(self, module, device_type: str) -> None:
            super().__init__()
            self.module = module
            self.device_type = device_type

        def forward(self, *args):
            with torch.autocast(self.device_type, enabled=False):
                return self.module(*(a.float() for a in args))

    def keep_fp32(generator, device_type: str):
        """FP32 islands, as in the export's FP16 graph: every instance norm (its statistics overflow
        FP16), plus the first and last layers, where BF16's 8-bit mantissa costs whole output levels."""
        for parent in list(generator.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, torch.nn.InstanceNorm2d):
                    setattr(parent, name, KeepFP32(child, device_type))
        for name in ("stem", "head"):
            if isinstance(getattr(generator, name, None), torch.nn.Module):
                setattr(generator, name, KeepFP32(getattr(generator, name), device_type))
        return generator

    class ExportIO(torch.nn.Module):
        def __init__(self, generator, io_layout: str, device_type: str, autocast_dtype) -> None:
            super().__init__()
            self.generator = keep_fp32(generator, device_type) if autocast_dtype is not None else generator
            self.uint8 = io_layout == "uint8_nhwc"
            self.device_type = device_type
            self.autocast_dtype = autocast_dtype

        def forward(self, x):
            # uint8 frames take the generator's NHWC path, as the exported graph does (the
            # unshuffle stem folds the layout change into its space-to-depth)
            run = self.generator.forward_nhwc if self.uint8 else self.generator
            if self.uint8:
                x = x.to(torch.float32) / 255.0
            if self.autocast_dtype is not None:
                with torch.autocast(self.device_type, dtype=self.autocast_dtype):
                    y = run(x)
                y = y.to(torch.float32)
            else:
                y = run(x)
            if self.uint8:
                return torch.round(torch.clamp(y, 0.0, 1.0) * 255.0).to(torch.uint8)
            return y

    return ExportIO


__all__ = ["TorchBackend", "cpu_flags", "cpu_has_fast_bf16"]
