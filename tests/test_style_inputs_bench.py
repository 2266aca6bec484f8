"""benchmarks.style_inputs: the multi-style graph and its plain twin timed in turns, on the real graphs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")

from stylize_rt.models import MODELS_DIR

STYLES6 = MODELS_DIR / "styles6"
needs_models = pytest.mark.skipif(not (STYLES6 / "generator_int8.onnx").is_file() or
                                  not (MODELS_DIR / "mosaic" / "config.json").is_file(),
                                  reason="embedded models not built in this checkout (make models)")


def _bench(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "stylize_rt.benchmarks.style_inputs", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@needs_models
def test_times_both_precisions_in_turns_and_writes_the_ratios(tmp_path):
    out = tmp_path / "style_inputs.json"
    proc = _bench("--frames", "3", "--sizes", "64x48,48x32", "--threads", "1", "--json-out", out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert set(result["results"]) == {"fp32", "int8"} and result["settings"]["frames"] == 3
    for per_size in result["results"].values():
        assert set(per_size) == {"64x48", "48x32"}
        for r in per_size.values():
            assert r["model_median_ms"] > 0 and r["plain_median_ms"] > 0
            assert r["ratio_of_medians"] == pytest.approx(r["model_median_ms"] / r["plain_median_ms"], rel=0.03)
    assert set(result["controls_in_use"]) == {"fp32", "int8"}
    assert result["settings"]["controls_in_use"] == {"strength": 0.6, "preserve_color": True}
    for per_size in result["controls_in_use"].values():
        assert set(per_size) == {"64x48", "48x32"} and all(r["model_median_ms"] > 0 for r in per_size.values())
    assert "| int8 | defaults | 48x32 |" in proc.stdout and "| int8 | strength 0.6, colour kept | 48x32 |" in proc.stdout
    assert result["environment"]["command"].startswith("python -m stylize_rt.benchmarks.style_inputs --frames 3")


@needs_models
@pytest.mark.parametrize("args, words", [
    (("--model", "mosaic"), "takes no style input"),
    (("--precision", "fp16"), "--precision takes fp32 and int8"),
    (("--frames", "1"), "--frames must be >= 2"),
])
def test_bad_input_is_one_line_and_exit_2(args, words):
    proc = _bench("--sizes", "32x32", "--frames", "2", "--threads", "1", *args)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
