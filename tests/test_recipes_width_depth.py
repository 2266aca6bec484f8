"""recipes/width_depth at tiny settings: trains, exports, measures and benches a real (tiny) layout."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stylize_rt.errors import BadInputError
from stylize_rt.recipes.width_depth import LAYOUTS, parse_layouts, train_config


def test_layouts_parse_and_reject_bad_text():
    assert parse_layouts("8,16,16/2; 16,32,32/3") == [(8, 16, 16, 2), (16, 32, 32, 3)]
    for bad in ("8,16/2", "8,16,16", "a,b,c/1", "", "8,16,16/-1"):
        with pytest.raises(BadInputError):
            parse_layouts(bad)


def test_train_config_is_the_shipped_recipe_with_only_the_layout_changed(tmp_path):
    from stylize_rt.recipes.width_depth import base_recipe

    cfg = train_config(LAYOUTS[0], 123, tmp_path, progress=False)
    assert cfg.channels == LAYOUTS[0][:3] and cfg.res_blocks == LAYOUTS[0][3] and cfg.steps == 123
    assert cfg.styles == ("mosaic",)
    for key, value in base_recipe().items():  # everything else follows the one recipe
        if key not in ("styles", "channels", "res_blocks", "steps", "out", "progress", "preview_every"):
            assert getattr(cfg, key) == value, key


@pytest.mark.slow
def test_width_depth_recipe_tiny_run(tmp_path):
    pytest.importorskip("onnx")
    out_json, out_md = tmp_path / "wd.json", tmp_path / "wd.md"
    r = subprocess.run(
        [sys.executable, "-m", "stylize_rt.recipes.width_depth", "--steps", "2", "--layouts", "4,8,8/1;4,8,8/0",
         "--runs", str(tmp_path / "runs"), "--json", str(out_json), "--markdown", str(out_md),
         "--bench-seconds", "0.2", "--bench-rounds", "2", "--frames", "2", "--nets", "random", "--max-patches", "200", "--no-progress"],
        capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(out_json.read_text())
    assert doc["complete"] and [row["layout"] for row in doc["rows"]] == ["4-8-8_r1", "4-8-8_r0"]
    for row in doc["rows"]:
        assert row["train"]["steps"] == 2 and row["perception"]
        assert set(row["speed"]) == {"fp32", "int8"} and all(v["p50_ms"] > 0 for v in row["speed"].values())
        assert all(len(v["round_p50_ms"]) == 2 for v in row["speed"].values())
        assert "edge_correlation_min" in row["quality"]["summary"]
        assert "patch_s2o_random_mean" in row["quality"]["summary"]
    assert doc["rows"][0]["parameters"] > doc["rows"][1]["parameters"]  # one residual block more
    table = out_md.read_text()
    assert table.count("\n") == 4 and "4/8/8 / 1" in table and "ORT INT8" in table and "fps" in table
    # re-timing a finished result keeps its quality numbers and replaces the speed
    r = subprocess.run([sys.executable, "-m", "stylize_rt.recipes.width_depth", "--bench-only", "--json", str(out_json),
                        "--markdown", str(out_md), "--bench-seconds", "0.2", "--bench-rounds", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    again = json.loads(out_json.read_text())
    assert [row["quality"] for row in again["rows"]] == [row["quality"] for row in doc["rows"]]
    assert all(len(v["round_p50_ms"]) == 1 for row in again["rows"] for v in row["speed"].values())
    assert "patch s2o random" in out_md.read_text()
