"""Loading a serialized TensorRT engine: sidecar checks first, then deserialization.

Loading is separate from running (the runtime's ``TensorrtBackend`` takes a
:class:`LoadedEngine`), as Polygraphy separates its loaders from its runners: a foreign,
truncated or replaced engine is refused here with the sidecar's reason before TensorRT sees
it, and ``stylize-rt inspect --layers`` reads an engine without opening a backend.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylize_rt import contract
from stylize_rt.contract import TensorSpec
from stylize_rt.engines.shapes import InputProfile, Profile
from stylize_rt.engines.sidecar import Sidecar, check_compatible, check_engine_file, read_sidecar, sidecar_path
from stylize_rt.errors import BadInputError, first_line
from stylize_rt.gpu import cuda
from stylize_rt.gpu.tensorrt import import_tensorrt, numpy_dtype, running_environment


@dataclass
class LoadedEngine:
    """A deserialized engine with what a runner needs to know about it."""

    path: Path
    trt: Any  # the tensorrt module
    engine: Any  # trt.ICudaEngine
    keepalive: tuple  # (logger, runtime): an engine must not outlive them
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    profile: Profile  # profile 0 as the engine reports it (the sidecar is informative; the engine decides)
    sidecar: Sidecar | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def metadata(self) -> dict[str, str]:
        """The ONNX metadata carried over by the sidecar, plus the engine's precision."""
        metadata = dict(self.sidecar.metadata) if self.sidecar else {}
        if self.sidecar:
            metadata.setdefault(contract.ENGINE_PRECISION, self.sidecar.precision)
        return metadata

    def layer_information(self) -> str:
        """TensorRT's engine inspector JSON: each layer's kernel and precision (FP32 islands show here).

        Names only, unless the engine was built with ``--detailed-profiling``.
        """
        inspector = self.engine.create_engine_inspector()
        return inspector.get_engine_information(self.trt.LayerInformationFormat.JSON)

    def release(self) -> None:
        self.engine = None
        self.keepalive = ()


def deserialize(trt, path: Path, host_code: bool = False):
    """(keepalive, engine) from a plan file; a one-line error for one TensorRT cannot read.

    ``host_code``: the plan is version-compatible (``--version-compatible``), so it embeds the
    lean runtime as host code, which TensorRT only deserializes once
    ``runtime.engine_host_code_allowed`` is set (default False: such a plan would read as corrupt).
    """
    plan = path.read_bytes()
    if not plan:
        raise BadInputError(f"engine file {path} is empty")
    logger = trt.Logger(trt.Logger.ERROR)
    runtime = trt.Runtime(logger)
    if host_code:
        if not hasattr(runtime, "engine_host_code_allowed"):
            raise BadInputError(
                f"{path.name} is a version-compatible engine; TensorRT {trt.__version__} cannot allow its "
                "embedded host code (no IRuntime.engine_host_code_allowed): rebuild it without --version-compatible"
            )
        runtime.engine_host_code_allowed = True
    try:
        engine = runtime.deserialize_cuda_engine(plan)
    except Exception as exc:  # noqa: BLE001 - some versions raise instead of returning None
        engine, detail = None, first_line(exc)
    else:
        detail = "see TensorRT's message above"
    if engine is None:
        hint = "" if host_code else (
            "; if it was built with --version-compatible but has no sidecar, open it with allow_host_code=True")
        raise BadInputError(
            f"TensorRT {trt.__version__} cannot load {path.name} ({detail}): the file is corrupt, truncated, "
            f"or was built for another TensorRT version or GPU; rebuild it with stylize-rt build-engine{hint}"
        )
    return (logger, runtime), engine


def is_version_compatible(sidecar: Sidecar | None) -> bool:
    """Whether the sidecar says the plan was built ``--version-compatible`` (it then carries host code)."""
    return bool(sidecar and sidecar.build_flags.get("version_compatible"))


def load_engine(
    engine_path: str | os.PathLike[str],
    device: int = 0,
    verify_hash: bool = True,
    precision: str | None = None,
    quiet: bool = False,
    allow_host_code: bool = False,
) -> LoadedEngine:
    """Check ``engine_path`` against its sidecar and this machine, then deserialize it on ``device``.

    ``precision``, when given (and not ``auto``), must be the one the engine was built with:
    an engine's precision is fixed at build time, so asking for another is an error, not a
    silent fallback. Host code embedded in a plan runs only for engines whose sidecar says they
    are version-compatible, or with ``allow_host_code`` (an engine from elsewhere, trusted).
    """
    path = Path(engine_path)
    if not path.is_file():
        raise BadInputError(f"engine file not found: {path}")
    trt = import_tensorrt()
    cudart = cuda.import_cudart()
    cuda.require_gpu(device)
    cuda.check(cudart.cudaSetDevice(device), "cudaSetDevice")
    warnings: list[str] = []
    sidecar = None
    if sidecar_path(path).is_file():
        sidecar = read_sidecar(path)
        warnings += check_compatible(sidecar, running_environment(device), path.name)
        check_engine_file(path, sidecar, verify_hash=verify_hash)
        if precision and precision not in ("auto", sidecar.precision):
            raise BadInputError(
                f"{path.name} is a {sidecar.precision} engine; for {precision}, build one with "
                f"stylize-rt build-engine --precision {precision}"
            )
    else:
        warnings.append(f"{path.name} has no sidecar: its TensorRT version and GPU cannot be checked")
    if not quiet:
        for message in warnings:
            print(f"stylize-rt: warning: {message}", file=sys.stderr)
    keepalive, engine = deserialize(trt, path, host_code=allow_host_code or is_version_compatible(sidecar))

    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    is_input = {n: engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}

    def spec(name: str) -> TensorSpec:
        dims = tuple(int(d) for d in engine.get_tensor_shape(name))
        return TensorSpec(name, numpy_dtype(trt, engine.get_tensor_dtype(name)), tuple(None if d < 0 else d for d in dims))

    inputs = [spec(n) for n in names if is_input[n]]
    outputs = [spec(n) for n in names if not is_input[n]]
    items = []
    for item in inputs:
        if None in item.shape:
            lo, opt, hi = (tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(item.name, 0))
            items.append(InputProfile(item.name, lo, opt, hi))
    return LoadedEngine(path, trt, engine, keepalive, inputs, outputs, Profile(tuple(items)), sidecar, warnings)


__all__ = ["LoadedEngine", "deserialize", "is_version_compatible", "load_engine"]
