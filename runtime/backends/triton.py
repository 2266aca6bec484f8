"""Triton client backend: a model served by Triton Inference Server, run like a local file.

``--engine triton://HOST:PORT/NAME[/VERSION]`` talks gRPC (default port 8001),
``triton+http://HOST:PORT/NAME`` HTTP/REST (default port 8000). At open the backend checks
that the server is live and the model ready, reads the model's tensors from the server's
metadata and its stylize-rt convention (IO layout, value range, style) from the config
``parameters`` that ``export-triton`` writes, so ``Stylizer``, ``run``, ``bench`` and the camera
treat it like the file it was exported from. Latency includes the transport.

Failures are one line: no server at the address (exit 1), no such model (exit 2), model not
ready (exit 1, with the server's reason), a request the server refuses (exit 2: e.g. more
frames than its ``max_batch_size``), a request that outlives ``timeout_s`` (exit 1; the checks at
open have their own ``connect_timeout_s``).
``tritonclient`` (the [serve] extra) is imported when a backend opens.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import itertools
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

import numpy as np

from stylize_rt.contract import TensorSpec
from stylize_rt.errors import BadInputError, MissingDependencyError, StylizeError, first_line
from stylize_rt.runtime.backends.base import BackendBase, warm_up
from stylize_rt.runtime.backends.options import TritonOptions, make_options

SCHEMES = {"triton": "grpc", "triton+grpc": "grpc", "triton+http": "http"}
DEFAULT_PORTS = {"grpc": 8001, "http": 8000}
SERVE_HINT = "pip install 'stylize-rt[serve]'"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_REGION_IDS = itertools.count()


def is_triton_url(model: Any) -> bool:
    """Whether ``model`` names a served model (``triton://``, ``triton+grpc://``, ``triton+http://``)."""
    return isinstance(model, str) and model.split("://", 1)[0].lower() in SCHEMES and "://" in model


@dataclass(frozen=True)
class TritonTarget:
    """Where a served model is: protocol, host, port, model name and version ("" = the server's choice)."""

    protocol: str
    host: str
    port: int
    model: str
    version: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self) -> str:
        scheme = "triton" if self.protocol == "grpc" else "triton+http"
        return f"{scheme}://{self.address}/{self.model}" + (f"/{self.version}" if self.version else "")


def parse_triton_url(url: str) -> TritonTarget:
    """``triton://HOST[:PORT]/NAME[/VERSION]`` -> :class:`TritonTarget`; a one-line error otherwise."""
    if not is_triton_url(url):
        raise BadInputError(f"not a Triton model URL: {url!r} (expected triton://HOST:PORT/NAME)")
    parts = urlsplit(url)
    protocol = SCHEMES[parts.scheme.lower()]
    try:
        port = parts.port or DEFAULT_PORTS[protocol]
    except ValueError:
        raise BadInputError(f"bad port in {url!r}") from None
    path = [p for p in parts.path.split("/") if p]
    if not parts.hostname or not 1 <= len(path) <= 2 or parts.query or parts.fragment:
        raise BadInputError(f"bad Triton model URL {url!r}: expected triton://HOST:PORT/NAME[/VERSION]")
    version = path[1] if len(path) == 2 else ""
    if version and not version.isdigit():
        raise BadInputError(f"bad model version {version!r} in {url!r}: a positive integer")
    return TritonTarget(protocol, parts.hostname, port, path[0], version)


def client_module(protocol: str):
    """``tritonclient.grpc`` or ``tritonclient.http``; a one-line error naming the extra when absent."""
    try:
        return importlib.import_module(f"tritonclient.{protocol}")  # the [serve] extra, only for triton:// models
    except ImportError as exc:
        raise MissingDependencyError(
            f"triton{'' if protocol == 'grpc' else '+http'}:// models need tritonclient[{protocol}] "
            f"({first_line(exc)}): {SERVE_HINT}"
        ) from None


def triton_unavailable(options: TritonOptions) -> str | None:
    """Why the Triton client cannot run here (None: it can; the server is checked at open)."""
    if importlib.util.find_spec("tritonclient") is None:
        return f"tritonclient is not installed ({SERVE_HINT})"
    return None


