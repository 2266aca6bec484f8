"""The JSON sidecar beside every engine (``gen.plan`` -> ``gen.plan.json``).

A serialized TensorRT engine only runs with the TensorRT version and the GPU it was built
for, and the plan file itself cannot tell you which those were without being deserialized
(which is exactly what fails). The sidecar records them, plus everything needed to reproduce
or audit the build, so that ``stylize-rt inspect`` works on any machine and the runtime can
refuse a foreign engine with a clear message *before* handing it to TensorRT.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stylize_rt.engines.shapes import Profile
from stylize_rt.errors import BadInputError, first_line
from stylize_rt.fileio import write_atomic
from stylize_rt.gpu.tensorrt import Environment

SIDECAR_FORMAT = "stylize-rt.engine-sidecar"
SCHEMA_VERSION = 1
PRECISIONS = ("fp16", "fp32", "int8")
HARDWARE_COMPATIBILITY = ("none", "ampere_plus", "same_compute_capability")


def sidecar_path(engine_path: str | os.PathLike[str]) -> Path:
    """``gen.plan`` -> ``gen.plan.json``."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


@dataclass(frozen=True)
class TensorInfo:
    """One engine IO tensor; ``-1`` marks a dimension set per call within the profile."""

    name: str
    mode: str  # "input" | "output"
    dtype: str  # numpy dtype name: "uint8", "float16", "float32"...
    shape: tuple[int, ...]


