"""Starts a real ``tritonserver`` on loopback for the tests, from the ``nvidia-pytriton`` wheel.

The wheel (requirements/triton-server.txt) ships Triton 2.51's server binary and its Python
backend, with one backend stub per Python version. The server is driven directly (pytriton's
own proxy does not start on this Python): the tests lay out a backend folder with the stub for
the running Python, put this interpreter first on ``PATH`` (the stub's embedded Python finds
its ``sys.prefix``, hence this venv's packages, through ``python3`` on ``PATH``) and the wheel's
bundled libraries on ``LD_LIBRARY_PATH``. HTTP and gRPC bind 127.0.0.1 on free ports; metrics
are off; start-up and shutdown are bounded.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class TritonServer:
    grpc_port: int
    http_port: int
    log: Path
    process: subprocess.Popen

    def url(self, model: str, protocol: str = "grpc") -> str:
        if protocol == "grpc":
            return f"triton://127.0.0.1:{self.grpc_port}/{model}"
        return f"triton+http://127.0.0.1:{self.http_port}/{model}"


def _server_root() -> Path | None:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "tritonserver"


def _stub() -> Path | None:
    root = _server_root()
    if root is None:
        return None
    return root / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}" / \
        "triton_python_backend_stub"


def _libs() -> Path:
    return _server_root().parent.parent / "nvidia_pytriton.libs"  # the wheel's bundled shared libraries


def unavailable() -> str | None:
    """Why no server can start here (None: it can)."""
    root = _server_root()
    if root is None or not (root / "bin" / "tritonserver").is_file():
        return "tritonserver is not installed (pip install --no-deps -r requirements/triton-server.txt)"
    stub = _stub()
    if stub is None or not stub.is_file():
        return f"the Triton wheel has no Python-backend stub for Python {sys.version_info[:2]}"
    ldd = shutil.which("ldd")
    if ldd:
        env = dict(os.environ, LD_LIBRARY_PATH=str(_libs()))
        out = subprocess.run([ldd, str(stub)], capture_output=True, text=True, env=env, timeout=30).stdout
        missing = [line.split()[0] for line in out.splitlines() if "not found" in line]
        if missing:
            return f"the Python-backend stub needs {missing[0]} (apt-get install libpython3.{sys.version_info.minor})"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _backend_dir(workdir: Path) -> Path:
    """``backends/python`` from the wheel, plus the stub for the running Python."""
    backends = workdir / "backends"
    python = backends / "python"
    shutil.copytree(_server_root() / "backends" / "python", python, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(_stub(), python / "triton_python_backend_stub")
    return backends


def _ready(server: TritonServer) -> bool:
    import tritonclient.http as http  # the test extra

    try:
        client = http.InferenceServerClient(f"127.0.0.1:{server.http_port}", connection_timeout=2, network_timeout=2)
        try:
            return bool(client.is_server_ready())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - not up yet
        return False


@contextlib.contextmanager
def tritonserver(repo: Path, workdir: Path) -> Iterator[TritonServer]:
    """A server on ``repo``; models that fail to load stay UNAVAILABLE instead of stopping the server."""
    reason = unavailable()
    if reason:
        raise RuntimeError(reason)
    workdir.mkdir(parents=True, exist_ok=True)
    backends = _backend_dir(workdir)
    log = workdir / "tritonserver.log"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               LD_LIBRARY_PATH=os.pathsep.join(filter(None, [str(_libs()), os.environ.get("LD_LIBRARY_PATH")])),
               OMP_NUM_THREADS="1")
    grpc_port, http_port = _free_port(), _free_port()
    command = [str(_server_root() / "bin" / "tritonserver"), "--model-repository", str(repo),
               "--backend-directory", str(backends), "--http-address", "127.0.0.1", "--http-port", str(http_port),
               "--grpc-address", "127.0.0.1", "--grpc-port", str(grpc_port), "--allow-metrics", "false",
               "--allow-gpu-metrics", "false", "--exit-on-error", "false", "--exit-timeout-secs", "5",
               "--strict-readiness", "false"]
    with open(log, "wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = TritonServer(grpc_port, http_port, log, process)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _ready(server):
            if process.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"tritonserver not ready after {START_TIMEOUT_S:g} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the server and its backend stubs
                process.wait(STOP_TIMEOUT_S)
