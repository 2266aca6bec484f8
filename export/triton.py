"""``stylize-rt export-triton``: a Triton Inference Server model repository for a generator or the captioner.

What goes in (``MODEL``) and what comes out (``REPO/NAME/config.pbtxt`` + ``REPO/NAME/1/...``):

=======================  ==========================  ===============================================
model                    ``--backend``               repository
=======================  ==========================  ===============================================
generator ``.onnx``      ``onnxruntime`` (default)   ``platform: "onnxruntime_onnx"``, ``model.onnx``
generator ``.plan``      ``tensorrt`` (default)      ``platform: "tensorrt_plan"``, ``model.plan`` (+ sidecar)
generator ``.onnx``      ``python``                  ``backend: "python"``: ``model.py`` runs ``model.onnx``
                                                     through stylize-rt's ONNX Runtime backend
captioner folder         ``onnxruntime``/``python``  ``NAME_encoder`` + ``NAME_decoder_step`` (either
                                                     backend) and ``NAME``, a Python-backend model that
                                                     runs the decoding loop over them (BLS calls)
=======================  ==========================  ===============================================

Every config is built as Triton's own protobuf message (``tritonclient.grpc.model_config_pb2``),
written as text, then parsed back with ``google.protobuf.text_format`` and checked against the
model file: tensor names, data types and dims (``-1`` where the model's dimension is dynamic;
with ``--max-batch N`` the model's dynamic first axis becomes Triton's batch axis). A
model's stylize-rt metadata (IO layout, value range, kind, style, precision) travels as config
``parameters``, so a client (``--engine triton://...``) learns the same convention a local file
gives it. Nothing is half-written: the repository entries are built in a temp folder and moved
into place; an existing entry is replaced only with ``overwrite``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylize_rt import contract
from stylize_rt.contract import (
    CAPTIONER_CLASSIFIER_FILE,
    CAPTIONER_CONFIG_FILE,
    CAPTIONER_DECODER_FILE,
    CAPTIONER_ENCODER_FILE,
    CAPTIONER_FACT_ENCODER_FILE,
    CAPTIONER_NOUNS_FILE,
    CAPTIONER_TOKENIZER_FILE,
    CHECKPOINT_CARD,
    CHECKPOINT_ONNX,
)
from stylize_rt.engines.shapes import read_onnx_info
from stylize_rt.engines.sidecar import file_sha256, read_sidecar, sidecar_path
from stylize_rt.errors import BadInputError, MissingDependencyError, OutputError, first_line
from stylize_rt.fileio import output_error, replace_dir, write_atomic
from stylize_rt.models import get_model
from stylize_rt.runtime import triton_python

BACKENDS = ("auto", "onnxruntime", "tensorrt", "python")
KINDS = ("auto", "cpu", "gpu")
ENGINE_SUFFIXES = (".plan", ".engine", ".trt")
# numpy dtype name -> Triton config data type (and back, for the checks).
DATA_TYPES = {
    "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "int8": "TYPE_INT8", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
    "float16": "TYPE_FP16", "float32": "TYPE_FP32", "float64": "TYPE_FP64", "bfloat16": "TYPE_BF16",
}
# The ONNX metadata a client needs to feed a model the way a local file would be fed.
CLIENT_METADATA = (contract.KIND, contract.STYLE, contract.IO_LAYOUT, contract.INPUT_RANGE, contract.PRECISION,
                   contract.CONFIG_HASH, contract.VERSION, contract.PART)
PLATFORM_FILES = {"onnxruntime_onnx": "model.onnx", "tensorrt_plan": "model.plan"}
PYTHON_FILE = "model.py"


@dataclass
class TritonExportConfig:
    """``export-triton``'s options (each is the flag of the same name)."""

    name: str | None = None  # model name in the repository (default: the style or "captioner")
    backend: str = "auto"  # auto | onnxruntime | tensorrt | python
    max_batch: int = 0  # Triton's max_batch_size: 0 = the model's own batch axis is a plain dim
    instances: int = 1  # instance_group count
    kind: str = "auto"  # instance kind: auto (GPU where the server has one), cpu, gpu
    dynamic_batching: bool = False  # let Triton merge requests (needs max_batch > 0)
    queue_delay_us: int = 0  # dynamic batching: how long a request may wait for others
    threads: int = 0  # CPU intra-op threads of the ONNX Runtime session (0 = its default)
    site_packages: tuple[str, ...] = ()  # python backend: site dirs that hold stylize-rt for the server's Python
    overwrite: bool = False

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise BadInputError(f"--backend must be one of {', '.join(BACKENDS)} (got {self.backend!r})")
        if self.kind not in KINDS:
            raise BadInputError(f"--kind must be one of {', '.join(KINDS)} (got {self.kind!r})")
        if self.max_batch < 0 or self.instances < 1 or self.threads < 0 or self.queue_delay_us < 0:
            raise BadInputError("--max-batch and --threads must be >= 0 and --instances >= 1")
        if self.dynamic_batching and self.max_batch < 1:
            raise BadInputError("--dynamic-batching needs --max-batch N (N >= 1): Triton batches along its batch axis")
        if self.name is not None and (not self.name or "/" in self.name or self.name.startswith(".")):
            raise BadInputError(f"--name must be a plain folder name, got {self.name!r}")


