"""``build_engine``: ONNX -> serialized TensorRT engine + sidecar, on TensorRT 10 or 11.

Precision is where the two versions differ:

* TensorRT 11 only builds *strongly typed* networks: every tensor keeps the type the ONNX
  graph gives it. The mixed-precision FP16 ONNX that ``stylize-rt export`` writes (FP32
  islands around InstanceNormalization, Casts around them) therefore builds as it is; there is
  no FP16 builder flag to set, and an FP32 ONNX builds an FP32 engine.
* TensorRT 10 (weak typing, the default there) takes the FP16 builder flag, and keeps the
  layers export lists in the ONNX metadata ``stylize_rt.fp32_layers`` in FP32 through
  per-layer precision plus ``OBEY_PRECISION_CONSTRAINTS``.

The code branches on what the installed TensorRT *has* (``hasattr(trt.BuilderFlag, "FP16")``),
never on version strings. INT8 means an explicitly quantized (Q/DQ) ONNX: TensorRT 10 gets
the INT8 flag, TensorRT 11 reads the Q/DQ types from the graph; calibration is not supported.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stylize_rt import __version__
from stylize_rt.contract import FP32_LAYERS, for_tensorrt, fp32_layers, grid_px
from stylize_rt.engines.shapes import Profile, read_onnx_info, resolve_profile
from stylize_rt.engines.sidecar import (
    HARDWARE_COMPATIBILITY,
    PRECISIONS,
    Sidecar,
    TensorInfo,
    file_sha256,
    write_sidecar,
)
from stylize_rt.errors import BadInputError, StylizeError
from stylize_rt.fileio import write_atomic
from stylize_rt.gpu import cuda
from stylize_rt.gpu.tensorrt import import_tensorrt, numpy_dtype, running_environment


@dataclass
class BuildConfig:
    """Everything that decides what engine comes out of a build (and so its cache key)."""

    precision: str = "fp16"  # fp16 | fp32 | int8 (Q/DQ ONNX) | auto (FP16 where the TensorRT/graph allow)
    shapes: list[str] = field(default_factory=list)  # frame presets: ["720p"], ["480p", "1080p"]
    min_shape: str | None = None  # "1x360x640x3", "input:1x360x640x3" or "640x360"
    opt_shape: str | None = None
    max_shape: str | None = None
    batch: str = "1"  # N or MIN:OPT:MAX
    workspace_mib: int | None = None  # None: TensorRT's default (the GPU's memory)
    optimization_level: int = 3  # 0..5: higher searches more tactics, builds slower
    strongly_typed: bool | None = None  # None: TensorRT 11 always; TensorRT 10 weak typing + flags
    hardware_compatibility: str = "none"  # none | ampere_plus | same_compute_capability
    version_compatible: bool = False
    detailed_profiling: bool = False  # keep layer info for the engine inspector
    timing_cache: str | None = None  # file reused across builds (read if present, then updated)
    device: int = 0
    progress: bool = True
    verbose: bool = False

    def validate(self) -> None:
        if self.precision not in (*PRECISIONS, "auto"):
            raise BadInputError(f"unknown precision {self.precision!r} (choose from {', '.join(PRECISIONS)}, auto)")
        if not 0 <= self.optimization_level <= 5:
            raise BadInputError(f"builder optimization level must be 0..5, got {self.optimization_level}")
        if self.hardware_compatibility not in HARDWARE_COMPATIBILITY:
            raise BadInputError(
                f"unknown hardware compatibility {self.hardware_compatibility!r} "
                f"(choose from {', '.join(HARDWARE_COMPATIBILITY)})"
            )
        if self.workspace_mib is not None and self.workspace_mib <= 0:
            raise BadInputError(f"workspace must be a positive number of MiB, got {self.workspace_mib}")

    def engine_options(self) -> dict[str, Any]:
        """The options that change the engine (not where files go or how progress shows)."""
        return {
            "precision": self.precision,
            "workspace_mib": self.workspace_mib,
            "optimization_level": self.optimization_level,
            "strongly_typed": self.strongly_typed,
            "hardware_compatibility": self.hardware_compatibility,
            "version_compatible": self.version_compatible,
            "detailed_profiling": self.detailed_profiling,
        }


def resolve_build_profile(onnx_path: str | os.PathLike[str], config: BuildConfig) -> Profile:
    """The optimization profile ``config`` asks for, laid out for this ONNX file's inputs."""
    info = read_onnx_info(onnx_path)
    return resolve_profile(info.inputs, config.shapes, config.min_shape, config.opt_shape, config.max_shape,
                           config.batch, grid=grid_px(info.metadata))