def _is_timeout(exc: BaseException) -> bool:
    status = str(getattr(exc, "status", lambda: "")() or "")
    return "DEADLINE_EXCEEDED" in status or "timeout" in type(exc).__name__.lower() or "timed out" in str(exc).lower()


def _message(exc: BaseException) -> str:
    text = exc.message() if callable(getattr(exc, "message", None)) else str(exc)
    return first_line(Exception(text)) if text else type(exc).__name__


class TritonBackend(BackendBase):
    """A model on a Triton server (options: :class:`TritonOptions`)."""

    name = "triton"

    def __init__(self, url: str, options: TritonOptions | None = None, **fields: Any) -> None:
        options = make_options(TritonOptions, options, self.name, **fields)
        if options.precision != "auto":
            raise BadInputError("a served model's precision is fixed by the server's model file; "
                                "drop --fp16/--fp32 (export an fp16 model to serve fp16)")
        self.options = options
        self.target = parse_triton_url(url)
        self.url = self.target.url()
        self._module = client_module(self.target.protocol)
        self._utils = importlib.import_module("tritonclient.utils")  # ships with either protocol's extra
        self._client = self._connect(options.connect_timeout_s)  # the checks, metadata and config
        self._local = threading.local()  # HTTP clients are gevent-based: one per calling thread
        self._extra_clients: list[Any] = []
        self._check_ready()
        metadata, config = self._describe()
        self.max_batch = int(config.get("max_batch_size", 0) or 0)
        self.inputs = [self._spec(t) for t in metadata.get("inputs", [])]
        self.outputs = [self._spec(t) for t in metadata.get("outputs", [])]
        self.metadata = {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}
        self._shm_lock = threading.Lock()
        self._shm = SystemSharedMemory(self._client_here, self._module, self._utils) if self._wants_shm() else None
        self.warmup_seconds = warm_up(self, options.warmup, *(options.warmup_shape or (256, 256)))

    # -- opening --------------------------------------------------------------------------
    def _connect(self, timeout: float):
        try:
            if self.target.protocol == "http":
                return self._module.InferenceServerClient(self.target.address, connection_timeout=timeout,
                                                          network_timeout=timeout)
            return self._module.InferenceServerClient(self.target.address)
        except Exception as exc:  # noqa: BLE001 - tritonclient raises its own and socket errors alike
            raise StylizeError(f"cannot reach a Triton server at {self.target.address}: {_message(exc)}") from None

    def _call(self, what: str, function, *args, timeout: float, **kwargs):
        """A client call whose transport faults become one-line errors (``timeout``: for the message)."""
        try:
            return function(*args, **kwargs)
        except self._utils.InferenceServerException as exc:
            if _is_timeout(exc):
                raise StylizeError(f"{self.url}: {what} timed out after {timeout:g} s") from None
            if "UNAVAILABLE" in str(exc.status() or "") or "failed to connect" in _message(exc).lower():
                raise StylizeError(f"cannot reach a Triton server at {self.target.address} "
                                   f"({self.target.protocol}): is tritonserver running there?") from None
            raise
        except OSError as exc:  # HTTP: connection refused, reset, timeouts
            if _is_timeout(exc):
                raise StylizeError(f"{self.url}: {what} timed out after {timeout:g} s") from None
            raise StylizeError(f"cannot reach a Triton server at {self.target.address} ({self.target.protocol}): "
                               f"{exc.strerror or first_line(exc)}; is tritonserver running there?") from None

    def _wants_shm(self) -> bool:
        mode = self.options.shared_memory
        if mode not in ("auto", "on", "off"):
            raise BadInputError(f"shared_memory must be auto, on or off (got {mode!r})")
        if mode == "auto":  # only where the server is certainly this host
            return self.target.host in LOOPBACK_HOSTS and os.path.isdir("/dev/shm")
        return mode == "on"

    def _client_here(self):
        """The client for requests from the calling thread: gRPC clients are thread-safe and take a
        deadline per call; HTTP ones are gevent-based (one per thread) with the request timeout built in."""
        if self.target.protocol == "grpc":
            return self._client
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._connect(self.options.timeout_s)
            self._extra_clients.append(client)
        return client

    def _timeout_kwargs(self, timeout: float) -> dict[str, Any]:
        return {"client_timeout": timeout} if self.target.protocol == "grpc" else {}

    def _check_ready(self) -> None:
        model, version = self.target.model, self.target.version
        timeout = self.options.connect_timeout_s
        kwargs = {"timeout": timeout, **self._timeout_kwargs(timeout)}
        try:
            live = self._call("liveness check", self._client.is_server_live, **kwargs)
            ready = live and self._call("readiness check", self._client.is_model_ready, model, version, **kwargs)
        except self._utils.InferenceServerException as exc:
            raise StylizeError(f"{self.url}: {_message(exc)}") from None
        if not live:
            raise StylizeError(f"the Triton server at {self.target.address} is not live")
        if ready:
            return
        index = self._repository_index()
        entry = next((m for m in index if m.get("name") == model), None)
        if entry is None:
            names = ", ".join(sorted({m.get("name", "?") for m in index})) or "none"
            raise BadInputError(f"no model {model!r} on the Triton server at {self.target.address} (models: {names})")
        state, reason = entry.get("state", "UNKNOWN"), entry.get("reason", "")
        raise StylizeError(f"model {model!r} is not ready on {self.target.address}: {state}"
                           + (f" ({first_line(Exception(reason))})" if reason else ""))

    def _repository_index(self) -> list[dict]:
        try:
            if self.target.protocol == "grpc":
                index = self._client.get_model_repository_index(
                    as_json=True, **self._timeout_kwargs(self.options.connect_timeout_s))
                return list(index.get("models", []))
            return list(self._client.get_model_repository_index())
        except (self._utils.InferenceServerException, OSError):
            return []

    def _describe(self) -> tuple[dict, dict]:
        model, version = self.target.model, self.target.version
        timeout = self.options.connect_timeout_s
        if self.target.protocol == "grpc":
            kwargs = {"as_json": True, "timeout": timeout, **self._timeout_kwargs(timeout)}
            metadata = self._call("metadata", self._client.get_model_metadata, model, version, **kwargs)
            config = self._call("config", self._client.get_model_config, model, version, **kwargs).get("config", {})
        else:
            metadata = self._call("metadata", self._client.get_model_metadata, model, version, timeout=timeout)
            config = self._call("config", self._client.get_model_config, model, version, timeout=timeout)
        return metadata, config

    def _spec(self, tensor: dict) -> TensorSpec:
        shape = tuple(None if int(d) < 0 else int(d) for d in tensor.get("shape", []))
        dtype = self._utils.triton_to_np_dtype(tensor.get("datatype", ""))
        return TensorSpec(tensor["name"], np.dtype(dtype if dtype is not None else object), shape)

    # -- running --------------------------------------------------------------------------
    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._shm is not None:
            try:
                with self._shm_lock:
                    return self._shm.infer(feeds, self.inputs, self.outputs, self._request)
            except SharedMemoryUnavailable as exc:
                if self.options.shared_memory == "on":
                    raise StylizeError(f"{self.url}: shared memory with the server failed: {exc}") from None
                self._shm.close()
                self._shm = None  # "auto": the server is not on this host after all; send frames in requests
        module = self._module
        inputs = []
        for spec in self.inputs:
            array = np.ascontiguousarray(feeds[spec.name])
            item = module.InferInput(spec.name, list(array.shape), self._utils.np_to_triton_dtype(array.dtype))
            item.set_data_from_numpy(array)
            inputs.append(item)
        outputs = [module.InferRequestedOutput(spec.name) for spec in self.outputs]
        result = self._request(inputs, outputs)
        return {spec.name: result.as_numpy(spec.name) for spec in self.outputs}

    def _request(self, inputs: list, outputs: list):
        """One inference call; the server's refusal becomes a one-line ``BadInputError``."""
        try:
            timeout = self.options.timeout_s
            result = self._call("request", self._client_here().infer, self.target.model, inputs, timeout=timeout,
                                model_version=self.target.version, outputs=outputs, **self._timeout_kwargs(timeout))
        except self._utils.InferenceServerException as exc:
            message = _message(exc)
            hint = ""
            if "batch-size must be" in message:
                hint = f" (the model takes at most {self.max_batch} frames per request: use --batch {self.max_batch})"
            raise BadInputError(f"{self.url} refused the request: {message}{hint}") from None
        return result

    def close(self) -> None:
        shm, self._shm = getattr(self, "_shm", None), None
        if shm is not None:
            shm.close()
        clients = [getattr(self, "_client", None), *getattr(self, "_extra_clients", [])]
        self._client, self._extra_clients = None, []
        for client in clients:
            if client is not None:
                with contextlib.suppress(Exception):  # closing a dead connection must not mask the real error
                    client.close()


