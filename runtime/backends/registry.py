"""The backends as a declared table, and opening a model with the right one.

=====================  =========================================================
model                  ``auto`` picks
=====================  =========================================================
``gen.plan/.engine``   tensorrt (the only engine that reads TensorRT plans)
``gen.onnx``           tensorrt (through the engine cache; frames outside its
                       profile fall back to onnxruntime with a note) when TensorRT
                       and a GPU are here, else onnxruntime (whose own ``auto``
                       takes the TensorRT EP, then CUDA EP, then CPU)
checkpoint directory   tensorrt on its ``generator.onnx`` when TensorRT and a GPU
                       are here; else torch on CUDA (FP16, CUDA graphs) when torch
                       sees a GPU; else its ``generator.onnx`` on onnxruntime when
                       it ships one (the embedded models do: ONNX Runtime beats
                       eager PyTorch on CPUs), else torch on the CPU
``triton://H:P/NAME``  triton (a model on a Triton server; ``triton+http://`` for HTTP)
=====================  =========================================================

``--backend onnxruntime``/``tensorrt`` on such a directory also take its ONNX graph
(``folder_graph``: the INT8 one for ``int8``, and for ``auto`` on a CPU-only ONNX Runtime where it
met its quality floor; else ``generator.onnx``, which a CPU-only ONNX Runtime runs in its CPU form,
``generator_cpu.onnx``, where the folder ships one made from it).
Each :class:`BackendSpec` names its class by module path, so a backend's engine library is
imported only when that backend is opened, and says why it is unavailable here, so the CLI
and the benchmarks ask the table instead of re-deriving it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from stylize_rt.contract import (
    CHECKPOINT_CARD,
    CHECKPOINT_ONNX,
    CHECKPOINT_ONNX_CPU,
    CHECKPOINT_ONNX_INT8,
    CPU_FORM_OF,
    INT8_QUALITY,
)
from stylize_rt.engines.shapes import read_onnx_info
from stylize_rt.engines.sidecar import file_sha256
from stylize_rt.errors import BadInputError
from stylize_rt.gpu.cuda import cuda_status
from stylize_rt.gpu.tensorrt import TRT_INSTALL_HINT, tensorrt_available
from stylize_rt.runtime.backends.base import Backend
from stylize_rt.runtime.backends.onnxruntime import ORT_INSTALL_HINT, missing_providers
from stylize_rt.runtime.backends.options import (
    BackendOptions,
    OnnxRuntimeOptions,
    TensorrtOptions,
    TorchOptions,
    TritonOptions,
    make_options,
)
from stylize_rt.runtime.backends.torch_backend import torch_cuda_available, torch_unavailable
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
        return ORT_INSTALL_HINT
    missing = missing_providers(options.providers)
    if missing:
        return f"this ONNX Runtime build has no {missing[0]} (no onnxruntime-gpu / no GPU here)"
    return None


def _tensorrt_unavailable(options: TensorrtOptions) -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return f"tensorrt is not installed ({TRT_INSTALL_HINT})"
    if not tensorrt_available():
        return cuda_status().problem(options.device) or "no CUDA GPU visible to cuda-python"
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


def int8_meets_floor(graph: Path) -> bool:
    """Whether an INT8 graph's metadata says it met its quality floor (what ``auto`` requires)."""
    try:
        meta = read_onnx_info(graph).metadata
        return bool(json.loads(meta.get(INT8_QUALITY, "{}")).get("passed"))
    except (BadInputError, ValueError, AttributeError):
        return False


def folder_graph(folder: Path, precision: str, backend: str = "auto") -> Path:
    """Which ONNX graph of a model folder runs at ``precision``: the INT8 graph for ``int8`` (and for
    ``auto`` on a CPU-only ONNX Runtime, where it met its quality floor), else ``generator.onnx``
    (FP16 engines are built from it on GPUs), or on a CPU-only ONNX Runtime its current CPU form."""
    int8 = folder / CHECKPOINT_ONNX_INT8
    if precision == "int8":
        if not int8.is_file():
            raise BadInputError(f"{folder} has no INT8 graph ({CHECKPOINT_ONNX_INT8}); make one with "
                                f"stylize-rt export generator {folder} -o {int8} --precision int8")
        return int8
    cpu_only = backend in ("auto", "onnxruntime", "ort") and not tensorrt_available() and not _gpu_provider()
    if precision == "auto" and cpu_only and int8.is_file() and int8_meets_floor(int8):
        return int8
    fp32 = folder / CHECKPOINT_ONNX
    if precision in ("auto", "fp32") and cpu_only and cpu_form_current(folder / CHECKPOINT_ONNX_CPU, fp32):
        return folder / CHECKPOINT_ONNX_CPU
    return fp32


def cpu_form_current(cpu_form: Path, source: Path) -> bool:
    """Whether ``cpu_form`` (``export.cpu_form``) was made from ``source`` as it is now (its recorded
    SHA-256): a re-exported ``generator.onnx`` runs itself, never an older graph's CPU form."""
    if not (cpu_form.is_file() and source.is_file()):
        return False
    try:
        recorded = read_onnx_info(cpu_form).metadata.get(CPU_FORM_OF)
    except BadInputError:
        return False
    return recorded is not None and recorded == file_sha256(source)


def _gpu_provider() -> bool:
    """This onnxruntime build has the CUDA or TensorRT execution provider (FP32/FP16 graphs run there)."""
    return not missing_providers(["cuda"]) or not missing_providers(["tensorrt"])


def auto_backend(path: Path, kind: str, precision: str = "auto") -> str:
    """The backend ``auto`` opens for a model of this ``kind`` here (see the table in the module doc)."""
    if kind == "triton":
        return "triton"
    if kind == "engine":
        return "tensorrt"  # fails with TensorRT's install hint where absent: nothing else reads plans
    if kind == "checkpoint":
        ships_onnx = (path / CHECKPOINT_ONNX).is_file()
        if ships_onnx and tensorrt_available():
            return "tensorrt"
        if not ships_onnx or (precision != "int8" and torch_cuda_available()):  # torch has no INT8 path
            return "torch"
        return "onnxruntime"
    return "tensorrt" if tensorrt_available() else "onnxruntime"


def _precision(options: BackendOptions | None, fields: dict[str, Any]) -> str:
    return fields.get("precision") or getattr(options, "precision", None) or "auto"


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
    name = auto_backend(path, kind, _precision(options, fields)) if backend == "auto" else backend_spec(backend).name
    if kind == "checkpoint" and name in ("onnxruntime", "tensorrt") and (path / CHECKPOINT_ONNX).is_file():
        path, kind = folder_graph(path, _precision(options, fields), backend), "onnx"
    spec = backend_spec(name)
    if backend == "auto" and spec.name == "tensorrt" and kind == "onnx" and options is None:
        fields.setdefault("fallback", True)  # auto must not refuse a frame size the CPU path takes
    opts = spec.make_options(options, **fields)
    if kind not in spec.model_kinds:
        raise BadInputError(f"the {spec.name} backend runs {spec.runs}, not {path.name!r}")
    cls = spec.backend_class()
    if spec.name == "tensorrt" and kind == "onnx":
        return cls.from_onnx(path, opts)
    return cls(path, opts)


__all__ = ["BackendSpec", "BACKENDS", "backend_spec", "unavailable", "open_backend", "available_backends",
           "auto_backend", "model_kind", "is_triton_url"]