def build_engine(
    onnx_path: str | os.PathLike[str], engine_path: str | os.PathLike[str], config: BuildConfig | None = None
) -> Sidecar:
    """Build ``onnx_path`` into ``engine_path`` (+ ``engine_path.json``) and return the sidecar."""
    config = config or BuildConfig()
    config.validate()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    info = read_onnx_info(onnx_path)
    if not for_tensorrt(info.metadata):
        raise BadInputError(
            f"{onnx_path.name} is the ONNX Runtime CPU form of an INT8 graph (8-bit pads ahead of the convs); "
            "TensorRT reads symmetric int8 only: export one with 'stylize-rt export generator CKPT -o OUT.onnx "
            "--precision int8' (--int8-target tensorrt, the default), or build FP16 from generator.onnx"
        )
    trt = import_tensorrt()
    cuda.require_gpu(config.device)
    cuda.check(cuda.import_cudart().cudaSetDevice(config.device), "cudaSetDevice")
    env = running_environment(config.device)
    profile = resolve_profile(info.inputs, config.shapes, config.min_shape, config.opt_shape, config.max_shape,
                              config.batch, grid=grid_px(info.metadata))
    onnx_sha256 = file_sha256(onnx_path)

    logger = trt.Logger(trt.Logger.VERBOSE if config.verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    if builder is None:
        raise StylizeError("TensorRT could not create a builder (CUDA initialization failed?)")
    weak_typing_available = hasattr(trt.BuilderFlag, "FP16")
    strongly_typed = (not weak_typing_available) if config.strongly_typed is None else config.strongly_typed
    if not strongly_typed and not weak_typing_available:
        raise BadInputError(f"TensorRT {trt.__version__} only builds strongly typed networks; drop --weakly-typed")
    flags = 0
    if strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    native_norm = getattr(getattr(trt, "OnnxParserFlag", None), "NATIVE_INSTANCENORM", None)
    if native_norm is not None:  # the 10.x default, set anyway: conditional norms compute their scale/B
        parser.set_flag(native_norm)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)).strip().replace("\n", " ") for i in range(parser.num_errors)]
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise BadInputError(
            f"TensorRT {trt.__version__} cannot parse {onnx_path.name}: {errors[0] if errors else 'unknown error'}{more}"
        )

    builder_config = builder.create_builder_config()
    if config.workspace_mib:
        builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mib << 20)
    builder_config.builder_optimization_level = config.optimization_level
    precision = _resolve_precision(trt, network, config.precision, strongly_typed)
    notes = _configure_precision(trt, network, builder_config, precision, strongly_typed, info.metadata)

    if profile.inputs:  # a fully static graph takes no profile
        trt_profile = builder.create_optimization_profile()
        for item in profile.inputs:
            trt_profile.set_shape(item.name, item.min, item.opt, item.max)
        builder_config.add_optimization_profile(trt_profile)

    if config.hardware_compatibility != "none":
        level = {"ampere_plus": "AMPERE_PLUS", "same_compute_capability": "SAME_COMPUTE_CAPABILITY"}
        name = level[config.hardware_compatibility]
        if not hasattr(trt.HardwareCompatibilityLevel, name):
            raise BadInputError(f"TensorRT {trt.__version__} has no hardware compatibility level {name}")
        builder_config.hardware_compatibility_level = getattr(trt.HardwareCompatibilityLevel, name)
    if config.version_compatible:
        builder_config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if config.detailed_profiling:
        builder_config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED

    timing_cache = _load_timing_cache(builder_config, config.timing_cache)
    monitor = _progress_monitor(trt) if config.progress else None
    if monitor is not None:
        builder_config.progress_monitor = monitor

    start = time.perf_counter()
    with _cancel_on_sigint(monitor):
        plan = builder.build_serialized_network(network, builder_config)
    build_seconds = time.perf_counter() - start
    if monitor is not None:
        monitor.close()
        if monitor.cancelled:
            raise KeyboardInterrupt
    if plan is None:
        raise StylizeError(
            f"TensorRT {trt.__version__} could not build {onnx_path.name} (see TensorRT's messages above)"
        )
    if timing_cache:
        _save_timing_cache(builder_config, timing_cache)

    data = memoryview(plan)
    write_atomic(engine_path, data)
    io = [_tensor_info(trt, network.get_input(i), "input", numpy_dtype) for i in range(network.num_inputs)]
    io += [_tensor_info(trt, network.get_output(i), "output", numpy_dtype) for i in range(network.num_outputs)]
    flags_used = {**config.engine_options(), "strongly_typed": strongly_typed, **notes}
    if config.timing_cache:
        flags_used["timing_cache"] = str(config.timing_cache)
    sidecar = Sidecar(
        tensorrt_version=env.tensorrt_version,
        gpu_name=env.gpu_name,
        compute_capability=env.compute_capability,
        precision=precision,
        typing="strong" if strongly_typed else "weak",
        profiles=[profile],
        io=io,
        onnx_sha256=onnx_sha256,
        engine_sha256=file_sha256(engine_path),
        engine_bytes=engine_path.stat().st_size,
        onnx_path=str(onnx_path),
        build_flags=flags_used,
        build_seconds=round(build_seconds, 3),
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        metadata={k: v for k, v in info.metadata.items() if k != FP32_LAYERS},
        stylize_rt_version=__version__,
    )
    write_sidecar(engine_path, sidecar)
    return sidecar


