"""The live-switch benchmark on the embedded default: every change shows in the frame that asks for it."""

from __future__ import annotations

import json
import subprocess
import sys


def test_switch_latency_measures_every_change_on_the_embedded_default(tmp_path):
    out = tmp_path / "switch.json"
    proc = subprocess.run([sys.executable, "-m", "stylize_rt.benchmarks.switch_latency", "--size", "96x64",
                           "--frames", "20", "--every", "2", "--threads", "1", "--json-out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["every_change_visible"], result["changes"]
    assert [c["to"] for c in result["changes"]][:2] == ["stained_glass", "brush"]
    assert result["changed_frames"]["frames"] == 10 and result["steady_frames"]["frames"] == 20
    assert "| frames with a change | 10 |" in proc.stdout


def test_switch_latency_refuses_a_single_style_model():
    proc = subprocess.run([sys.executable, "-m", "stylize_rt.benchmarks.switch_latency", "--model", "mosaic",
                           "--size", "96x64", "--frames", "8", "--every", "2", "--threads", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "multi-style" in proc.stderr