class SharedMemoryUnavailable(Exception):
    """The server cannot use this process's shared memory (another host or IPC namespace)."""


class SystemSharedMemory:
    """Frames in and out through POSIX shared memory registered with the server (same host only).

    One region per tensor, grown when a call needs more. An output's region is sized for an
    image-to-image model (as many elements as the largest input, of the output's type); a
    model whose output is larger is refused by the server and that call falls back to
    transfer in the request (``SharedMemoryUnavailable``).
    """

    def __init__(self, client_here: Callable[[], Any], module, utils) -> None:
        self._client_here = client_here  # the calling thread's client (registration is per server)
        self._module, self._utils = module, utils
        self._shm = importlib.import_module("tritonclient.utils.shared_memory")  # ships with tritonclient
        self._regions: dict[str, tuple[str, Any, int]] = {}  # tensor -> (region name, handle, bytes)
        self._tag = f"stylize_rt_{os.getpid()}_{next(_REGION_IDS)}"

    def _region(self, tensor: str, nbytes: int):
        current = self._regions.get(tensor)
        if current is not None and current[2] >= nbytes:
            return current
        if current is not None:
            self._release(tensor)
        name = f"{self._tag}_{len(self._regions)}_{tensor}"
        nbytes = max(nbytes, 1)
        try:
            handle = self._shm.create_shared_memory_region(name, f"/{name}", nbytes)
        except self._shm.SharedMemoryException as exc:
            raise SharedMemoryUnavailable(f"cannot create /{name}: {exc}") from None
        try:
            self._client_here().register_system_shared_memory(name, f"/{name}", nbytes)
        except self._utils.InferenceServerException as exc:
            self._shm.destroy_shared_memory_region(handle)
            raise SharedMemoryUnavailable(_message(exc)) from None
        self._regions[tensor] = (name, handle, nbytes)
        return self._regions[tensor]

    def infer(self, feeds: dict[str, np.ndarray], input_specs: list[TensorSpec], output_specs: list[TensorSpec],
              request: Callable[[list, list], Any]) -> dict[str, np.ndarray]:
        module, utils = self._module, self._utils
        inputs = []
        largest = 0
        for spec in input_specs:
            array = np.ascontiguousarray(feeds[spec.name])
            name, handle, _ = self._region(spec.name, array.nbytes)
            self._shm.set_shared_memory_region(handle, [array])
            item = module.InferInput(spec.name, list(array.shape), utils.np_to_triton_dtype(array.dtype))
            item.set_shared_memory(name, array.nbytes)
            inputs.append(item)
            largest = max(largest, array.size)
        outputs = []
        for spec in output_specs:
            nbytes = largest * np.dtype(spec.dtype).itemsize
            name, _, size = self._region(spec.name, nbytes)
            item = module.InferRequestedOutput(spec.name)
            item.set_shared_memory(name, size)
            outputs.append(item)
        try:
            result = request(inputs, outputs)
        except BadInputError as exc:
            if "shared memory" in str(exc).lower() or "byte size" in str(exc).lower():
                raise SharedMemoryUnavailable(str(exc)) from None
            raise
        out = {}
        for spec in output_specs:
            meta = result.get_output(spec.name)
            shape = [int(d) for d in (meta["shape"] if isinstance(meta, dict) else meta.shape)]
            handle = self._regions[spec.name][1]
            out[spec.name] = self._shm.get_contents_as_numpy(handle, np.dtype(spec.dtype), shape).copy()
        return out

    def _release(self, tensor: str) -> None:
        name, handle, _ = self._regions.pop(tensor)
        with contextlib.suppress(Exception):  # the server may be gone; the local segment goes regardless
            self._client_here().unregister_system_shared_memory(name)
        with contextlib.suppress(Exception):
            self._shm.destroy_shared_memory_region(handle)

    def close(self) -> None:
        for tensor in list(self._regions):
            self._release(tensor)


__all__ = ["TritonBackend", "TritonTarget", "is_triton_url", "parse_triton_url", "triton_unavailable"]