@dataclass
class Sidecar:
    """Everything known about one engine build. Written as JSON beside the engine."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str  # requested precision: fp16 | fp32 | int8
    typing: str  # "strong" (types from the ONNX graph) | "weak" (builder flags + constraints)
    profiles: list[Profile]
    io: list[TensorInfo]
    onnx_sha256: str
    engine_sha256: str
    engine_bytes: int
    onnx_path: str = ""
    build_flags: dict[str, Any] = field(default_factory=dict)
    build_seconds: float = 0.0
    built_at: str = ""  # ISO 8601 UTC
    metadata: dict[str, str] = field(default_factory=dict)  # the ONNX model's metadata, carried over
    stylize_rt_version: str = ""

    @property
    def environment(self) -> Environment:
        return Environment(self.tensorrt_version, self.gpu_name, self.compute_capability)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["profiles"] = [p.to_dict() for p in self.profiles]
        data["io"] = [{**asdict(t), "shape": list(t.shape)} for t in self.io]
        return {"format": SIDECAR_FORMAT, "schema_version": SCHEMA_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Sidecar":
        if data.get("format") != SIDECAR_FORMAT:
            raise ValueError(f"not a stylize-rt engine sidecar (format {data.get('format')!r})")
        if int(data.get("schema_version", 0)) > SCHEMA_VERSION:
            raise ValueError(
                f"schema version {data['schema_version']} is newer than this stylize-rt reads ({SCHEMA_VERSION})"
            )
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        values["profiles"] = [Profile.from_dict(p) for p in data["profiles"]]
        values["io"] = [
            TensorInfo(str(t["name"]), str(t["mode"]), str(t["dtype"]), tuple(int(d) for d in t["shape"]))
            for t in data["io"]
        ]
        values["engine_bytes"] = int(values["engine_bytes"])
        return cls(**values)


def write_sidecar(engine_path: str | os.PathLike[str], sidecar: Sidecar) -> Path:
    """Write ``<engine>.json`` atomically (temp file + rename): a reader never sees half a sidecar."""
    path = sidecar_path(engine_path)
    return write_atomic(path, json.dumps(sidecar.to_dict(), indent=2) + "\n")


def read_sidecar(engine_path: str | os.PathLike[str]) -> Sidecar:
    """Read ``<engine>.json``; a missing or corrupt sidecar is a one-line ``BadInputError``."""
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise BadInputError(
            f"no sidecar {path.name} beside {Path(engine_path).name}: build engines with "
            "'stylize-rt build-engine' (it writes one), or rebuild this one"
        )
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return Sidecar.from_dict(data)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else first_line(exc)
        raise BadInputError(f"corrupt engine sidecar {path}: {detail}") from None


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_engine_file(engine_path: str | os.PathLike[str], sidecar: Sidecar, verify_hash: bool = True) -> None:
    """Reject a missing, truncated or replaced engine before TensorRT sees it.

    TensorRT's own reaction to a truncated plan is a log line and a ``None`` engine; a size and
    SHA-256 check gives the user the actual reason.
    """
    path = Path(engine_path)
    if not path.is_file():
        raise BadInputError(f"engine file not found: {path}")
    size = path.stat().st_size
    if size != sidecar.engine_bytes:
        state = "truncated" if size < sidecar.engine_bytes else "changed"
        raise BadInputError(
            f"engine {path.name} is {size} bytes but its sidecar says {sidecar.engine_bytes}: the file is "
            f"{state} (interrupted copy?); rebuild it with stylize-rt build-engine"
        )
    if verify_hash and file_sha256(path) != sidecar.engine_sha256:
        raise BadInputError(
            f"engine {path.name} does not match its sidecar's SHA-256 (corrupt or replaced); rebuild it"
        )


def check_compatible(sidecar: Sidecar, running: Environment, engine_name: str = "engine") -> list[str]:
    """Raise if the engine cannot run here; return warnings for combinations that run but may be slow.

    Rules (TensorRT's own): an engine runs only on the exact TensorRT version that built it,
    unless built version-compatible (then: same major, same or newer runtime); and only on GPUs
    of the compute capability it was built for, unless built hardware-compatible (Ampere+ then
    runs on any compute capability >= 8.0). Another GPU model of the same compute capability runs,
    with kernels tuned for the other model: a warning, not an error.
    """
    built = sidecar.environment
    flags = sidecar.build_flags or {}
    rebuild = f"rebuild it here: stylize-rt build-engine {sidecar.onnx_path or 'MODEL.onnx'} -o {engine_name}"
    if not _version_ok(built.tensorrt_version, running.tensorrt_version, bool(flags.get("version_compatible"))):
        raise BadInputError(
            f"{engine_name} was built with TensorRT {built.tensorrt_version}; this machine runs TensorRT "
            f"{running.tensorrt_version} (engines are tied to the TensorRT version): {rebuild}"
        )
    hardware = flags.get("hardware_compatibility", "none")
    warnings: list[str] = []
    if hardware == "ampere_plus":
        if _cc(running.compute_capability) < (8, 0):
            raise BadInputError(
                f"{engine_name} was built for Ampere and newer GPUs; {running.gpu_name} has compute "
                f"{running.compute_capability}: {rebuild}"
            )
        return warnings
    if _cc(built.compute_capability) != _cc(running.compute_capability):
        raise BadInputError(
            f"{engine_name} was built for {built.gpu_name} (compute {built.compute_capability}); this GPU is "
            f"{running.gpu_name} (compute {running.compute_capability}): {rebuild}"
        )
    if built.gpu_name != running.gpu_name and hardware != "same_compute_capability":
        warnings.append(
            f"{engine_name} was tuned on {built.gpu_name}, running on {running.gpu_name} (same compute "
            "capability: it runs, but a rebuild here may be faster)"
        )
    return warnings


def _version_ok(built: str, running: str, version_compatible: bool) -> bool:
    if not version_compatible:
        return _vtuple(built) == _vtuple(running)
    b, r = _vtuple(built), _vtuple(running)
    return b[:1] == r[:1] and r >= b


def _vtuple(version: str) -> tuple[int, ...]:
    """'10.12.0.36' -> (10, 12, 0, 36); non-numeric parts (e.g. 'post1') are dropped."""
    parts = []
    for part in str(version).split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _cc(text: str) -> tuple[int, int]:
    try:
        major, minor = str(text).split(".")
        return int(major), int(minor)
    except ValueError:
        raise BadInputError(f"bad compute capability {text!r} (expected MAJOR.MINOR)") from None


def format_sidecar(sidecar: Sidecar, engine_path: str | os.PathLike[str]) -> str:
    """Human-readable summary for ``stylize-rt inspect``."""
    lines = [
        f"engine        {engine_path} ({sidecar.engine_bytes / 1e6:.1f} MB)",
        f"built with    TensorRT {sidecar.tensorrt_version} on {sidecar.gpu_name} "
        f"(compute {sidecar.compute_capability})",
        f"precision     {sidecar.precision} ({sidecar.typing}ly typed network)",
        f"built at      {sidecar.built_at} in {sidecar.build_seconds:.1f} s",
        f"source ONNX   {sidecar.onnx_path} sha256 {sidecar.onnx_sha256[:16]}...",
    ]
    for i, profile in enumerate(sidecar.profiles):
        lines.append(f"profile {i}     {profile.describe()}")
    for tensor in sidecar.io:
        dims = "x".join("?" if d < 0 else str(d) for d in tensor.shape)
        lines.append(f"{tensor.mode:<13} {tensor.name} {tensor.dtype} {dims}")
    flags = ", ".join(f"{k}={v}" for k, v in sorted(sidecar.build_flags.items()))
    lines.append(f"build flags   {flags or '-'}")
    if sidecar.metadata:
        lines.append("metadata      " + ", ".join(f"{k}={v}" for k, v in sorted(sidecar.metadata.items())))
    return "\n".join(lines)


__all__ = [
    "Sidecar",
    "TensorInfo",
    "Environment",
    "sidecar_path",
    "write_sidecar",
    "read_sidecar",
    "file_sha256",
    "check_engine_file",
    "check_compatible",
    "format_sidecar",
]
