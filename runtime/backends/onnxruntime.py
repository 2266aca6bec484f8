"""ONNX Runtime backend: TensorRT EP -> CUDA EP -> CPU EP, whichever this onnxruntime build has.

``onnxruntime`` (CPU) and ``onnxruntime-gpu`` (CUDA + TensorRT EPs) are the same import, and
installing both leaves whichever unpacked last: :func:`provider_report` says which build is
here and which of its providers really start (a build lists its TensorRT EP even where
``libnvinfer`` is missing, and ORT then falls back silently). ``providers="auto"`` takes the
available ones in speed order; providers named explicitly must start, or opening fails.
The TensorRT EP builds engines
inside ORT: its engine and timing caches go under the same key as stylize-rt's own engine cache
(ONNX hash, profile shapes, precision, TensorRT version, GPU), so a second open is fast. On a GPU
provider, ``infer`` runs through an IO binding that keeps the output on the device and reuses
its buffer while the shape stays the same; ``infer_device`` binds other libraries' device memory.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from stylize_rt.contract import TensorSpec, grid_px
from stylize_rt.engines.cache import onnxruntime_trt_cache_dir
from stylize_rt.engines.shapes import Profile, check_shape, read_onnx_info, resolve_profile
from stylize_rt.errors import BadInputError, MissingDependencyError, first_line
from stylize_rt.gpu import cuda
from stylize_rt.runtime.backends.base import BackendBase, check_feeds, image_input_shape, warm_up
from stylize_rt.runtime.backends.options import OnnxRuntimeOptions, make_options

_ORT_DTYPES = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(bool)": np.dtype(np.bool_),
}
TENSORRT_EP, CUDA_EP, CPU_EP = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
PROVIDER_ORDER = (TENSORRT_EP, CUDA_EP, CPU_EP)
PROVIDER_ALIASES = {"tensorrt": TENSORRT_EP, "trt": TENSORRT_EP, "cuda": CUDA_EP, "cpu": CPU_EP}
GPU_PROVIDERS = (TENSORRT_EP, CUDA_EP)
ORT_INSTALL_HINT = ("ONNX Runtime is not installed: pip install 'stylize-rt[cpu]' "
                    "(or 'stylize-rt[gpu]' on an NVIDIA machine; one of the two, never both)")
# The PyPI distributions that install the one ``onnxruntime`` import package.
ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino",
                     "onnxruntime-qnn", "onnxruntime-training")


def _spec(arg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
    return TensorSpec(arg.name, _ORT_DTYPES.get(arg.type, np.dtype(object)), shape)


def _is_auto(requested: str | Sequence[str]) -> bool:
    return isinstance(requested, str) and requested.strip().lower() == "auto"


def resolve_providers(requested: str | Sequence[str], available: Sequence[str]) -> list[str]:
    """``"auto"`` -> the available ones of TensorRT, CUDA, CPU in that order; names/aliases are checked.

    CPU is always appended as the last resort for nodes a GPU provider does not take.
    """
    if isinstance(requested, str):
        if requested.strip().lower() == "auto":
            return [p for p in PROVIDER_ORDER if p in available] or [CPU_EP]
        requested = [p.strip() for p in requested.split(",") if p.strip()]
    names = [PROVIDER_ALIASES.get(str(p).lower(), str(p)) for p in requested]
    if not names or "auto" in names:
        raise BadInputError("providers: 'auto', or one or more of tensorrt, cuda, cpu (or full EP names)")
    missing = [p for p in names if p not in available]
    if missing:
        raise MissingDependencyError(
            f"ONNX Runtime provider {missing[0]} is not in this onnxruntime build (available: {', '.join(available)}); "
            "GPU providers come with 'pip install onnxruntime-gpu' (replacing onnxruntime)"
        )
    if CPU_EP not in names:
        names.append(CPU_EP)
    return names


def open_session(path: Path, options: OnnxRuntimeOptions):
    """Load ``path`` into an ``InferenceSession`` with the providers ``options`` ask for.

    Returns (session, providers asked for); ORT silently falls back to a later provider when one
    cannot start, which the backend reports.
    """
    try:
        import onnxruntime as ort  # imported at open: ``--help`` stays fast
    except ImportError:
        raise MissingDependencyError(ORT_INSTALL_HINT) from None

    if not path.is_file():
        raise BadInputError(f"model file not found: {path}")
    if options.precision not in ("auto", "fp16", "fp32", "int8"):
        raise BadInputError(f"unknown precision {options.precision!r} for ONNX Runtime (auto, fp16, fp32 or int8)")
    names = resolve_providers(options.providers, ort.get_available_providers())
    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = options.threads
    session_options.inter_op_num_threads = options.inter_threads
    session_options.log_severity_level = 3
    provider_list: list[Any] = []
    for name in names:
        if name == TENSORRT_EP:
            provider_list.append((name, tensorrt_ep_options(path, options)))
        elif name == CUDA_EP:
            provider_list.append((name, {"device_id": str(options.device)}))
        else:
            provider_list.append(name)
    try:
        session = ort.InferenceSession(str(path), session_options, providers=provider_list)
    except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail/InvalidProtobuf/... types
        raise BadInputError(f"cannot load ONNX model {path}: {first_line(exc)}") from None
    return session, names


def tensorrt_ep_profile(path: Path, options: OnnxRuntimeOptions) -> Profile:
    """The TensorRT EP's optimization profile: ``shapes``/``min_shape``/``opt_shape``/``max_shape``/``batch``
    as ``build-engine`` reads them (default 16x16 .. 720p .. 1920x1920). ORT never rebuilds an engine
    given explicit profiles, so feeds outside it are refused before ORT sees them."""
    info = read_onnx_info(path)
    return resolve_profile(info.inputs, list(options.shapes), options.min_shape, options.opt_shape,
                           options.max_shape, options.batch, grid=grid_px(info.metadata))


def tensorrt_ep_options(path: Path, options: OnnxRuntimeOptions) -> dict:
    """The TensorRT EP's options: precision, engine/timing caches under our cache key, profile shapes."""
    profile = tensorrt_ep_profile(path, options)
    cache = onnxruntime_trt_cache_dir(path, profile, options.precision, options.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    precision = options.precision
    ep = {
        "device_id": str(options.device),
        "trt_fp16_enable": "False" if precision == "fp32" else "True",
        "trt_int8_enable": "True" if precision == "int8" else "False",  # Q/DQ graphs: explicit quantization
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache),
    }
    if profile.inputs:
        def fmt(end: str) -> str:
            return ",".join(f"{i.name}:{'x'.join(map(str, getattr(i, end)))}" for i in profile.inputs)

        ep.update(trt_profile_min_shapes=fmt("min"), trt_profile_opt_shapes=fmt("opt"), trt_profile_max_shapes=fmt("max"))
    return ep