@dataclass(frozen=True)
class Tensor:
    """One model input/output as a Triton config sees it: dims without the batch axis when batched."""

    name: str
    dtype: str  # numpy dtype name
    shape: tuple[int | None, ...]  # the model's full shape; None = dynamic


@dataclass
class ModelEntry:
    """One model folder to write: its config message and the files of version 1."""

    name: str
    config: Any  # model_config_pb2.ModelConfig
    files: dict[str, Path | str] = field(default_factory=dict)  # file name -> source path, or text


# ---------------------------------------------------------------------------------------
# Triton's schema


def model_config_pb2():
    """Triton's ModelConfig protobuf module (the [serve] extra)."""
    try:
        from tritonclient.grpc import model_config_pb2 as pb2  # the [serve] extra; only export-triton needs it
    except ImportError:
        raise MissingDependencyError(
            "export-triton needs Triton's model config schema: pip install 'stylize-rt[serve]' (tritonclient[grpc])"
        ) from None
    return pb2


def parse_config(text: str):
    """A ``config.pbtxt``'s text -> ``ModelConfig``; a one-line error when Triton's schema refuses it."""
    from google.protobuf import text_format  # comes with tritonclient[grpc], checked by model_config_pb2()

    pb2 = model_config_pb2()
    try:
        return text_format.Parse(text, pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise BadInputError(f"config.pbtxt does not parse as a Triton ModelConfig: {first_line(exc)}") from None


def config_text(config) -> str:
    from google.protobuf import text_format  # see parse_config

    return text_format.MessageToString(config)


def _dims(tensor: Tensor, batched: bool) -> list[int]:
    shape = tensor.shape[1:] if batched else tensor.shape
    return [-1 if d is None else int(d) for d in shape]


def _add_tensors(config, tensors: list[Tensor], batched: bool, output: bool) -> None:
    pb2 = model_config_pb2()
    for tensor in tensors:
        if tensor.dtype not in DATA_TYPES:
            raise BadInputError(f"tensor {tensor.name!r} has type {tensor.dtype}, which Triton configs cannot carry")
        item = (config.output if output else config.input).add()
        item.name = tensor.name
        item.data_type = pb2.DataType.Value(DATA_TYPES[tensor.dtype])
        item.dims.extend(_dims(tensor, batched))


def _base_config(name: str, options: TritonExportConfig, inputs: list[Tensor], outputs: list[Tensor],
                 metadata: dict[str, str], *, platform: str = "", backend: str = "", kind: str = "auto",
                 max_batch: int = 0):
    pb2 = model_config_pb2()
    config = pb2.ModelConfig(name=name)
    if platform:
        config.platform = platform
    if backend:
        config.backend = backend
    if max_batch:
        for tensor in inputs + outputs:
            if not tensor.shape or tensor.shape[0] is not None:
                raise BadInputError(
                    f"--max-batch needs a dynamic batch axis; {tensor.name!r} has shape "
                    f"{_shape_text(tensor.shape)} (export it with a dynamic batch, or use --max-batch 0)"
                )
        config.max_batch_size = max_batch
    _add_tensors(config, inputs, bool(max_batch), output=False)
    _add_tensors(config, outputs, bool(max_batch), output=True)
    group = config.instance_group.add()
    group.count = options.instances
    group.kind = pb2.ModelInstanceGroup.Kind.Value({"auto": "KIND_AUTO", "cpu": "KIND_CPU", "gpu": "KIND_GPU"}[kind])
    if options.dynamic_batching and max_batch:
        config.dynamic_batching.max_queue_delay_microseconds = options.queue_delay_us
    for key in CLIENT_METADATA:
        if key in metadata:
            config.parameters[key].string_value = metadata[key]
    return config


def _shape_text(shape) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


# ---------------------------------------------------------------------------------------
# Checks of a parsed config against the model file


def check_tensors(config, inputs: list[Tensor], outputs: list[Tensor], where: str) -> None:
    """Names, data types and dims of ``config`` against the model's tensors (one-line errors)."""
    pb2 = model_config_pb2()
    batched = config.max_batch_size > 0
    for kind, declared, actual in (("input", config.input, inputs), ("output", config.output, outputs)):
        model = {t.name: t for t in actual}
        names = [d.name for d in declared]
        if sorted(names) != sorted(model):
            raise BadInputError(f"{where}: config {kind}s {names} are not the model's {sorted(model)}")
        for item in declared:
            tensor = model[item.name]
            dtype = pb2.DataType.Name(item.data_type)
            if DATA_TYPES.get(tensor.dtype) != dtype:
                raise BadInputError(f"{where}: {kind} {item.name!r} is {dtype} in the config, {tensor.dtype} in the model")
            if batched and (not tensor.shape or tensor.shape[0] is not None):
                raise BadInputError(f"{where}: max_batch_size {config.max_batch_size} but {kind} {item.name!r} "
                                    f"has no dynamic batch axis ({_shape_text(tensor.shape)})")
            want = _dims(tensor, batched)
            if list(item.dims) != want:
                raise BadInputError(f"{where}: {kind} {item.name!r} has dims {list(item.dims)} in the config, "
                                    f"the model gives {want}")


def check_entry(repo: Path, name: str) -> Any:
    """Parse ``REPO/NAME/config.pbtxt`` with Triton's schema and check it against the files of version 1."""
    folder = repo / name
    path = folder / "config.pbtxt"
    if not path.is_file():
        raise BadInputError(f"{path} not found")
    config = parse_config(path.read_text())
    where = str(path)
    if config.name != name:
        raise BadInputError(f"{where}: name {config.name!r} is not its folder's {name!r}")
    version = folder / "1"
    if config.platform in PLATFORM_FILES:
        model_file = version / PLATFORM_FILES[config.platform]
        if not model_file.is_file():
            raise BadInputError(f"{where}: {model_file} is missing")
        inputs, outputs = (_plan_tensors(model_file) if config.platform == "tensorrt_plan"
                           else _onnx_tensors(model_file))
        check_tensors(config, inputs, outputs, where)
    elif config.backend == "python":
        if not (version / PYTHON_FILE).is_file():
            raise BadInputError(f"{where}: {version / PYTHON_FILE} is missing")
        role = config.parameters[triton_python.ROLE_PARAM].string_value
        if role == triton_python.GENERATOR_ROLE:
            check_tensors(config, *_onnx_tensors(version / triton_python.ONNX_FILE), where)
        elif role == triton_python.CAPTIONER_ROLE:
            for file in (CAPTIONER_CONFIG_FILE, CAPTIONER_TOKENIZER_FILE):
                if not (version / file).is_file():
                    raise BadInputError(f"{where}: {version / file} is missing")
            params = [triton_python.ENCODER_PARAM, triton_python.DECODER_PARAM]
            if triton_python.FACT_ENCODER_PARAM in config.parameters:
                params.append(triton_python.FACT_ENCODER_PARAM)
            for param in params:
                other = config.parameters[param].string_value
                if not other or not (repo / other / "config.pbtxt").is_file():
                    raise BadInputError(f"{where}: parameter {param} names {other!r}, which is not in {repo}")
            check_tensors(config, *_caption_loop_tensors(), where)
        else:
            raise BadInputError(f"{where}: parameter {triton_python.ROLE_PARAM} is {role!r}, not a stylize-rt model")
    else:
        raise BadInputError(f"{where}: platform {config.platform!r} / backend {config.backend!r} is not one "
                            "stylize-rt writes")
    return config


# ---------------------------------------------------------------------------------------
# Reading models


def _onnx_tensors(path: Path) -> tuple[list[Tensor], list[Tensor]]:
    info = read_onnx_info(path)
    return ([Tensor(t.name, t.dtype, t.shape) for t in info.inputs],
            [Tensor(t.name, t.dtype, t.shape) for t in info.outputs])


def _plan_tensors(path: Path) -> tuple[list[Tensor], list[Tensor]]:
    """An engine's IO from its sidecar (``-1`` = set per call), checked to belong to this very file."""
    sidecar = _plan_sidecar(path)
    inputs = [Tensor(t.name, t.dtype, tuple(None if d < 0 else d for d in t.shape)) for t in sidecar.io
              if t.mode == "input"]
    outputs = [Tensor(t.name, t.dtype, tuple(None if d < 0 else d for d in t.shape)) for t in sidecar.io
               if t.mode == "output"]
    return inputs, outputs


def _plan_sidecar(path: Path):
    sidecar = read_sidecar(path)
    if sidecar.engine_sha256 and file_sha256(path) != sidecar.engine_sha256:
        raise BadInputError(f"{path.name} is not the engine its sidecar describes (SHA-256 differs): rebuild it")
    return sidecar


def _caption_loop_tensors() -> tuple[list[Tensor], list[Tensor]]:
    return ([Tensor(triton_python.CAPTION_INPUT, "uint8", (None, None, None, 3))],
            [Tensor(triton_python.CAPTION_OUTPUT, "uint8", (None, None))])


def resolve_model(model: str | os.PathLike[str]) -> tuple[str, Path]:
    """``(kind, path)``: ``onnx``/``plan`` files, a checkpoint folder shipping ``generator.onnx``, a
    captioner folder, or an embedded model's name."""
    path = Path(model)
    if not path.exists():
        if "/" in str(model) or path.suffix:
            raise BadInputError(f"model not found: {model}")
        embedded = get_model(str(model))
        path = embedded.directory
    if path.is_dir():
        if (path / CAPTIONER_CONFIG_FILE).is_file():
            return "captioner", path
        if (path / CHECKPOINT_ONNX).is_file():
            return "onnx", path / CHECKPOINT_ONNX
        if (path / CHECKPOINT_CARD).is_file():
            raise BadInputError(f"{path} is a checkpoint without {CHECKPOINT_ONNX}: export it first "
                                "(stylize-rt export generator CKPT -o gen.onnx)")
        raise BadInputError(f"{path} is neither a captioner folder ({CAPTIONER_CONFIG_FILE}) nor a checkpoint")
    if path.suffix.lower() == ".onnx":
        return "onnx", path
    if path.suffix.lower() in ENGINE_SUFFIXES:
        return "plan", path
    raise BadInputError(f"cannot serve {path.name!r}: expected a .onnx file, a TensorRT engine, a checkpoint "
                        "folder with generator.onnx or a captioner folder")


# ---------------------------------------------------------------------------------------
# Entries


def _python_parameters(config, options: TritonExportConfig, role: str) -> None:
    config.parameters[triton_python.ROLE_PARAM].string_value = role
    config.parameters[triton_python.THREADS_PARAM].string_value = str(options.threads)
    if options.site_packages:
        paths = [str(Path(p).resolve()) for p in options.site_packages]
        config.parameters[triton_python.SITE_PACKAGES_PARAM].string_value = os.pathsep.join(paths)


def _kind(options: TritonExportConfig, default: str) -> str:
    return default if options.kind == "auto" else options.kind


def generator_entry(kind: str, path: Path, name: str, options: TritonExportConfig) -> ModelEntry:
    backend = options.backend
    if backend == "auto":
        backend = "tensorrt" if kind == "plan" else "onnxruntime"
    if kind == "plan" and backend != "tensorrt":
        raise BadInputError(f"{path.name} is a TensorRT engine: only --backend tensorrt serves it")
    if kind == "onnx" and backend == "tensorrt":
        raise BadInputError("--backend tensorrt serves engines: build one first (stylize-rt build-engine "
                            f"{path.name} -o gen.plan), or serve the ONNX file with --backend onnxruntime")
    if kind == "plan":
        sidecar = _plan_sidecar(path)
        inputs, outputs = _plan_tensors(path)
        config = _base_config(name, options, inputs, outputs, sidecar.metadata, platform="tensorrt_plan",
                              kind=_kind(options, "gpu"), max_batch=options.max_batch)
        _check_plan_batch(sidecar, options.max_batch, path)
        return ModelEntry(name, config, {"model.plan": path, "model.plan.json": sidecar_path(path)})
    info = read_onnx_info(path)
    inputs, outputs = _onnx_tensors(path)
    if backend == "onnxruntime":
        config = _base_config(name, options, inputs, outputs, info.metadata, platform="onnxruntime_onnx",
                              kind=_kind(options, "auto"), max_batch=options.max_batch)
        if options.threads:
            config.parameters["intra_op_thread_count"].string_value = str(options.threads)
        return ModelEntry(name, config, {"model.onnx": path})
    config = _base_config(name, options, inputs, outputs, info.metadata, backend="python",
                          kind=_kind(options, "cpu"), max_batch=options.max_batch)
    _python_parameters(config, options, triton_python.GENERATOR_ROLE)
    return ModelEntry(name, config, {PYTHON_FILE: triton_python.model_py(triton_python.GENERATOR_ROLE),
                                     triton_python.ONNX_FILE: path})


def _check_plan_batch(sidecar, max_batch: int, path: Path) -> None:
    """Triton sends up to max_batch_size frames in one call: every profile must take that batch."""
    if not max_batch:
        return
    for profile in sidecar.profiles:
        for item in profile.inputs:
            if item.max and item.max[0] < max_batch:
                raise BadInputError(f"{path.name}'s profile takes at most {item.max[0]} frames on {item.name!r}; "
                                    f"--max-batch {max_batch} needs an engine built for that batch")


def captioner_entries(folder: Path, name: str, options: TritonExportConfig) -> list[ModelEntry]:
    backend = "onnxruntime" if options.backend == "auto" else options.backend
    if backend == "tensorrt":
        raise BadInputError("the captioner is served from its ONNX graphs: --backend onnxruntime or python")
    if options.max_batch or options.dynamic_batching:
        raise BadInputError("--max-batch/--dynamic-batching apply to generators: the captioner's loop model "
                            "sends its frames to the encoder as one batch itself")
    graphs = dataclasses.replace(options, max_batch=0, dynamic_batching=False)
    entries = []
    names = {}
    facts = (folder / CAPTIONER_FACT_ENCODER_FILE).is_file()  # a fact captioner: one more graph, two data files
    parts = (("encoder", CAPTIONER_ENCODER_FILE), *((("fact_encoder", CAPTIONER_FACT_ENCODER_FILE),) if facts else ()),
             ("decoder_step", CAPTIONER_DECODER_FILE))
    for part, file in parts:
        source = folder / file
        if not source.is_file():
            raise BadInputError(f"{folder} is missing {file}")
        entry = generator_entry("onnx", source, f"{name}_{part}", dataclasses.replace(graphs, backend=backend))
        entries.append(entry)
        names[part] = entry.name
    loop_inputs, loop_outputs = _caption_loop_tensors()
    config = _base_config(name, graphs, loop_inputs, loop_outputs, {contract.KIND: "captioner"}, backend="python",
                          kind=_kind(options, "cpu"))
    _python_parameters(config, options, triton_python.CAPTIONER_ROLE)
    config.parameters[triton_python.ENCODER_PARAM].string_value = names["encoder"]
    config.parameters[triton_python.DECODER_PARAM].string_value = names["decoder_step"]
    data = [CAPTIONER_CONFIG_FILE, CAPTIONER_TOKENIZER_FILE]
    if facts:
        config.parameters[triton_python.FACT_ENCODER_PARAM].string_value = names["fact_encoder"]
        data += [CAPTIONER_NOUNS_FILE, CAPTIONER_CLASSIFIER_FILE]
    files = {PYTHON_FILE: triton_python.model_py(triton_python.CAPTIONER_ROLE),
             **{file: folder / file for file in data}}
    for file in data:
        if not (folder / file).is_file():
            raise BadInputError(f"{folder} is missing {file}")
    entries.append(ModelEntry(name, config, files))
    return entries


def _default_name(kind: str, path: Path) -> str:
    if kind == "captioner":
        return "captioner"
    meta = {}
    if kind == "onnx":
        meta = read_onnx_info(path).metadata
    elif kind == "plan":
        meta = read_sidecar(path).metadata
    style = meta.get(contract.STYLE, "")
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in style) or path.stem
    return name


