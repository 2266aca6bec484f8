"""GPU clocks, power and temperature for benchmark records (NVML through ctypes, nvidia-smi otherwise)."""

from __future__ import annotations

import pytest

from stylize_rt.gpu import devices


def test_nvidia_smi_rows_parse_with_missing_fields():
    text = ("0, NVIDIA H200, 1980, 3201, 1980, 402.51, 700.00, 41, 0x0000000000000000\n"
            "1, NVIDIA H100 80GB HBM3, 345, 2619, 1980, [N/A], 700.00, 30, 0x0000000000000001\n"
            "garbage line\n")
    rows = devices.parse_smi_state(text)
    assert len(rows) == 2
    assert rows[0] == {"index": 0, "name": "NVIDIA H200", "sm_clock_mhz": 1980, "mem_clock_mhz": 3201,
                       "max_sm_clock_mhz": 1980, "power_w": 402.51, "power_limit_w": 700.0, "temperature_c": 41,
                       "throttle_reasons": [], "source": "nvidia-smi"}
    assert rows[1]["power_w"] is None and rows[1]["throttle_reasons"] == ["gpu_idle"]


def test_throttle_reasons_read_as_words():
    assert devices.throttle_reasons(0) == []
    assert devices.throttle_reasons(0x4 | 0x40) == ["sw_power_cap", "hw_thermal_slowdown"]
    assert devices.throttle_reasons(0x10000) == ["0x10000"]


def test_without_a_driver_there_is_nothing_to_report(monkeypatch):
    monkeypatch.setattr(devices, "_nvml_state", lambda: None)
    monkeypatch.setattr(devices, "_smi", lambda args: None)
    assert devices.gpu_state() == [] and devices.smi_gpus() == []


@pytest.mark.gpu
def test_nvml_reads_the_running_gpu():
    rows = devices.gpu_state()
    assert rows, "a GPU machine must report its GPU state"
    first = rows[0]
    assert first["source"] in ("nvml", "nvidia-smi") and first["name"]
    assert first["sm_clock_mhz"] and first["sm_clock_mhz"] > 0
    assert first["max_sm_clock_mhz"] >= first["sm_clock_mhz"]
    assert first["power_limit_w"] and first["power_limit_w"] > 0
    assert devices.nvidia_gpu_present()