def trt_ep_warmup_shape(spec: TensorSpec, profile: Profile, height: int, width: int) -> tuple[int, ...] | None:
    """The warm-up feed shape on the TensorRT EP: ``height`` x ``width`` when the profile holds it, else
    the profile's opt shape (a warm-up outside an explicit profile fails the session). None: not an
    image input in the profile (warm up as any backend does)."""
    try:
        item = profile[spec.name]
    except KeyError:
        return None
    shape = image_input_shape(spec, height, width)
    return shape if shape is not None and item.contains(shape) else item.opt


def installed_distributions() -> list[str]:
    """Which ONNX Runtime distributions pip installed here (more than one share one package directory)."""
    found = []
    for name in ORT_DISTRIBUTIONS:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return found


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def probe_model() -> bytes:
    """A one-node ONNX model (Relu on a 1x4 float tensor) as protobuf bytes, written without the onnx
    package: what :func:`usable_providers` opens on each provider to see whether it really starts."""
    def value_info(name: str) -> bytes:
        dims = _field(1, _field(1, 1)) + _field(1, _field(1, 4))  # TensorShapeProto.dim: dim_value
        tensor = _field(1, 1) + _field(2, dims)  # elem_type FLOAT, shape
        return _field(1, name.encode()) + _field(2, _field(1, tensor))

    node = _field(1, b"x") + _field(2, b"y") + _field(3, b"probe") + _field(4, b"Relu")
    graph = _field(1, node) + _field(2, b"probe") + _field(11, value_info("x")) + _field(12, value_info("y"))
    return _field(1, 8) + _field(7, graph) + _field(8, _field(1, b"") + _field(2, 13))