# ---------------------------------------------------------------------------------------
# Writing


def _write_entry(entry: ModelEntry, repo: Path, overwrite: bool) -> Path:
    target = repo / entry.name
    if target.exists() and not overwrite:
        raise OutputError(f"{target} exists: pass --overwrite to replace it")
    try:
        repo.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=repo))
    except OSError as exc:
        raise output_error(repo, exc) from None
    try:
        version = tmp / "1"
        version.mkdir()
        write_atomic(tmp / "config.pbtxt", config_text(entry.config))
        for file, source in entry.files.items():
            if isinstance(source, Path):
                try:
                    shutil.copyfile(source, version / file)
                except OSError as exc:
                    raise output_error(version / file, exc) from None
            else:
                write_atomic(version / file, source)
        return replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export_triton(model: str | os.PathLike[str], repo: str | os.PathLike[str],
                  options: TritonExportConfig | None = None) -> list[Path]:
    """Write ``model``'s Triton entries into ``repo`` and check each written config; returns their folders."""
    options = options or TritonExportConfig()
    options.validate()
    model_config_pb2()  # the schema first: a missing extra fails before anything is read or written
    kind, path = resolve_model(model)
    name = options.name or _default_name(kind, path)
    if kind == "captioner":
        entries = captioner_entries(path, name, options)
    else:
        entries = [generator_entry(kind, path, name, options)]
    repo = Path(repo)
    if not options.overwrite:
        taken = [str(repo / e.name) for e in entries if (repo / e.name).exists()]
        if taken:
            raise OutputError(f"{taken[0]} exists: pass --overwrite to replace it")
    written = [_write_entry(entry, repo, options.overwrite) for entry in entries]
    for entry in entries:
        check_entry(repo, entry.name)
    return written


__all__ = ["BACKENDS", "DATA_TYPES", "TritonExportConfig", "check_entry", "check_tensors", "export_triton",
           "parse_config", "resolve_model"]
