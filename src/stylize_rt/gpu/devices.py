"""The NVIDIA GPUs the driver reports, without loading CUDA: what benchmark records name.

``nvidia-smi`` answers where a driver is installed even when no CUDA library is (so a
result file says which GPU a machine had); :func:`stylize_rt.gpu.cuda.gpu_info` asks
cuda-python about one device for the engine code.
"""

from __future__ import annotations

import shutil
import subprocess


def smi_gpus() -> list[dict[str, str]]:
    """NVIDIA GPUs via ``nvidia-smi`` (name, driver, memory); empty where there are none."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "driver": parts[1], "memory": parts[2]})
    return gpus


__all__ = ["smi_gpus"]
