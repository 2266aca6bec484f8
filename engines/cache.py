"""Engine cache: an ``.onnx`` run on TensorRT is built once per (model, shapes, precision, TensorRT, GPU).

Layout under ``$STYLIZE_RT_CACHE`` (default ``$XDG_CACHE_HOME/stylize-rt`` or
``~/.cache/stylize-rt``)::

    engines/<digest>/engine.plan        the engine
    engines/<digest>/engine.plan.json   its sidecar (see sidecar.py)
    engines/<digest>/key.json           the full cache key the digest was made from
    timing/<trt>-<cc>.cache             a timing cache shared by every build on this TensorRT + GPU
    ort-trt/<digest>/                   ONNX Runtime TensorRT EP engine + timing caches

``<digest>`` hashes the key: SHA-256 of the ONNX file, the optimization profile, the build
options (precision, optimization level...), the TensorRT version and the GPU. An entry is
reused only when its ``key.json``, its sidecar and the engine's own SHA-256 all agree with
the key; anything else (a foreign entry copied from another machine, an interrupted build, a
truncated file) is deleted and rebuilt, never silently reused. The key and validation logic is
pure Python and tested without a GPU.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

from stylize_rt.engines.build import BuildConfig, build_engine, resolve_build_profile
from stylize_rt.engines.shapes import Profile
from stylize_rt.engines.sidecar import check_engine_file, file_sha256, read_sidecar
from stylize_rt.errors import BadInputError, StylizeError
from stylize_rt.fileio import write_atomic
from stylize_rt.gpu import cuda
from stylize_rt.gpu.tensorrt import Environment, running_environment

ENV_VAR = "STYLIZE_RT_CACHE"
ENGINE_FILE = "engine.plan"
KEY_FILE = "key.json"
KEY_VERSION = 1  # bump when the key's meaning changes: old entries then stop matching


def cache_root() -> Path:
    """``$STYLIZE_RT_CACHE``, else ``$XDG_CACHE_HOME/stylize-rt``, else ``~/.cache/stylize-rt``."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stylize-rt"


@dataclass(frozen=True)
class CacheKey:
    """What makes two engines interchangeable. Equal keys <=> same digest <=> same cache entry."""

    onnx_sha256: str
    profile: Profile
    precision: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_version": KEY_VERSION,
            "onnx_sha256": self.onnx_sha256,
            "profile": self.profile.to_dict(),
            "precision": self.precision,
            "tensorrt_version": self.tensorrt_version,
            "gpu_name": self.gpu_name,
            "compute_capability": self.compute_capability,
            "options": {k: self.options[k] for k in sorted(self.options)},
        }

    def digest(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]

    @property
    def environment(self) -> Environment:
        return Environment(self.tensorrt_version, self.gpu_name, self.compute_capability)


def make_key(onnx_sha256: str, profile: Profile, options: dict[str, Any], env: Environment) -> CacheKey:
    """``options``: a ``BuildConfig.engine_options()`` dict (precision is one of them)."""
    precision = str(options.get("precision", "fp16"))
    rest = {k: v for k, v in options.items() if k != "precision"}
    return CacheKey(onnx_sha256, profile, precision, env.tensorrt_version, env.gpu_name, env.compute_capability, rest)


def entry_dir(key: CacheKey, root: str | os.PathLike[str] | None = None) -> Path:
    return Path(root or cache_root()) / "engines" / key.digest()


def entry_problem(engine_path: str | os.PathLike[str], key: CacheKey, verify_hash: bool = True) -> str | None:
    """Why the cached engine at ``engine_path`` must not be used for ``key``; None when it is good."""
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        return "no engine file"
    try:
        stored = json.loads((engine_path.parent / KEY_FILE).read_text())
    except (OSError, ValueError):
        return f"missing or corrupt {KEY_FILE}"
    if stored != key.to_dict():
        return "entry was made for another key (foreign or stale entry)"
    try:
        sidecar = read_sidecar(engine_path)
    except BadInputError as exc:
        return str(exc)
    built = sidecar.environment
    if built != key.environment:
        return f"engine was built with {built.describe()}, this machine has {key.environment.describe()}"
    if sidecar.onnx_sha256 != key.onnx_sha256:
        return "engine was built from another ONNX file"
    requested = sidecar.build_flags.get("precision", sidecar.precision)  # "auto" resolves at build time
    if requested != key.precision:
        return f"engine was built for precision {requested}, wanted {key.precision}"
    if not sidecar.profiles or sidecar.profiles[0] != key.profile:
        return "engine was built for other input shapes"
    try:
        check_engine_file(engine_path, sidecar, verify_hash=verify_hash)
    except BadInputError as exc:
        return str(exc)
    return None


