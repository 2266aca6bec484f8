"""PyTorch backend: a generator checkpoint directory run eagerly or through ``torch.compile``.

It presents exactly the tensors the ONNX export of the same checkpoint would: input
``"input"``, output ``"output"``, uint8 NHWC frames (the default, as the embedded model ships)
or float32 NCHW in [0, 1], and the ``stylize_rt.io_layout`` metadata, so a ``Stylizer`` and
the benchmarks treat it like any other backend. A multi-style checkpoint (``n_styles > 1``,
uint8 NHWC only, as its export) also takes the control inputs ``style`` [batch, n_styles],
``strength`` [batch] and ``preserve_color`` [batch] (``contract.CONTROL_INPUTS``, computed by
``nets.generator.MultiStyleUInt8NHWC`` as the exported graph does) and lists its styles in the
``stylize_rt.styles`` metadata. torch is imported in the constructor only: the runtime package
stays importable without it.

On CUDA this is the fast path for machines without TensorRT (``auto`` picks it there): uint8
frames go through reused page-locked buffers, uploads and downloads run on side streams
(a batch is split in ``overlap_chunks`` so one chunk's copies overlap another's compute), the
uint8 <-> float conversion runs on the GPU, convolutions use channels_last and cuDNN's
autotuned algorithms, and each input shape, once it has run plain, is captured as a CUDA
graph (torch's graph API; ``stylize_rt.gpu.graphs`` keeps the rules) and replayed. Every input,
controls included, is staged into a static per-chunk buffer before a replay, so a captured
graph draws the style of the frame it is given.
``torch.compile`` (Inductor: Triton kernels on the GPU) is an option; its kernels are
captured the same way. ``infer_device`` runs on frames already on the GPU, on the caller's stream.

Precision: ``fp32`` everywhere; ``fp16`` on CUDA and ``bf16`` (CPU with AVX-512-BF16/AMX, or
CUDA) run the convolutions under autocast, with FP32 islands like the export's FP16 graph:
instance norms, a multi-style model's whole conditional norms (statistics, per-style scale and
shift; autocast would run them in the low precision: FP16 statistics overflow) and
the first and last layers (in BF16 they cost up to 7 output levels on the embedded model; in
FP32, at most 2-3). ``auto`` = fp16 on CUDA, fp32 on CPU.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from stylize_rt import __version__, contract
from stylize_rt.contract import IO_LAYOUTS, TensorSpec
from stylize_rt.errors import BadInputError, MissingDependencyError
from stylize_rt.gpu import cuda
from stylize_rt.gpu.devices import nvidia_gpu_present
from stylize_rt.gpu.graphs import GraphCache
from stylize_rt.runtime.backends.base import BackendBase, check_feeds, check_rows, warm_up
from stylize_rt.runtime.backends.options import TorchOptions, make_options

MAX_GRAPHS = 8  # captured CUDA graphs kept (one per chunk shape)
MAX_SLOTS = 2 * MAX_GRAPHS  # static buffer sets kept (a slot without a graph is cheap to rebuild)

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


def torch_cuda_available() -> bool:
    """torch is installed and sees a CUDA GPU; torch is imported only where a GPU is present at all."""
    if importlib.util.find_spec("torch") is None or not nvidia_gpu_present():
        return False
    import torch  # a GPU is here: worth loading torch to ask it

    return bool(torch.cuda.is_available())


def control_specs(n_styles: int) -> list[TensorSpec]:
    """A multi-style generator graph's control inputs, as its ONNX export declares them (float32, batch first)."""
    f32 = np.dtype(np.float32)
    return [TensorSpec(contract.INPUT_STYLE, f32, (None, n_styles)), TensorSpec(contract.INPUT_STRENGTH, f32, (None,)),
            TensorSpec(contract.INPUT_PRESERVE_COLOR, f32, (None,))]