def _resolve_precision(trt, network, requested: str, strongly_typed: bool) -> str:
    """``auto`` (what running an .onnx through the engine cache asks for): FP16 where possible.

    Weakly typed builds can always lower to FP16; a strongly typed build has the graph's types,
    so an FP32 graph gives an FP32 engine there, said so in the sidecar rather than refused.
    """
    if requested != "auto":
        return requested
    if strongly_typed:
        return "fp16" if trt.float16 in _network_types(trt, network) else "fp32"
    return "fp16"


def _configure_precision(trt, network, builder_config, precision: str, strongly_typed: bool, metadata) -> dict:
    """Set builder flags / layer precisions; return notes for the sidecar's build flags."""
    types = _network_types(trt, network)
    quantized = _has_qdq(trt, network)
    if precision == "int8" and not quantized:
        raise BadInputError(
            "INT8 needs an explicitly quantized ONNX (QuantizeLinear/DequantizeLinear nodes, e.g. from "
            "NVIDIA ModelOpt); calibration at build time is not supported"
        )
    if strongly_typed:
        # Types come from the graph: check the graph matches what was asked for, loudly.
        if precision == "fp16" and trt.float16 not in types:
            raise BadInputError(
                "the ONNX graph is float32 and this build is strongly typed (TensorRT 11 builds only these), so it "
                "would give an FP32 engine: export a mixed-precision FP16 ONNX, or pass --precision fp32"
            )
        if precision == "fp32" and trt.float16 in types:
            raise BadInputError(
                "the ONNX graph computes in float16; a strongly typed build keeps its types: use --precision fp16 "
                "or export a float32 ONNX"
            )
        return {"graph_float16": trt.float16 in types}
    notes: dict[str, Any] = {"graph_float16": trt.float16 in types}
    if precision in ("fp16", "int8"):
        builder_config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        builder_config.set_flag(trt.BuilderFlag.INT8)
    if precision == "fp32" and trt.float16 in types:
        print(
            "stylize-rt: warning: the ONNX graph has float16 tensors; they stay float16 in an 'fp32' build",
            file=sys.stderr,
        )
    if precision != "fp32":
        pinned = _pin_fp32_layers(trt, network, set(fp32_layers(metadata)))
        if pinned:
            builder_config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        notes["fp32_layers_pinned"] = pinned
    return notes