@functools.lru_cache(maxsize=None)
def usable_providers(device: int = 0) -> tuple[str, ...]:
    """The providers of this build that really start a session here, in speed order (probed once).

    The GPU providers are opened on :func:`probe_model`; one whose session comes back on another
    provider is missing its libraries (TensorRT's ``libnvinfer``, cuDNN) or a GPU.
    """
    import onnxruntime as ort  # a hard dependency, imported when asked

    usable = []
    for name in ort.get_available_providers():
        if name == "AzureExecutionProvider":
            continue  # remote inference endpoints, not a device this runs on
        if name not in GPU_PROVIDERS:
            usable.append(name)
            continue
        options = ort.SessionOptions()
        options.log_severity_level = 4
        try:
            session = ort.InferenceSession(probe_model(), options,
                                           providers=[(name, {"device_id": str(device)}), CPU_EP])
        except Exception:  # noqa: BLE001 - a provider that cannot start is the answer, not an error
            continue
        if session.get_providers()[0] == name:
            usable.append(name)
    return tuple(sorted(usable, key=lambda p: PROVIDER_ORDER.index(p) if p in PROVIDER_ORDER else len(PROVIDER_ORDER)))


def provider_report() -> dict[str, Any]:
    """Which ONNX Runtime is installed and what it can run on: for ``stylize-rt models`` and ``bench``.

    ``problems`` lists what a user must fix: two builds installed over each other, or GPU providers
    the build lists that do not start (ORT would fall back to the CPU without a word).
    """
    try:
        import onnxruntime as ort  # a hard dependency; reported, not required, here
    except ImportError as exc:
        return {"version": None, "distributions": installed_distributions(), "listed": [], "usable": [],
                "problems": [f"onnxruntime cannot be imported ({first_line(exc)}); {ORT_INSTALL_HINT}"]}
    listed = list(ort.get_available_providers())
    usable = list(usable_providers())
    problems = []
    dists = installed_distributions()
    if len(dists) > 1:
        problems.append(
            f"{' and '.join(dists)} are installed over each other (one package directory; the last unpacked wins): "
            "pip uninstall -y " + " ".join(d.split()[0] for d in dists) + " && pip install onnxruntime-gpu (or onnxruntime)"
        )
    for name in listed:
        if name in GPU_PROVIDERS and name not in usable:
            why = ("TensorRT libraries this ORT was built against (libnvinfer) are missing or of another major "
                   "version" if name == TENSORRT_EP else "CUDA/cuDNN libraries or a GPU are missing")
            problems.append(f"{name} is in this build but does not start: {why}")
    return {"version": ort.__version__, "distributions": dists, "listed": listed, "usable": usable,
            "problems": problems}


def describe_providers(report: dict[str, Any]) -> list[str]:
    """:func:`provider_report` as lines for a terminal."""
    build = ", ".join(report["distributions"]) or "no onnxruntime distribution"
    lines = [f"ONNX Runtime {report['version'] or '-'} ({build}): providers that start here: "
             f"{', '.join(report['usable']) or 'none'}"]
    lines += [f"  problem: {p}" for p in report["problems"]]
    return lines


def missing_providers(requested: str | Sequence[str]) -> list[str]:
    """The execution providers asked for that this onnxruntime build lacks ("auto" lacks none)."""
    import onnxruntime as ort  # asked only when onnxruntime is installed

    if isinstance(requested, str):
        if requested.strip().lower() == "auto":
            return []
        requested = [p.strip() for p in requested.split(",") if p.strip()]
    available = ort.get_available_providers()
    return [name for name in (PROVIDER_ALIASES.get(str(p).lower(), str(p)) for p in requested) if name not in available]


