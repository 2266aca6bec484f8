"""The NVIDIA GPUs the driver reports, without loading CUDA: what benchmark records name.

``nvidia-smi`` answers where a driver is installed even when no CUDA library is (so a
result file says which GPU a machine had); :func:`stylize_rt.gpu.cuda.gpu_info` asks
cuda-python about one device for the engine code. :func:`gpu_state` reads clocks, power and
temperature from NVML (``libnvidia-ml.so.1``, which ships with the driver) through ctypes, so
a benchmark records what the GPU was doing without the nvidia-ml-py package; where NVML
cannot be loaded it asks ``nvidia-smi`` for the same fields.
"""

from __future__ import annotations

import ctypes
import glob
import os
import shutil
import subprocess
from typing import Any

NVML_LIBRARIES = ("libnvidia-ml.so.1", "libnvidia-ml.so", "nvml.dll")
NVML_CLOCK_GRAPHICS, NVML_CLOCK_SM, NVML_CLOCK_MEM = 0, 1, 2
NVML_TEMPERATURE_GPU = 0
# Bits of nvmlDeviceGetCurrentClocksThrottleReasons (nvml.h), named as nvidia-smi -q names them.
THROTTLE_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
SMI_FIELDS = ("index", "name", "clocks.sm", "clocks.mem", "clocks.max.sm", "power.draw", "power.limit",
              "temperature.gpu", "clocks_throttle_reasons.active")


def smi_gpus() -> list[dict[str, str]]:
    """NVIDIA GPUs via ``nvidia-smi`` (name, driver, memory); empty where there are none."""
    out = _smi(["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
    gpus = []
    for line in (out or "").strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "driver": parts[1], "memory": parts[2]})
    return gpus


def nvidia_gpu_present() -> bool:
    """Cheap: does the kernel driver expose an NVIDIA GPU? (no library is loaded, nothing is run)."""
    return bool(glob.glob("/proc/driver/nvidia/gpus/*") or glob.glob("/dev/nvidia[0-9]*"))


def _smi(args: list[str]) -> str | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        return subprocess.run([smi, *args], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def throttle_reasons(mask: int) -> list[str]:
    """Names of the bits set in an NVML clocks-throttle-reasons mask (unknown bits as hex)."""
    names = [name for bit, name in THROTTLE_REASONS.items() if mask & bit]
    unknown = mask & ~sum(THROTTLE_REASONS)
    if unknown:
        names.append(hex(unknown))
    return names


def gpu_state() -> list[dict[str, Any]]:
    """Per GPU: SM/memory clocks (current and max, MHz), power draw and limit (W), temperature (C),
    active throttle reasons, and where the numbers came from (``nvml`` or ``nvidia-smi``).

    Empty on machines without an NVIDIA driver. Never raises: a benchmark record is still
    written when the GPU cannot be asked.
    """
    try:
        state = _nvml_state()
    except OSError:
        state = None
    if state is not None:
        return state
    return parse_smi_state(_smi([f"--query-gpu={','.join(SMI_FIELDS)}", "--format=csv,noheader,nounits"]) or "")


def parse_smi_state(text: str) -> list[dict[str, Any]]:
    """``nvidia-smi --query-gpu=<SMI_FIELDS> --format=csv,noheader,nounits`` output as :func:`gpu_state` rows."""
    rows = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != len(SMI_FIELDS):
            continue
        index, name, sm, mem, max_sm, power, limit, temp, reasons = parts
        try:
            mask = int(reasons, 16) if reasons.lower().startswith("0x") else None
        except ValueError:
            mask = None
        rows.append({
            "index": _number(index, int), "name": name, "sm_clock_mhz": _number(sm, int),
            "mem_clock_mhz": _number(mem, int), "max_sm_clock_mhz": _number(max_sm, int),
            "power_w": _number(power, float), "power_limit_w": _number(limit, float),
            "temperature_c": _number(temp, int),
            "throttle_reasons": throttle_reasons(mask) if mask is not None else None, "source": "nvidia-smi",
        })
    return rows


def _number(text: str, kind):
    try:
        return kind(float(text))
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def _load_nvml():
    for name in NVML_LIBRARIES:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def _nvml_state() -> list[dict[str, Any]] | None:
    """The NVML C API (nvml.h) through ctypes; None where the library is absent or will not start."""
    if os.environ.get("STYLIZE_RT_NO_NVML"):
        return None
    lib = _load_nvml()
    if lib is None or lib.nvmlInit_v2() != 0:
        return None
    try:
        count = ctypes.c_uint(0)
        if lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            return None
        rows = []
        for index in range(count.value):
            handle = ctypes.c_void_p()
            if lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) != 0:
                continue
            rows.append(_nvml_device(lib, index, handle))
        return rows
    finally:
        lib.nvmlShutdown()


def _nvml_device(lib, index: int, handle) -> dict[str, Any]:
    def uint(call, *args) -> int | None:
        value = ctypes.c_uint(0)
        return int(value.value) if call(handle, *args, ctypes.byref(value)) == 0 else None

    def ull(call) -> int | None:
        value = ctypes.c_ulonglong(0)
        return int(value.value) if call(handle, ctypes.byref(value)) == 0 else None

    name = ctypes.create_string_buffer(96)
    got_name = lib.nvmlDeviceGetName(handle, name, ctypes.c_uint(96)) == 0
    power = uint(lib.nvmlDeviceGetPowerUsage)  # milliwatts
    limit = uint(lib.nvmlDeviceGetEnforcedPowerLimit)
    mask = ull(lib.nvmlDeviceGetCurrentClocksThrottleReasons)
    return {
        "index": index,
        "name": name.value.decode(errors="replace") if got_name else None,
        "sm_clock_mhz": uint(lib.nvmlDeviceGetClockInfo, NVML_CLOCK_SM),
        "mem_clock_mhz": uint(lib.nvmlDeviceGetClockInfo, NVML_CLOCK_MEM),
        "max_sm_clock_mhz": uint(lib.nvmlDeviceGetMaxClockInfo, NVML_CLOCK_SM),
        "power_w": power / 1000.0 if power is not None else None,
        "power_limit_w": limit / 1000.0 if limit is not None else None,
        "temperature_c": uint(lib.nvmlDeviceGetTemperature, NVML_TEMPERATURE_GPU),
        "throttle_reasons": throttle_reasons(mask) if mask is not None else None,
        "source": "nvml",
    }


__all__ = ["smi_gpus", "nvidia_gpu_present", "gpu_state", "parse_smi_state", "throttle_reasons"]
