"""Typed options of each backend: one dataclass per backend, the shared fields in a base.

Options are checked when they are made, not discovered by trying a constructor: an option a
backend does not have is a one-line error naming the ones it has. Code that does not care
which backend runs (``run``, ``demo``, the benchmarks) names only the shared fields of
``BackendOptions``, which every backend has; each backend keeps its own defaults for the rest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

from stylize_rt.errors import BadInputError

PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")


@dataclass
class BackendOptions:
    """What every backend understands.

    ``threads``: CPU intra-op threads (0 = the library's default; GPU backends ignore it).
    ``precision``: ``auto`` lets the backend pick; a backend that cannot honour an explicit
    one says so when it opens. ``warmup`` runs at ``warmup_shape`` ((H, W), or a full input
    shape for TensorRT; None = the engine's profile opt shape) are done at open and reported
    as ``warmup_seconds``.
    """

    threads: int = 0
    precision: str = "auto"
    warmup: int = 1
    warmup_shape: tuple[int, ...] | None = (256, 256)

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise BadInputError(f"threads must be 0 or more (got {self.threads})")
        if self.precision not in PRECISIONS:
            raise BadInputError(f"unknown precision {self.precision!r} (choose from {', '.join(PRECISIONS)})")
        if self.warmup < 0:
            raise BadInputError(f"warmup must be 0 or more (got {self.warmup})")


@dataclass
class OnnxRuntimeOptions(BackendOptions):
    """ONNX Runtime: ``providers`` "auto" (TensorRT EP, CUDA EP, CPU, whichever the build has and can
    start), a list of EP names or aliases ("tensorrt", "cuda", "cpu": the first one named must be
    the one the session gets, else opening fails); ``inter_threads`` between independent nodes;
    ``device`` the CUDA ordinal; ``shapes`` (frame presets), ``min_shape``/``opt_shape``/``max_shape``
    and ``batch`` (as ``build-engine`` takes them) make the TensorRT EP's profile, and ``cache_dir``
    its caches: those concern the TensorRT EP only; ``io_binding`` keeps GPU outputs on the device."""

    providers: str | Sequence[str] = "auto"
    inter_threads: int = 0
    device: int = 0
    shapes: Sequence[str] = ()
    min_shape: str | None = None
    opt_shape: str | None = None
    max_shape: str | None = None
    batch: str = "1"
    cache_dir: str | None = None
    io_binding: bool = True


@dataclass
class TensorrtOptions(BackendOptions):
    """TensorRT: ``device`` (CUDA ordinal), ``cuda_graph`` (capture each repeated input shape and
    replay it), ``timing`` (CUDA events per call, read as ``last_timings``), ``copy_outputs`` (False
    returns views into the pinned output buffer, valid until the next call), ``verify_hash``
    (SHA-256 of the engine against its sidecar), ``allow_host_code`` (deserialize a plan that embeds
    host code, i.e. a version-compatible engine without a sidecar saying so); for an ``.onnx`` model,
    ``build`` (an ``engines.build.BuildConfig``; default: ``precision`` and ``shapes``), ``cache_dir``
    and ``fallback`` (frames outside the engine's profile run on ONNX Runtime from the same file, with
    a one-line note, instead of being refused; ``auto`` turns it on)."""

    warmup: int = 2
    warmup_shape: tuple[int, ...] | None = None
    device: int = 0
    cuda_graph: bool = True
    timing: bool = False
    copy_outputs: bool = True
    verify_hash: bool = True
    allow_host_code: bool = False
    shapes: Sequence[str] = ()
    build: Any = None
    cache_dir: str | None = None
    fallback: bool = False


@dataclass
class TorchOptions(BackendOptions):
    """PyTorch: ``device`` ("cpu", "cuda", "cuda:1"; None = CUDA where torch sees a GPU, else CPU),
    ``compile`` (``torch.compile``: Inductor; dynamic shapes on CPU, per-shape kernels on CUDA),
    ``channels_last`` (NHWC memory for the convolutions), ``io_layout`` (uint8_nhwc or
    float32_nchw), ``timing`` (CUDA events per call). CUDA only: ``cuda_graph`` (capture each
    repeated input shape with torch's graph API and replay it), ``overlap_chunks`` (a batch is
    split into this many chunks whose uploads and downloads, on side streams, overlap the other
    chunks' compute; 1 = one chunk), ``copy_outputs`` (False returns views of the pinned output
    buffer, valid until the next call)."""

    device: str | None = None
    compile: bool = False
    channels_last: bool = True
    io_layout: str = "uint8_nhwc"
    timing: bool = False
    omp_wait_policy: str | None = None  # "PASSIVE"/"ACTIVE" set before torch loads (None: OpenMP's default)
    cuda_graph: bool = True
    overlap_chunks: int = 2
    copy_outputs: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.overlap_chunks < 1:
            raise BadInputError(f"overlap_chunks must be 1 or more (got {self.overlap_chunks})")


@dataclass
class TritonOptions(BackendOptions):
    """Triton client (``triton://`` URLs): ``timeout_s`` bounds every inference request,
    ``connect_timeout_s`` the checks at open (live, ready, metadata); ``shared_memory`` sends
    frames through POSIX shared memory registered with the server (``auto``: when the URL's
    host is loopback, falling back to the request body if the server cannot map it);
    ``threads`` and ``precision`` belong to the server's model (an explicit precision is refused)."""

    timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    shared_memory: str = "auto"  # frames through POSIX shared memory: auto (loopback servers), on, off

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.timeout_s > 0 and self.connect_timeout_s > 0):
            raise BadInputError(f"timeouts must be positive (got {self.timeout_s}, {self.connect_timeout_s})")


Options = TypeVar("Options", bound=BackendOptions)


def make_options(kind: type[Options], options: Options | None = None, backend: str = "", **fields: Any) -> Options:
    """``kind`` from ``options`` (already of that kind, or None for the defaults) updated by ``fields``.

    An unknown field, or options made for another backend, is a one-line ``BadInputError``.
    """
    names = {f.name for f in dataclasses.fields(kind)}
    label = backend or kind.__name__
    unknown = sorted(set(fields) - names)
    if unknown:
        raise BadInputError(f"backend {label} has no option {unknown[0]!r} (options: {', '.join(sorted(names))})")
    if options is None:
        return kind(**fields)
    if type(options) is not kind:
        raise BadInputError(f"{type(options).__name__} are not options of backend {label}")
    return dataclasses.replace(options, **fields)


__all__ = ["PRECISIONS", "BackendOptions", "OnnxRuntimeOptions", "TensorrtOptions", "TorchOptions", "TritonOptions",
           "make_options"]
