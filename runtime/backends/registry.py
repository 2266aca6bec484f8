"""Opening a model with the right backend: by ``--backend`` name, or by what the file is.

=====================  =========================================================
model                  ``auto`` picks
=====================  =========================================================
``gen.plan/.engine``   tensorrt (the only engine that reads TensorRT plans)
``gen.onnx``           tensorrt (through the engine cache) when TensorRT and a GPU
                       are here, else onnxruntime (whose own ``auto`` takes the
                       TensorRT EP, then CUDA EP, then CPU)
checkpoint directory   its ``generator.onnx`` as above when it ships one (the
                       embedded models do: ONNX engines beat eager PyTorch), else
                       torch (CUDA when torch sees a GPU, else CPU)
=====================  =========================================================

``--backend onnxruntime``/``tensorrt`` on such a directory also take its ``generator.onnx``.

Backends are imported only when chosen, so ``import stylize_rt.runtime.backends`` stays cheap
and torch-free.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from stylize_rt.errors import BadInputError
from stylize_rt.runtime.backends.base import Backend

BACKENDS = ("onnxruntime", "tensorrt", "torch")
ALIASES = {"ort": "onnxruntime", "trt": "tensorrt", "pytorch": "torch"}
ENGINE_SUFFIXES = (".plan", ".engine", ".trt")
CHECKPOINT_CARD = "config.json"
CHECKPOINT_ONNX = "generator.onnx"  # shipped beside the weights by the embedded models


def model_kind(path: Path) -> str:
    """``engine``, ``onnx`` or ``checkpoint``; a one-line error for anything else."""
    if path.is_dir():
        if (path / CHECKPOINT_CARD).is_file():
            return "checkpoint"
        raise BadInputError(f"{path} is a directory without {CHECKPOINT_CARD}: not a generator checkpoint")
    suffix = path.suffix.lower()
    if suffix in ENGINE_SUFFIXES:
        return "engine"
    if suffix == ".onnx":
        return "onnx"
    raise BadInputError(
        f"cannot tell which backend runs {path.name!r}: expected a .onnx file, a TensorRT "
        f"{'/'.join(ENGINE_SUFFIXES)} engine or a checkpoint directory"
    )


def available_backends(model: str | os.PathLike[str]) -> list[str]:
    """Backends that can run ``model`` on this machine, fastest first (what ``auto`` picks from)."""
    from stylize_rt.runtime.backends.tensorrt import tensorrt_available

    kind = model_kind(Path(model))
    if kind == "engine":
        return ["tensorrt"] if tensorrt_available() else []
    path = Path(model)
    torch = ["torch"] if kind == "checkpoint" and importlib.util.find_spec("torch") is not None else []
    if kind == "onnx" or (kind == "checkpoint" and (path / CHECKPOINT_ONNX).is_file()):
        return (["tensorrt"] if tensorrt_available() else []) + ["onnxruntime"] + torch
    return torch


def open_backend(model: str | os.PathLike[str], backend: str = "auto", **options) -> Backend:
    """Load ``model`` with ``backend`` (``auto`` picks, see the module doc); ``options`` go to it."""
    path = Path(model)
    if not path.exists():
        raise BadInputError(f"model not found: {path}")
    backend = ALIASES.get(backend, backend)
    kind = model_kind(path)
    if kind == "checkpoint" and backend in ("auto", "onnxruntime", "tensorrt") and (path / CHECKPOINT_ONNX).is_file():
        path, kind = path / CHECKPOINT_ONNX, "onnx"
    if backend == "auto":
        backend = _auto_backend(path, kind)
    if backend not in BACKENDS:
        raise BadInputError(f"unknown backend {backend!r} (choose from auto, {', '.join(BACKENDS)})")
    if backend == "onnxruntime":
        if kind != "onnx":
            raise BadInputError(f"the onnxruntime backend runs .onnx files, not {path.name!r}")
        from stylize_rt.runtime.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, **options)
    if backend == "tensorrt":
        from stylize_rt.runtime.backends.tensorrt import TensorrtBackend

        if kind == "engine":
            return TensorrtBackend(path, **options)
        if kind == "onnx":
            from stylize_rt.engines.build import BuildConfig

            build = options.pop("build_config", None) or BuildConfig(
                precision=options.pop("precision", None) or "auto", shapes=list(options.pop("shapes", ()))
            )
            cache_dir = options.pop("cache_dir", None)
            return TensorrtBackend.from_onnx(path, build, cache_dir=cache_dir, **options)
        raise BadInputError(
            f"the tensorrt backend runs engines or .onnx files; export {path.name} to ONNX first (stylize-rt export)"
        )
    if kind != "checkpoint":
        raise BadInputError(f"the torch backend runs generator checkpoint directories, not {path.name!r}")
    from stylize_rt.runtime.backends.torch_backend import TorchBackend

    if "device" not in options:
        options["device"] = _torch_device()
    return TorchBackend(path, **options)


def _auto_backend(path: Path, kind: str) -> str:
    if kind == "engine":
        return "tensorrt"  # fails with TensorRT's install hint where absent: nothing else reads plans
    if kind == "checkpoint":
        return "torch"
    from stylize_rt.runtime.backends.tensorrt import tensorrt_available

    return "tensorrt" if tensorrt_available() else "onnxruntime"


def _torch_device() -> str:
    import torch  # only reached when the torch backend is being opened anyway

    return "cuda" if torch.cuda.is_available() else "cpu"


__all__ = ["open_backend", "available_backends", "model_kind", "BACKENDS"]
