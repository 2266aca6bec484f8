"""Regression check: a 30% slowdown is flagged, noise is not, and the JSON survives a round trip."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from stylize_rt.benchmarks import compare as cmp
from stylize_rt.benchmarks import report
from stylize_rt.benchmarks.harness import BenchRecord, Failed, Skipped
from stylize_rt.errors import BadInputError


def record(p50: float, noise: float = 0.01, **changes) -> BenchRecord:
    base = dict(backend="onnxruntime", device="cpu", precision="fp32", batch=1, height=256, width=256,
                mode="model", model="m.onnx", iters=50, warmup=3, clock="perf_counter", min_ms=p50 * 0.9,
                mean_ms=p50 * 1.02, p50_ms=p50, p90_ms=p50 * 1.1, p99_ms=p50 * 1.2, max_ms=p50 * 1.3,
                std_ms=p50 * 0.05, noise=noise, fps=1000 / p50, mpix_s=1000 / p50 * 0.065536)
    base.update(changes)
    return BenchRecord(**base)


def test_synthetic_30_percent_regression_is_flagged():
    [c] = cmp.compare([record(10.0)], [record(13.0)])
    assert c.status == "regression"
    assert c.change == pytest.approx(0.30)
    assert cmp.regressions([c]) == [c]


def test_changes_within_noise_are_not_flagged():
    # 2% slower with 1% noise per run: below the 5% floor.
    assert cmp.compare([record(10.0)], [record(10.2)])[0].status == "same"
    # 30% slower, but each run's median wandered by 20%: within 3 sigma of the combined noise.
    c = cmp.compare([record(10.0, noise=0.2)], [record(13.0, noise=0.2)])[0]
    assert c.status == "same" and c.threshold == pytest.approx(3 * 0.2 * 2**0.5)


def test_improvement_new_and_missing():
    base = [record(10.0), record(40.0, height=512, width=512)]
    cur = [record(7.0), record(5.0, batch=4)]
    statuses = {c.key: c.status for c in cmp.compare(base, cur)}
    assert statuses[record(1).key()] == "improvement"
    assert statuses[record(1, batch=4).key()] == "new"
    assert statuses[record(1, height=512, width=512).key()] == "missing"
    table = cmp.comparison_table(cmp.compare(base, cur))
    assert "improvement" in table and "1 baseline configuration(s) not measured" in table


def test_floor_and_k_are_respected():
    [c] = cmp.compare([record(10.0, noise=0.0)], [record(10.8, noise=0.0)], floor=0.05)
    assert c.status == "regression"
    [c] = cmp.compare([record(10.0, noise=0.0)], [record(10.8, noise=0.0)], floor=0.10)
    assert c.status == "same"


def test_json_round_trip(tmp_path):
    records = [record(10.0), record(20.0, mode="pipeline", overhead=0.04, pipeline="x"),
               record(5.0, device="cuda", backend="tensorrt", h2d_ms=0.5, compute_ms=4.0, d2h_ms=0.5)]
    env = {"cpu": {"model": "test cpu", "physical_cores": 2, "flags": ["avx2"]}, "libraries": {"numpy": "2"}}
    doc = report.build_document(env, {"gflops": 100.0, "size": 1024, "repeats": 3, "blas": "x"}, records,
                                [Skipped("tensorrt", "fp16", "no GPU")], [Failed("torch", "bf16", 8, 8, 1, "model", "NaN")])
    path = report.write_json(doc, tmp_path / "out" / "r.json")
    loaded = report.load_document(path)
    assert loaded == json.loads(json.dumps(doc))
    assert report.records_of(loaded) == records
    for field in report.REQUIRED_FIELDS:
        assert field in loaded["records"][0]
    # Views of the same document.
    md = report.markdown_report(loaded)
    assert "| onnxruntime |" in md and "test cpu" in md and "no GPU" in md and "compute ms" in md
    assert "+4.0%" in report.terminal_table(records)


def test_history_appends_one_line_per_run(tmp_path):
    doc = report.build_document({"cpu": {}}, None, [record(10.0)])
    path = tmp_path / "results" / "history.jsonl"
    report.append_history(doc, path)
    report.append_history(doc, path)
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["records"][0]["p50_ms"] == 10.0


@pytest.mark.parametrize("content", ["not json", json.dumps({"schema": "other"}),
                                     json.dumps({"schema": report.SCHEMA, "environment": {}, "records": [{"backend": "x"}]})])
def test_bad_result_files_are_one_line_errors(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(BadInputError):
        report.load_document(path)


def test_plot_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    records = [record(p, height=s, width=s) for p, s in ((10.0, 256), (40.0, 512))]
    records += [replace(r, backend="torch", p50_ms=r.p50_ms * 2) for r in records]
    path = report.write_plot(records, tmp_path / "plot.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_peer_network_is_its_own_plot_line_not_a_spike_in_the_models():
    ours = [record(p, height=s, width=s) for p, s in ((10.0, 256), (40.0, 512))]
    peer = [replace(r, network="johnson2016", p50_ms=r.p50_ms * 20) for r in ours]
    series = report.plot_series(ours + peer)
    assert len(series) == 2
    model = next(rows for key, rows in series.items() if key[-1] == "model")
    assert [r.p50_ms for r in model] == [10.0, 40.0]
