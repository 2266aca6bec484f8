"""The backends as a declared table, and opening a model with the right one.

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
``triton://H:P/NAME``  triton (a model on a Triton server; ``triton+http://`` for HTTP)
=====================  =========================================================

``--backend onnxruntime``/``tensorrt`` on such a directory also take its ``generator.onnx``.
Each :class:`BackendSpec` names its class by module path, so a backend's engine library is
imported only when that backend is opened, and says why it is unavailable here, so the CLI
and the benchmarks ask the table instead of re-deriving it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from stylize_rt.contract import CHECKPOINT_CARD, CHECKPOINT_ONNX
from stylize_rt.errors import BadInputError
from stylize_rt.gpu.tensorrt import TRT_INSTALL_HINT, tensorrt_available
from stylize_rt.runtime.backends.base import Backend
from stylize_rt.runtime.backends.onnxruntime import missing_providers
from stylize_rt.runtime.backends.options import (
    BackendOptions,
    OnnxRuntimeOptions,
    TensorrtOptions,
    TorchOptions,
    TritonOptions,
    make_options,
)
from stylize_rt.runtime.backends.torch_backend import torch_unavailable
from stylize_rt.runtime.backends.triton import is_triton_url, triton_unavailable

ALIASES = {"ort": "onnxruntime", "trt": "tensorrt", "pytorch": "torch"}
ENGINE_SUFFIXES = (".plan", ".engine", ".trt")
MODEL_KINDS = ("engine", "onnx", "checkpoint", "triton")


@dataclass(frozen=True)
class BackendSpec:
    """One backend: its class (by module path), the model kinds it runs, its options type, and a
    function that says why it cannot run here with given options (None: it can)."""

    name: str
    module: str
    class_name: str
    model_kinds: tuple[str, ...]
    runs: str  # the model kinds in words, for errors
    options: type[BackendOptions]
    unavailable: Callable[[BackendOptions], str | None]

    def backend_class(self) -> type:
        return getattr(importlib.import_module(self.module), self.class_name)

    def make_options(self, options: BackendOptions | None = None, **fields: Any) -> BackendOptions:
        return make_options(self.options, options, self.name, **fields)


def _onnxruntime_unavailable(options: OnnxRuntimeOptions) -> str | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed (pip install onnxruntime)"
    missing = missing_providers(options.providers)
    if missing:
        return f"this ONNX Runtime build has no {missing[0]} (no onnxruntime-gpu / no GPU here)"
    return None


def _tensorrt_unavailable(options: TensorrtOptions) -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return f"tensorrt is not installed ({TRT_INSTALL_HINT})"
    if not tensorrt_available():
        return "no CUDA GPU visible to cuda-python (NVIDIA driver, pip install 'stylize-rt[gpu]')"
    return None


# Fastest first: what ``auto`` and ``available_backends`` go by.
BACKENDS: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec("tensorrt", "stylize_rt.runtime.backends.tensorrt", "TensorrtBackend", ("engine", "onnx"),
                    "engines or .onnx files", TensorrtOptions, _tensorrt_unavailable),
        BackendSpec("onnxruntime", "stylize_rt.runtime.backends.onnxruntime", "OnnxRuntimeBackend", ("onnx",),
                    ".onnx files", OnnxRuntimeOptions, _onnxruntime_unavailable),
        BackendSpec("torch", "stylize_rt.runtime.backends.torch_backend", "TorchBackend", ("checkpoint",),
                    "generator checkpoint directories", TorchOptions, torch_unavailable),
        BackendSpec("triton", "stylize_rt.runtime.backends.triton", "TritonBackend", ("triton",),
                    "triton://HOST:PORT/NAME models on a Triton server", TritonOptions, triton_unavailable),
    )
}


def backend_spec(name: str) -> BackendSpec:
    """The table entry for ``name`` (aliases allowed); a one-line error for an unknown one."""
    name = ALIASES.get(name, name)
    if name not in BACKENDS:
        raise BadInputError(f"unknown backend {name!r} (choose from auto, {', '.join(BACKENDS)})")
    return BACKENDS[name]


def unavailable(name: str, **fields: Any) -> str | None:
    """Why backend ``name`` with these options cannot run on this machine, or None."""
    spec = backend_spec(name)
    return spec.unavailable(spec.make_options(**fields))


def model_kind(model: str | os.PathLike[str]) -> str:
    """``engine``, ``onnx``, ``checkpoint`` or ``triton`` (a served model's URL); a one-line error for anything else."""
    if is_triton_url(model):
        return "triton"
    path = Path(model)
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


def _runs(spec: BackendSpec, path: Path, kind: str) -> bool:
    """Whether ``spec`` runs this model (a checkpoint shipping ``generator.onnx`` also runs as ONNX)."""
    return kind in spec.model_kinds or (kind == "checkpoint" and "onnx" in spec.model_kinds
                                        and (path / CHECKPOINT_ONNX).is_file())


def available_backends(model: str | os.PathLike[str]) -> list[str]:
    """Backends that can run ``model`` on this machine, fastest first (what ``auto`` picks from)."""
    kind = model_kind(model)
    path = Path(model)
    return [spec.name for spec in BACKENDS.values()
            if _runs(spec, path, kind) and spec.unavailable(spec.make_options()) is None]


def _auto_backend(path: Path, kind: str) -> str:
    if kind == "triton":
        return "triton"
    if kind == "engine":
        return "tensorrt"  # fails with TensorRT's install hint where absent: nothing else reads plans
    if kind == "checkpoint":
        return "torch"
    return "tensorrt" if tensorrt_available() else "onnxruntime"


def open_backend(model: str | os.PathLike[str], backend: str = "auto", options: BackendOptions | None = None,
                 **fields: Any) -> Backend:
    """Load ``model`` with ``backend`` (``auto`` picks, see the module doc).

    ``options`` (the chosen backend's options type) and ``fields`` (its field names; the
    shared ``BackendOptions`` fields work for every backend) are checked, not probed.
    """
    if is_triton_url(model):  # a served model: no file to look at (and Path would fold the URL's //)
        spec = backend_spec("triton" if backend == "auto" else backend)
        if "triton" not in spec.model_kinds:
            raise BadInputError(f"the {spec.name} backend runs {spec.runs}, not a Triton URL ({model})")
        return spec.backend_class()(model, spec.make_options(options, **fields))
    path = Path(model)
    if not path.exists():
        raise BadInputError(f"model not found: {path}")
    kind = model_kind(path)
    if kind == "checkpoint" and backend in ("auto", "onnxruntime", "ort", "tensorrt", "trt") \
            and (path / CHECKPOINT_ONNX).is_file():
        path, kind = path / CHECKPOINT_ONNX, "onnx"
    spec = backend_spec(_auto_backend(path, kind) if backend == "auto" else backend)
    opts = spec.make_options(options, **fields)
    if kind not in spec.model_kinds:
        raise BadInputError(f"the {spec.name} backend runs {spec.runs}, not {path.name!r}")
    cls = spec.backend_class()
    if spec.name == "tensorrt" and kind == "onnx":
        return cls.from_onnx(path, opts)
    return cls(path, opts)


__all__ = ["BackendSpec", "BACKENDS", "backend_spec", "unavailable", "open_backend", "available_backends",
           "model_kind", "is_triton_url"]