def matches_node(layer_name: str, node_names: set[str]) -> bool:
    """Exact names only. The ONNX parser names a node's layer after the node, and the extra layers
    it adds get a suffix from one counter shared by the whole network (``name_37``), so a suffixed
    name says nothing about which node it came from: ``/Transpose_1`` is another node's layer."""
    return layer_name in node_names


def _pin_fp32_layers(trt, network, names: set[str]) -> int:
    """Weak typing: keep the layers of the listed ONNX nodes, and their outputs, in FP32."""
    if not names:
        return 0
    pinned = 0
    floats = (trt.float32, trt.float16)
    cast = getattr(trt.LayerType, "CAST", None)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if not matches_node(layer.name, names) or layer.type == cast:
            continue  # a Cast's output type *is* its job; export's uint8<->float casts stay as they are
        float_outputs = [j for j in range(layer.num_outputs) if layer.get_output(j).dtype in floats]
        if not float_outputs:
            continue  # shape arithmetic and integer layers have no precision to pin
        layer.precision = trt.float32
        for j in float_outputs:
            layer.set_output_type(j, trt.float32)
        pinned += 1
    if pinned == 0:
        print(
            f"stylize-rt: warning: none of the {len(names)} layers listed in {FP32_LAYERS} was found in the "
            "parsed network; nothing is pinned to FP32",
            file=sys.stderr,
        )
    return pinned


def _network_types(trt, network) -> set:
    types = set()
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            types.add(layer.get_output(j).dtype)
    return types


def _has_qdq(trt, network) -> bool:
    qdq = {getattr(trt.LayerType, n) for n in ("QUANTIZE", "DEQUANTIZE") if hasattr(trt.LayerType, n)}
    return any(network.get_layer(i).type in qdq for i in range(network.num_layers))


def _tensor_info(trt, tensor, mode: str, numpy_dtype) -> TensorInfo:
    return TensorInfo(tensor.name, mode, numpy_dtype(trt, tensor.dtype).name, tuple(int(d) for d in tensor.shape))


def _load_timing_cache(builder_config, path: str | None):
    """Start from the timing cache file when there is one: a rebuild then skips most tactic timing."""
    if not path:
        return None
    path = Path(path)
    blob = b""
    if path.is_file():
        blob = path.read_bytes()
    cache = builder_config.create_timing_cache(blob)
    if not builder_config.set_timing_cache(cache, False):
        print(f"stylize-rt: warning: timing cache {path} is from another GPU or version; starting a new one",
              file=sys.stderr)
        builder_config.set_timing_cache(builder_config.create_timing_cache(b""), False)
    return path


def _save_timing_cache(builder_config, path: Path) -> None:
    cache = builder_config.get_timing_cache()
    if cache is not None:
        write_atomic(path, memoryview(cache.serialize()))


def _progress_monitor(trt):
    """A ``trt.IProgressMonitor`` that draws one tqdm bar per build phase (nested phases indent)."""
    from tqdm import tqdm  # only while a build runs

    class TqdmProgressMonitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._bars: dict[str, Any] = {}
            self.cancelled = False

        def phase_start(self, phase_name, parent_phase, num_steps):
            with contextlib.suppress(Exception):  # a drawing problem must never break the build
                self._bars[phase_name] = tqdm(
                    total=num_steps, desc=phase_name, position=len(self._bars), leave=False,
                    file=sys.stderr, unit="step", dynamic_ncols=True,
                )

        def step_complete(self, phase_name, step):
            bar = self._bars.get(phase_name)
            if bar is not None:
                bar.update(step + 1 - bar.n)
            return not self.cancelled  # False asks TensorRT to stop the build

        def phase_finish(self, phase_name):
            bar = self._bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

        def close(self) -> None:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()

    return TqdmProgressMonitor()


class _cancel_on_sigint:
    """Ctrl-C during a build: ask TensorRT to stop at its next step instead of waiting minutes."""

    def __init__(self, monitor) -> None:
        self.monitor = monitor
        self.previous = None

    def __enter__(self):
        if self.monitor is not None and threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                self.monitor.cancelled = True

            self.previous = signal.signal(signal.SIGINT, handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


__all__ = ["BuildConfig", "build_engine", "resolve_build_profile", "matches_node"]