def lookup(key: CacheKey, root: str | os.PathLike[str] | None = None) -> Path | None:
    """The cached engine for ``key`` if present and valid; an invalid entry is deleted."""
    directory = entry_dir(key, root)
    if not directory.exists():
        return None
    problem = entry_problem(directory / ENGINE_FILE, key)
    if problem is None:
        return directory / ENGINE_FILE
    print(f"stylize-rt: cached engine {directory.name} not reused ({problem}); rebuilding", file=sys.stderr)
    shutil.rmtree(directory, ignore_errors=True)
    return None


def store_key(key: CacheKey, root: str | os.PathLike[str] | None = None) -> Path:
    """Create the entry directory and write its ``key.json`` (done right after a successful build)."""
    directory = entry_dir(key, root)
    write_atomic(directory / KEY_FILE, json.dumps(key.to_dict(), indent=2, sort_keys=True) + "\n")
    return directory


def timing_cache_path(env: Environment, root: str | os.PathLike[str] | None = None) -> Path:
    """One timing cache per TensorRT version + GPU: rebuilds of any model reuse its measurements."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{env.tensorrt_version}-{env.gpu_name}-sm{env.compute_capability}")
    return Path(root or cache_root()) / "timing" / f"{safe}.cache"


@contextlib.contextmanager
def _entry_lock(key: CacheKey, root) -> Iterator[None]:
    """Two processes opening the same model build it once: the second waits, then reuses it."""
    lock_dir = Path(root or cache_root()) / "engines"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{key.digest()}.lock", "w") as handle:
        try:
            import fcntl  # POSIX only
        except ImportError:  # Windows: no advisory locks; atomic renames still keep entries whole
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_engine(
    onnx_path: str | os.PathLike[str],
    config=None,
    root: str | os.PathLike[str] | None = None,
    device: int = 0,
) -> Path:
    """The engine for ``onnx_path`` under ``config``: from the cache, or built into it now.

    Without a config: precision ``auto`` (FP16 where the TensorRT version and graph allow it)
    and the default 360p..1080p profile.
    """
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise BadInputError(f"ONNX file not found: {onnx_path}")
    config = replace(config or BuildConfig(precision="auto"), device=device)
    config.validate()
    env = running_environment(device)
    key = make_key(file_sha256(onnx_path), resolve_build_profile(onnx_path, config), config.engine_options(), env)
    with _entry_lock(key, root):
        cached = lookup(key, root)
        if cached is not None:
            return cached
        directory = entry_dir(key, root)
        directory.mkdir(parents=True, exist_ok=True)
        print(f"stylize-rt: building a TensorRT engine for {onnx_path.name} (once; cached in {directory})",
              file=sys.stderr)
        if not config.timing_cache:
            config = replace(config, timing_cache=str(timing_cache_path(env, root)))
            Path(config.timing_cache).parent.mkdir(parents=True, exist_ok=True)
        build_engine(onnx_path, directory / ENGINE_FILE, config)
        store_key(key, root)
        problem = entry_problem(directory / ENGINE_FILE, key)
        if problem is not None:
            raise StylizeError(f"the engine just built for {onnx_path.name} does not validate: {problem}")
        return directory / ENGINE_FILE


def onnxruntime_trt_cache_dir(
    onnx_path: str | os.PathLike[str], profile: Profile, precision: str, root: str | os.PathLike[str] | None = None
) -> Path:
    """Where ONNX Runtime's TensorRT EP keeps its engine and timing caches for this model.

    Same key as our own engines. ORT links its own TensorRT, whose version Python cannot see
    without the ``tensorrt`` package; ORT also names its cache files by TensorRT version and
    compute capability itself, so a foreign file in the directory is never loaded by ORT.
    """
    try:
        import tensorrt  # optional: names the TensorRT version where the package is installed

        trt_version = str(tensorrt.__version__)
    except ImportError:
        import onnxruntime  # the EP's TensorRT is ORT's own: key by the ORT version

        trt_version = f"onnxruntime-{onnxruntime.__version__}"
    try:
        gpu_name, capability = cuda.gpu_info(0)
    except StylizeError:
        gpu_name, capability = "unknown", "0.0"
    env = Environment(trt_version, gpu_name, capability)
    key = make_key(file_sha256(onnx_path), profile, {"precision": precision, "consumer": "onnxruntime"}, env)
    return Path(root or cache_root()) / "ort-trt" / key.digest()


__all__ = [
    "ENV_VAR",
    "CacheKey",
    "cache_root",
    "make_key",
    "entry_dir",
    "entry_problem",
    "lookup",
    "store_key",
    "timing_cache_path",
    "ensure_engine",
    "onnxruntime_trt_cache_dir",
]