class OnnxRuntimeBackend(BackendBase):
    """Runs an ``.onnx`` file with ONNX Runtime (options: :class:`OnnxRuntimeOptions`).

    The TensorRT-EP-only options (precision: auto = fp16, fp16, fp32, int8 for Q/DQ graphs;
    shapes: frame presets for the engine profile, default 360p..1080p) do not change what
    the other EPs run: they run the graph's own types.
    """

    name = "onnxruntime"

    def __init__(self, model_path: str | os.PathLike[str], options: OnnxRuntimeOptions | None = None,
                 **fields: Any) -> None:
        options = make_options(OnnxRuntimeOptions, options, self.name, **fields)
        path = Path(model_path)
        self._session, names = open_session(path, options)
        self.options = options
        self.path = path
        self.device = options.device
        self.inputs = [_spec(a) for a in self._session.get_inputs()]
        self.outputs = [_spec(a) for a in self._session.get_outputs()]
        self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        self.providers = self._session.get_providers()
        if self.providers[0] != names[0]:
            # ORT falls back silently when e.g. the TensorRT or cuDNN libraries are missing.
            why = "missing TensorRT (libnvinfer)" if names[0] == TENSORRT_EP else "missing CUDA/cuDNN libraries"
            if not _is_auto(options.providers):
                self._session = None
                raise MissingDependencyError(
                    f"ONNX Runtime could not start {names[0]} for {path.name} ({why}, or no GPU); it would run on "
                    f"{self.providers[0]}: see 'stylize-rt models' for the providers that start here"
                )
            print(f"stylize-rt: warning: ONNX Runtime could not start {names[0]} ({why}?); running on "
                  f"{self.providers[0]}", file=sys.stderr)
        self.on_gpu = self.providers[0] in GPU_PROVIDERS
        # The TensorRT EP's explicit profile: ORT never rebuilds an engine for shapes outside it.
        self.trt_profile = tensorrt_ep_profile(path, options) if self.providers[0] == TENSORRT_EP else None
        self._binding = self._session.io_binding() if (self.on_gpu and options.io_binding) else None
        self._bound_outputs: dict[tuple, list] = {}
        self.warmup_seconds = self._warm_up(options)

    def _warm_up(self, options: OnnxRuntimeOptions) -> float:
        """Warm up at ``warmup_shape``; on the TensorRT EP, inside its profile (see :func:`trt_ep_warmup_shape`)."""
        height, width = options.warmup_shape or (256, 256)
        if self.trt_profile is None or len(self.inputs) != 1 or options.warmup <= 0:
            return warm_up(self, options.warmup, height, width)
        spec = self.inputs[0]
        shape = trt_ep_warmup_shape(spec, self.trt_profile, height, width)
        if shape is None:
            return warm_up(self, options.warmup, height, width)
        feeds = {spec.name: np.zeros(shape, spec.dtype)}
        start = time.perf_counter()
        for _ in range(options.warmup):
            self.infer(feeds)
        return time.perf_counter() - start

    def _check_profile(self, feeds: Mapping[str, Any]) -> None:
        if self.trt_profile is not None:
            for name, array in feeds.items():
                check_shape(self.trt_profile, name, tuple(array.shape))

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._check_profile(feeds)
        if self._binding is None:
            results = self._session.run(None, feeds)
            return {spec.name: value for spec, value in zip(self.outputs, results)}
        binding = self._binding
        key = tuple((name, array.shape) for name, array in sorted(feeds.items()))
        for name, array in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
        reuse = self._bound_outputs.get(key)
        for i, spec in enumerate(self.outputs):
            if reuse is not None:
                binding.bind_ortvalue_output(spec.name, reuse[i])
            else:
                binding.bind_output(spec.name, "cuda", self.device)
        self._session.run_with_iobinding(binding)
        values = binding.get_outputs()
        if reuse is None:
            # Keep this shape's device outputs: the next call at the same shape writes into them.
            self._bound_outputs = {key: values}
        return {spec.name: value.numpy() for spec, value in zip(self.outputs, values)}

    def infer_device(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any] | None = None, stream: Any = None):
        """Zero-copy on CUDA memory from torch/cupy/pycuda (``__cuda_array_interface__``) or DeviceArray.

        ORT runs synchronously on its own stream: the caller's ``stream`` (None: the default
        stream) is synchronized first so the inputs are complete. Returns ``{name: DeviceArray}``; unbound outputs live in ORT-owned
        memory until the next call.
        """
        if not self.on_gpu:
            raise BadInputError(f"infer_device needs a GPU provider; this session runs on {self.providers[0]}")
        arrays = {name: cuda.DeviceArray.from_object(value) for name, value in inputs.items()}
        check_feeds(self.inputs, arrays)
        self._check_profile(arrays)
        # ORT's stream is not the caller's: the caller's (None: the default stream) must be done first.
        cudart = cuda.import_cudart()
        cuda.check(cudart.cudaStreamSynchronize(cuda.stream_handle(stream)), "cudaStreamSynchronize")
        binding = self._session.io_binding()
        for spec in self.inputs:
            array = arrays[spec.name]
            binding.bind_input(spec.name, "cuda", self.device, np.dtype(array.dtype), list(array.shape), array.ptr)
        for spec in self.outputs:
            if outputs and spec.name in outputs:
                array = cuda.DeviceArray.from_object(outputs[spec.name])
                binding.bind_output(spec.name, "cuda", self.device, np.dtype(array.dtype), list(array.shape), array.ptr)
            else:
                binding.bind_output(spec.name, "cuda", self.device)
        self._session.run_with_iobinding(binding)
        self._device_outputs = binding.get_outputs()  # keep ORT's memory alive until the next call
        return {
            spec.name: cuda.DeviceArray(int(v.data_ptr()), tuple(v.shape()), np.dtype(spec.dtype))
            for spec, v in zip(self.outputs, self._device_outputs)
        }

    def close(self) -> None:
        self._binding = None
        self._bound_outputs = {}
        self._session = None