def _style_names(card: dict[str, Any], n_styles: int, checkpoint: Path) -> list[str]:
    """A multi-style checkpoint's style names in ``style``-weight order: its card's ``styles``, the
    list the export writes into ``stylize_rt.styles`` (empty for a single-style checkpoint)."""
    if n_styles == 1:
        return []
    names = card.get("styles")
    if not isinstance(names, list) or len(names) != n_styles or not all(isinstance(n, str) for n in names):
        raise BadInputError(f"{checkpoint / contract.CHECKPOINT_CARD}: a {n_styles}-style checkpoint card needs "
                            f"'styles': a list of {n_styles} names")
    return names


@dataclass
class _Slot:
    """Static tensors of one chunk shape: what a captured graph reads (``dev_inputs``: the frames, then
    any controls, in ``inputs`` order) and writes (``dev_out``)."""

    host_inputs: tuple  # pinned host tensors (None on the device path)
    dev_inputs: tuple
    dev_out: Any = None  # the eager output of the last plain run, or the graph's static output
    host_out: Any = None  # pinned, made once the output's shape is known


@dataclass
class _Graph:
    graph: Any  # torch.cuda.CUDAGraph
    slot: _Slot
    out: Any


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
        self.n_styles = generator.n_styles
        styles = _style_names(card, self.n_styles, Path(checkpoint))
        if self.n_styles > 1 and io_layout != "uint8_nhwc":
            raise BadInputError(f"a multi-style checkpoint runs as uint8_nhwc only, as its ONNX export "
                                f"(asked for io_layout {io_layout})")
        cuda_device = self.device.type == "cuda"
        if cuda_device and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self._autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        model = _wrapper_class(torch)(generator, io_layout, self.device.type, self._autocast_dtype)
        model = model.eval().to(self.device)
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        for p in model.parameters():
            p.requires_grad_(False)
        # On CUDA, per-shape kernels (recompiled when the shape changes, then made dynamic by
        # Dynamo): each shape is captured as a graph anyway. On CPU, one dynamic-shape compile.
        self._model = torch.compile(model, dynamic=None if cuda_device else True) if compile else model
        self.path = Path(checkpoint)
        self.card = card
        self.options = options
        self.copy_outputs = options.copy_outputs
        self._chunks = options.overlap_chunks
        self._slots: OrderedDict[tuple, _Slot] = OrderedDict()
        self._device_out = None  # the last infer_device output, kept alive until the next call
        self._host_ms = 0.0
        self._streams = self._make_streams() if cuda_device else None
        self._graphs = GraphCache(self._capture, self._launch, lambda entry: None,
                                  enabled=options.cuda_graph and self._graphs_supported(), max_graphs=MAX_GRAPHS)
        # CUDA events around upload / model / download, for the benchmarks (``last_timings``).
        self._events = (
            [torch.cuda.Event(enable_timing=True) for _ in range(4)] if options.timing and cuda_device else None
        )

        if io_layout == "uint8_nhwc":
            self.inputs = [TensorSpec(contract.INPUT_IMAGE, np.dtype(np.uint8), (None, None, None, 3))]
            self.outputs = [TensorSpec("output", np.dtype(np.uint8), (None, None, None, 3))]
        else:
            self.inputs = [TensorSpec(contract.INPUT_IMAGE, np.dtype(np.float32), (None, 3, None, None))]
            self.outputs = [TensorSpec("output", np.dtype(np.float32), (None, 3, None, None))]
        if self.n_styles > 1:
            self.inputs += control_specs(self.n_styles)
        self.metadata = {
            contract.VERSION: __version__,
            contract.IO_LAYOUT: io_layout,
            contract.TORCH_PRECISION: precision,
            contract.TORCH_DEVICE: str(self.device),
            contract.TORCH_COMPILE: str(bool(compile)).lower(),
        }
        if self.n_styles > 1:
            self.metadata[contract.STYLES] = json.dumps(styles)
        self.metadata[contract.GRID] = str(generator.config.grid_px)
        self.warmup_seconds = self._warm_up(options.warmup, *(options.warmup_shape or (256, 256)))

    # -- the pieces the CUDA path is made of (a test stand-in replaces them on the CPU) -------
    def _graphs_supported(self) -> bool:
        return self.device.type == "cuda"

    def _make_streams(self) -> dict[str, Any]:
        torch = self._torch
        with torch.cuda.device(self.device):
            return {name: torch.cuda.Stream(self.device) for name in ("h2d", "compute", "d2h")}

    def _stream_context(self, name: str):
        if self._streams is None:
            return contextlib.nullcontext()
        return self._torch.cuda.stream(self._streams[name])

    def _forward(self, x, *controls):
        """The model on device tensors: frames, then a multi-style model's controls (inference mode;
        cuDNN autotuned, IEEE FP32 where FP32 runs)."""
        torch = self._torch
        if self.io_layout == "float32_nchw":
            x = x.contiguous(memory_format=self._memory_format)
        flags = (torch.backends.cudnn.flags(enabled=True, benchmark=True, deterministic=False, allow_tf32=False)
                 if self.device.type == "cuda" else contextlib.nullcontext())
        with torch.inference_mode(), flags:
            return self._model(x, *controls)

    def _capture(self, key: tuple):
        """Capture the model on ``key``'s static input as a CUDA graph (not run); None if capture fails."""
        torch = self._torch
        slot = self._slots[key]
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=self._streams["compute"], capture_error_mode="thread_local"):
                out = self._forward(*slot.dev_inputs)
        except RuntimeError:
            return None
        return _Graph(graph, slot, out)

    def _launch(self, entry: _Graph) -> None:
        entry.graph.replay()  # on the current stream: the compute stream, or the caller's in infer_device
        entry.slot.dev_out = entry.out

    @property
    def graph_stats(self) -> dict[str, int]:
        """How calls ran so far: plain, captured, replayed, capture_failed, dropped."""
        return self._graphs.stats.to_dict()

    # -- slots ---------------------------------------------------------------------------
    def _slot(self, key: tuple, shapes: list[tuple[int, ...]], dtypes: list[np.dtype], pinned: bool) -> _Slot:
        """The static buffers of ``key``, one per input (``shapes``/``dtypes`` in ``inputs`` order)."""
        slot = self._slots.get(key)
        if slot is not None:
            self._slots.move_to_end(key)
            return slot
        torch, cuda_device = self._torch, self.device.type == "cuda"
        hosts, devs = [], []
        for shape, dtype in zip(shapes, dtypes):
            tdtype = torch.from_numpy(np.zeros(0, dtype)).dtype
            host = torch.empty(shape, dtype=tdtype, pin_memory=cuda_device) if pinned else None
            hosts.append(host)
            devs.append(torch.empty(shape, dtype=tdtype, device=self.device) if cuda_device or host is None else host)
        slot = self._slots[key] = _Slot(tuple(hosts), tuple(devs))
        while len(self._slots) > MAX_SLOTS:
            old_key, _ = self._slots.popitem(last=False)
            self._graphs.forget(old_key)
        return slot

    def _chunk_bounds(self, batch: int) -> list[tuple[int, int]]:
        """Split a batch into up to ``overlap_chunks`` equal parts (the last may be shorter)."""
        count = max(1, min(self._chunks, batch))
        size = -(-batch // count)
        return [(a, min(a + size, batch)) for a in range(0, batch, size)]

    # -- running -------------------------------------------------------------------------
    def _warm_up(self, runs: int, height: int, width: int) -> float:
        """``base.warm_up``'s blank frame; a multi-style model's with style 0 at full strength (the base
        warms up single-input models only, and a first call here may compile or capture)."""
        if self.n_styles == 1 or runs <= 0:
            return warm_up(self, runs, height, width)
        style = np.zeros((1, self.n_styles), np.float32)
        style[:, 0] = 1.0
        feeds = {contract.INPUT_IMAGE: np.zeros((1, height, width, 3), np.uint8), contract.INPUT_STYLE: style,
                 contract.INPUT_STRENGTH: np.ones(1, np.float32),
                 contract.INPUT_PRESERVE_COLOR: np.zeros(1, np.float32)}
        start = time.perf_counter()
        for _ in range(runs):
            self.infer(feeds)
        return time.perf_counter() - start

    def _host_arrays(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The feeds in ``inputs`` order, C-contiguous; a one-row control is repeated for every frame."""
        batch = feeds[contract.INPUT_IMAGE].shape[0]
        arrays = [feeds[contract.INPUT_IMAGE]]
        for spec in self.inputs[1:]:
            control = feeds[spec.name]
            check_rows(spec.name, control.shape[0], batch)
            arrays.append(control if control.shape[0] == batch else np.repeat(control, batch, axis=0))
        return [np.ascontiguousarray(a) for a in arrays]

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = self._host_arrays(feeds)
        if self._streams is None and not self._graphs.enabled:
            y = self._forward(*map(self._torch.from_numpy, arrays))  # CPU: zero-copy in, zero-copy out
            return {"output": y.contiguous().numpy()}
        device = self._torch.cuda.device(self.device) if self._streams is not None else contextlib.nullcontext()
        with self._torch.inference_mode(), device:  # static buffers and graph outputs are inference tensors
            return {"output": self._infer_staged(arrays)}

    def _infer_staged(self, arrays: list[np.ndarray]) -> np.ndarray:
        """Pinned staging, side-stream copies, chunks in flight together, per-chunk graphs. Each chunk
        takes its frames' rows of every control, staged into the chunk's static buffers."""
        start = time.perf_counter()
        events = self._events
        frames = arrays[0]
        bounds = self._chunk_bounds(frames.shape[0])
        slots = []
        for index, (a, b) in enumerate(bounds):
            key = ("host", (b - a, *frames.shape[1:]), frames.dtype.str, index)
            slot = self._slot(key, [(b - a, *x.shape[1:]) for x in arrays], [x.dtype for x in arrays], pinned=True)
            for host, array in zip(slot.host_inputs, arrays):
                np.copyto(host.numpy(), array[a:b])
            slots.append((key, slot))
        streams = self._streams
        uploaded = []
        with self._stream_context("h2d"):
            if events:
                events[0].record()
            for _, slot in slots:
                for host, dev in zip(slot.host_inputs, slot.dev_inputs):
                    if dev is not host:
                        dev.copy_(host, non_blocking=True)
                uploaded.append(self._record())
            if events:
                events[1].record()
        downloaded = []
        for (key, slot), ready in zip(slots, uploaded):
            with self._stream_context("compute"):
                if ready is not None:
                    streams["compute"].wait_event(ready)
                self._graphs.run(key, lambda slot=slot: setattr(slot, "dev_out", self._forward(*slot.dev_inputs)))
                computed = self._record()
                if events and slot is slots[-1][1]:
                    events[2].record()
            with self._stream_context("d2h"):
                if computed is not None:
                    streams["d2h"].wait_event(computed)
                if slot.host_out is None or tuple(slot.host_out.shape) != tuple(slot.dev_out.shape):
                    slot.host_out = (self._torch.empty(slot.dev_out.shape, dtype=slot.dev_out.dtype, pin_memory=True)
                                     if streams is not None else slot.dev_out)
                if slot.host_out is not slot.dev_out:
                    slot.host_out.copy_(slot.dev_out, non_blocking=True)
                downloaded.append(self._record())
        with self._stream_context("d2h"):
            if events:
                events[3].record()
        if downloaded and downloaded[-1] is not None:
            downloaded[-1].synchronize()
        outs = [slot.host_out.numpy() for _, slot in slots]
        if len(outs) == 1 and not self.copy_outputs:
            result = outs[0]
        else:
            result = np.concatenate(outs) if len(outs) > 1 else outs[0].copy()
        self._host_ms = (time.perf_counter() - start) * 1000.0
        return result

    def _record(self):
        """An event on the current stream (None on the CPU, where everything is already in order)."""
        if self._streams is None:
            return None
        event = self._torch.cuda.Event()
        event.record()
        return event

    def infer_device(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any] | None = None,
                     stream: Any = None) -> dict[str, "cuda.DeviceArray"]:
        """Zero-copy on frames already on the GPU, enqueued on the caller's stream; nothing is synchronized.

        ``inputs``/``outputs``: torch CUDA tensors, cupy/numba arrays (``__cuda_array_interface__``)
        or :class:`cuda.DeviceArray`; a multi-style model's controls are device arrays too.
        ``stream``: an int handle or a torch/cupy stream; None is the default stream (handle 0).
        Without ``outputs`` the result lives in the backend's memory until the next call. Repeated
        shapes replay a captured graph, as on the host path.
        """
        torch = self._torch
        if self.device.type != "cuda":
            raise BadInputError("infer_device needs the torch backend on CUDA (device='cuda')")
        arrays = {name: cuda.DeviceArray.from_object(value) for name, value in inputs.items()}
        check_feeds(self.inputs, arrays)
        handle = cuda.stream_handle(stream)
        target = torch.cuda.ExternalStream(handle, device=self.device) if handle else torch.cuda.default_stream(self.device)
        xs = [torch.as_tensor(arrays[spec.name], device=self.device) for spec in self.inputs]
        batch = xs[0].shape[0]
        for spec, x in zip(self.inputs[1:], xs[1:]):
            check_rows(spec.name, x.shape[0], batch)
        xs[1:] = [x.expand(batch, *x.shape[1:]) for x in xs[1:]]
        with torch.inference_mode(), torch.cuda.device(self.device), torch.cuda.stream(target):
            if self._graphs.enabled:
                key = ("device", tuple(xs[0].shape), arrays[contract.INPUT_IMAGE].dtype.str)
                slot = self._slot(key, [tuple(x.shape) for x in xs], [arrays[s.name].dtype for s in self.inputs],
                                  pinned=False)
                for dev, x in zip(slot.dev_inputs, xs):
                    dev.copy_(x)
                self._graphs.run(key, lambda: setattr(slot, "dev_out", self._forward(*slot.dev_inputs)))
                y = slot.dev_out
            else:
                y = self._forward(*xs)
            if outputs and "output" in outputs:
                out = cuda.DeviceArray.from_object(outputs["output"])
                if tuple(out.shape) != tuple(y.shape) or np.dtype(out.dtype) != self.outputs[0].dtype:
                    raise BadInputError(f"output must be {self.outputs[0].dtype} of shape {tuple(y.shape)}, "
                                        f"got {np.dtype(out.dtype)} {tuple(out.shape)}")
                torch.as_tensor(out, device=self.device).copy_(y)
                result = out
            else:
                self._device_out = y
                result = cuda.DeviceArray(int(y.data_ptr()), tuple(y.shape), self.outputs[0].dtype)
        return {"output": result}

    @property
    def last_timings(self) -> dict[str, float]:
        """H2D / compute / D2H milliseconds of the last CUDA ``infer`` (needs ``timing=True``), and
        ``host_ms``: the whole call on the host clock, staging copies included."""
        if not self._events:
            return {}
        self._events[3].synchronize()
        a, b, c, d = self._events
        return {"h2d_ms": a.elapsed_time(b), "compute_ms": b.elapsed_time(c), "d2h_ms": c.elapsed_time(d),
                "host_ms": self._host_ms}

    def close(self) -> None:
        if self._streams is not None:
            self._torch.cuda.synchronize(self.device)
        self._graphs.close()
        self._slots.clear()
        self._device_out = None
        self._model = None


def _wrapper_class(torch):
    """The export's IO convention around a generator, with autocast around the generator alone.

    The same modules the ONNX export wraps (``nets.generator.UInt8NHWC``, or
    ``MultiStyleUInt8NHWC`` with the control inputs), around a generator whose output comes back
    in float32: only the generator runs under autocast, so the uint8 <-> float conversions, the
    strength / colour arithmetic, the ``* 255`` and rounding stay float32 (in bfloat16, 255 * y is
    only exact to a whole level).
    """
    # the networks need torch, which the caller (the constructor) has loaded
    from stylize_rt.nets.generator import CondInstanceNorm, MultiStyleUInt8NHWC, UInt8NHWC

    class KeepFP32(torch.nn.Module):
        """Runs ``module`` in float32 inside an autocast region."""

        def __init__(self, module, device_type: str) -> None:
            super().__init__()
            self.module = module
            self.device_type = device_type

        def forward(self, *args):
            with torch.autocast(self.device_type, enabled=False):
                return self.module(*(None if a is None else a.float() for a in args))  # style is None: one style

    class CondInstanceNormFP32(CondInstanceNorm):
        """A conditional norm (statistics, ``style @ scale``, ``style @ shift``) in float32, sharing the
        original's parameters; still a ``CondInstanceNorm``, so the generator passes it the style."""

        def __init__(self, norm: CondInstanceNorm, device_type: str) -> None:
            torch.nn.Module.__init__(self)
            self.scale, self.shift = norm.scale, norm.shift
            self.device_type = device_type

        def forward(self, x, style):
            with torch.autocast(self.device_type, enabled=False):
                return super().forward(x.float(), style.float())

    def keep_fp32(generator, device_type: str):
        """FP32 islands, as in the export's FP16 graph: every instance norm (its statistics overflow
        FP16) and every conditional norm whole, plus the first and last layers, where BF16's 8-bit
        mantissa costs whole output levels."""
        for parent in list(generator.modules()):
            if isinstance(parent, CondInstanceNorm):
                continue  # replaced whole, below
            for name, child in list(parent.named_children()):
                if isinstance(child, CondInstanceNorm):
                    setattr(parent, name, CondInstanceNormFP32(child, device_type))
                elif isinstance(child, torch.nn.InstanceNorm2d):
                    setattr(parent, name, KeepFP32(child, device_type))
        for name in ("stem", "head"):
            if isinstance(getattr(generator, name, None), torch.nn.Module):
                setattr(generator, name, KeepFP32(getattr(generator, name), device_type))
        return generator

    class Autocast(torch.nn.Module):
        """The generator under autocast (FP32 islands inside), its output back in float32."""

        def __init__(self, generator, device_type: str, autocast_dtype) -> None:
            super().__init__()
            self.generator = keep_fp32(generator, device_type) if autocast_dtype is not None else generator
            self.device_type = device_type
            self.autocast_dtype = autocast_dtype

        def _run(self, function, *args):
            if self.autocast_dtype is None:
                return function(*args)
            # no cast cache: CUDA graphs capture the casts, and torch's graph docs ask for it off
            with torch.autocast(self.device_type, dtype=self.autocast_dtype, cache_enabled=False):
                y = function(*args)
            return y.to(torch.float32)

        def forward(self, x):
            return self._run(self.generator, x)

        def forward_nhwc(self, x, style=None):
            # uint8 frames take the generator's NHWC path, as the exported graph does (the
            # unshuffle stem folds the layout change into its space-to-depth)
            return self._run(self.generator.forward_nhwc, x, style)

    class ExportIO(torch.nn.Module):
        def __init__(self, generator, io_layout: str, device_type: str, autocast_dtype) -> None:
            super().__init__()
            net = Autocast(generator, device_type, autocast_dtype)
            if generator.n_styles > 1:
                self.net = MultiStyleUInt8NHWC(net)  # uint8 NHWC only (the constructor checks)
            else:
                self.net = UInt8NHWC(net) if io_layout == "uint8_nhwc" else net

        def forward(self, x, *controls):
            return self.net(x, *controls)

    return ExportIO


__all__ = ["TorchBackend", "control_specs", "cpu_flags", "cpu_has_fast_bf16", "torch_cuda_available",
           "torch_unavailable"]
