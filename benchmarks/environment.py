"""What a benchmark ran on: CPU, GPU/driver, library versions, git commit, thread settings.

Numbers without their environment cannot be compared, so every JSON result carries
this record once at the top. Library versions come from package metadata, not imports:
recording the torch version must not load torch into a process that benchmarks ORT.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from stylize_rt.gpu.devices import gpu_state, smi_gpus

LIBRARIES = (
    "stylize-rt",
    "numpy",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnx",
    "torch",
    "tensorrt",
    "tensorrt-cu12",
    "tensorrt-cu13",
    "cuda-python",
    "cuda-bindings",
    "cupy-cuda12x",
    "cupy-cuda13x",
    "opencv-python-headless",
    "pillow",
)
CPU_FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
                         "amx_tile")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "MKL_NUM_THREADS",
                    "OPENBLAS_NUM_THREADS", "ORT_NUM_THREADS")
_HERE = Path(__file__).resolve().parent  # benchmarks/ in a checkout (an editable install links here)
# The checkout, where results and docs live; the working directory for an installed copy.
REPO_ROOT = _HERE.parent if (_HERE.parent / "pyproject.toml").is_file() else Path.cwd()


def cpu_info() -> dict[str, Any]:
    """Model name, logical/physical core counts and the SIMD flags that decide kernel choice."""
    model, flags, cores = platform.processor() or platform.machine(), set(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    physical_id = "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name":
            model = value
        elif key == "flags" and not flags:
            flags = set(value.split())
        elif key == "physical id":
            physical_id = value
        elif key == "core id":
            cores.add((physical_id, value))
    logical = os.cpu_count() or 1
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = logical
    return {
        "model": model,
        "logical_cores": logical,
        "physical_cores": len(cores) or logical,
        "usable_cores": usable,
        "flags": [f for f in CPU_FLAGS_OF_INTEREST if f in flags],
        "machine": platform.machine(),
    }


def cpu_has(flag: str) -> bool:
    """True when the CPU advertises ``flag`` (e.g. ``avx512_bf16``, ``amx_bf16``)."""
    return flag in cpu_info()["flags"]


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(root: Path = REPO_ROOT) -> dict[str, Any] | None:
    """HEAD commit and whether the tree had uncommitted changes; None outside a checkout."""
    if not (root / ".git").exists() or shutil.which("git") is None:
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(dirty)}


def thread_settings(requested_threads: int) -> dict[str, Any]:
    return {
        "requested_threads": requested_threads,
        "env": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ},
    }


def load_average() -> list[float] | None:
    """1/5/15-minute load averages: on a shared machine, how busy the cores were."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def describe_gpu_state(states: list[dict[str, Any]]) -> str:
    """One line per GPU: SM clock (of its max), memory clock, power (of its limit), temperature, throttling."""
    def value(state, key, unit, digits=0):
        v = state.get(key)
        return "?" if v is None else f"{v:.{digits}f}{unit}"

    parts = []
    for s in states:
        reasons = s.get("throttle_reasons")
        throttle = "none" if reasons == [] else ("?" if reasons is None else ",".join(reasons))
        parts.append(f"GPU {s.get('index', '?')} {s.get('name') or ''}: SM {value(s, 'sm_clock_mhz', ' MHz')} of "
                     f"{value(s, 'max_sm_clock_mhz', ' MHz')}, memory {value(s, 'mem_clock_mhz', ' MHz')}, "
                     f"{value(s, 'power_w', ' W', 1)} of {value(s, 'power_limit_w', ' W', 0)}, "
                     f"{value(s, 'temperature_c', ' C')}, throttling: {throttle}")
    return "; ".join(parts)


def collect(requested_threads: int = 0, command: str | None = None) -> dict[str, Any]:
    """The full environment record written at the top of every result file."""
    return {
        "load_average_start": load_average(),
        "timestamp_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command if command is not None else " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "gpus": smi_gpus(),
        "gpu_state": gpu_state(),  # clocks, power, temperature, throttling at the start (NVML)
        "libraries": library_versions(),
        "git": git_commit(),
        "threads": thread_settings(requested_threads),
    }
