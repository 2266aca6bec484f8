"""The page generator of docs/BENCHMARKS.md: headline ratios and verdicts come from the records."""

from __future__ import annotations

from pathlib import Path

from stylize_rt.benchmarks import report
from stylize_rt.benchmarks.harness import BenchRecord
from stylize_rt.recipes import cpu_matrix


def rec(backend, precision, size, p50, mode="model", overhead=None, network="model", flagged=0):
    h, w = size
    return BenchRecord(backend=backend, device="cpu", precision=precision, batch=1, height=h, width=w, mode=mode,
                       model="m", iters=30, warmup=3, clock="perf_counter", min_ms=p50 * 0.9, mean_ms=p50,
                       p50_ms=p50, p90_ms=p50 * 1.1, p99_ms=p50 * 1.2, max_ms=p50 * 1.3, std_ms=1.0, noise=0.01,
                       fps=1000 / p50, mpix_s=1000 / p50 * h * w / 1e6, gflops=10.0, peak_fraction=0.25,
                       gmacs_per_frame=0.5, overhead=overhead, p50_ci_low_ms=p50 * 0.95, p50_ci_high_ms=p50 * 1.05,
                       network=network, flagged_blocks=flagged, blocks=6,
                       command=f"stylize-rt bench --backends {backend}")


def document():
    records = []
    for size, eager, ort in (((256, 256), 30.0, 10.0), ((512, 512), 100.0, 60.0), ((360, 640), 90.0, 25.0)):
        records += [rec("torch", "fp32", size, eager), rec("onnxruntime", "fp32", size, ort),
                    rec("onnxruntime", "fp32", size, ort * 1.04, mode="pipeline", overhead=0.04)]
    env = {"cpu": {"model": "Test CPU", "physical_cores": 2, "usable_cores": 2, "flags": ["avx512_bf16"]},
           "gpus": [], "libraries": {"numpy": "2"}, "git": {"commit": "abc", "dirty": False},
           "threads": {"requested_threads": 0, "env": {}}, "timestamp_utc": "2026-01-01T00:00:00+00:00"}
    return report.build_document(env, {"gflops": 40.0, "size": 1024, "repeats": 3, "blas": "openblas"}, records)


def test_page_states_ratios_targets_and_reproducing_commands(tmp_path):
    page = cpu_matrix.render(document(), "python -m stylize_rt.recipes.cpu_matrix",
                                 Path(tmp_path / "r.json"), None)
    assert "**256x256**: fastest CPU path is **onnxruntime FP32** at 10.00 ms (p50; mean 10.00), **3.00x**" in page
    assert "≥ 2x: **met**" in page
    assert "**512x512**" in page and "**1.67x**" in page and "**not met**" in page  # 100 / 60 < 2
    assert "**40.0 frames/s** model-only" in page and "end to end through the runtime **38.5 frames/s**" in page
    assert "Target ≥ 30 frames/s: **met**" in page  # 640x360 at 25 ms, 26 ms end to end
    assert "+4.0%" in page and "3 of 3 end-to-end configurations are within" in page
    assert "`stylize-rt bench --backends torch`" in page
    assert "No CUDA GPU" in page and "0.015 s" in page
    assert "Test CPU" in page and "40.0 GFLOP/s" in page


def test_file_to_file_rows_show_the_codec_share(tmp_path):
    doc = document()
    records = report.records_of(doc)
    row = rec("onnxruntime", "fp32", (360, 640), 40.0, mode="transcode", overhead=0.6)
    row.capture_ms, row.infer_ms, row.output_ms, row.codec_share = 3.0, 26.0, 11.0, 14.0 / 40.0
    doc = report.build_document(doc["environment"], doc["sgemm_peak"], records + [row])
    page = cpu_matrix.render(doc, "cmd", Path(tmp_path / "r.json"), None)
    assert "| onnxruntime FP32 | 640x360 | 40.0 | 38.5 | 25.0 | 3.00 / 26.00 / 11.00 | 35% |" in page
    assert "--transcode 640x360,720p" in page


def test_render_from_a_result_file(tmp_path):
    path = report.write_json(document(), tmp_path / "cpu.json")
    out = tmp_path / "BENCH.md"
    assert cpu_matrix.main(["--render", str(path), "--doc", str(out), "--plot", str(tmp_path / "none.png")]) == 0
    assert out.read_text().startswith("# Benchmarks")


def test_busy_rows_are_left_out_and_peer_ratios_and_floors_are_stated(tmp_path):
    doc = document()
    records = report.records_of(doc)
    records += [rec("onnxruntime", "fp32", (256, 256), 250.0, network="johnson2016"),
                rec("torch", "fp32", (256, 256), 400.0, network="johnson2016"),
                rec("onnxruntime", "int8", (256, 256), 5.0, flagged=2)]  # fastest, but measured while others ran
    doc = report.build_document(doc["environment"], doc["sgemm_peak"], records)
    page = cpu_matrix.render(doc, "cmd", Path(tmp_path / "r.json"), None)
    assert "fastest CPU path is **onnxruntime FP32**" in page  # the busy INT8 row is not the headline
    assert "1 of 12 rows are left out" in page and "during 2 of its 6 blocks" in page
    assert "| 25.0x |" in page  # Johnson ORT 250 ms / 10 ms
    assert "Johnson et al. 2016" in page and "| 25.00 |" in page  # floor: 2 x 0.5 GMAC / 40 GFLOP/s = 25 ms



def test_live_switch_section_comes_from_the_switch_result(tmp_path):
    summary = {"frames": 10, "median_ms": 20.0, "p99_ms": 25.0, "max_ms": 26.0}
    switch = {"settings": {"model": "styles6", "backend": "onnxruntime", "precision": "fp32", "size": "640x360",
                           "frames": 80, "every": 8, "threads": 0},
              "changed_frames": summary, "other_switching_frames": {**summary, "frames": 70},
              "steady_frames": {**summary, "frames": 80, "median_ms": 19.5},
              "changes": [{"visible": True}] * 9 + [{"visible": False}], "changed_over_steady_median": 1.026,
              "environment": {"load_average_start": [0.1, 0.2, 0.3]}}
    page = cpu_matrix.render(document(), "cmd", Path(tmp_path / "r.json"), None, switch)
    assert "## Live style switching" in page and "| frames with a change | 10 | 20.00 | 25.00 | 26.00 |" in page
    assert "9 of 10 changes show" in page and "1.026x the steady median" in page
    assert "load average at the start [0.1, 0.2, 0.3]" in page
    assert "## Live style switching" not in cpu_matrix.render(document(), "cmd", Path(tmp_path / "r.json"), None)


def test_style_input_section_shows_the_interleaved_result_first(tmp_path):
    r = {"frames": 120, "model_median_ms": 14.2, "plain_median_ms": 13.1, "ratio_of_medians": 1.084,
         "median_of_ratios": 1.079}
    used = {**r, "model_median_ms": 15.9, "ratio_of_medians": 1.214}
    styled = {"results": {"int8": {"640x360": r}, "fp32": {"640x360": {**r, "ratio_of_medians": 1.031}}},
              "controls_in_use": {"int8": {"640x360": used}, "fp32": {"640x360": used}},
              "settings": {"model": "styles6", "precisions": ["fp32", "int8"], "frames": 120, "threads": 1},
              "environment": {"load_average_start": [0.5, 0.4, 0.3]}}
    page = cpu_matrix.render(document(), "cmd", Path(tmp_path / "r.json"), None, style_inputs_result=styled)
    section = page.split("## What the style inputs cost")[1].split("\n## ")[0]
    assert "--precision fp32,int8 --sizes 640x360 --frames 120 --threads 1" in section
    assert "| int8 | defaults | 640x360 | 14.20 | 13.10 | 1.084 | 1.079 | **not met** |" in section
    assert "| fp32 | defaults | 640x360 | 14.20 | 13.10 | 1.031 | 1.079 | met |" in section
    assert "| int8 | strength 0.6, colour kept | 640x360 | 15.90 | 13.10 | 1.214 | 1.079 | (controls in use) |" in section
    assert section.index("alternating frame by frame") < section.index("each timed in its own block")
    plain = cpu_matrix.render(document(), "cmd", Path(tmp_path / "r.json"), None)
    assert "alternating frame by frame" not in plain.split("## What the style inputs cost")[1].split("\n## ")[0]


def test_the_multi_style_targets_are_judged_model_only_and_end_to_end(tmp_path):
    doc = document()
    records = report.records_of(doc) + [rec("onnxruntime", "int8", (720, 1280), 31.0),  # 32.3 frames/s
                                        rec("onnxruntime", "int8", (720, 1280), 34.0, mode="pipeline", overhead=0.1)]
    page = cpu_matrix.render(report.build_document(doc["environment"], doc["sgemm_peak"], records), "cmd",
                             Path(tmp_path / "r.json"), None)
    # 640x360: 25 ms model-only (40 frames/s) is short of 60, and so is 26 ms end to end
    assert "| 640x360 | ≥ 60 | onnxruntime FP32 | 40.0; 40.0 | 38.5 | **not met** | **not met** |" in page
    assert "| 1280x720 | ≥ 30 | onnxruntime INT8 | 32.3; 32.3 | 29.4 | **met** | **not met** |" in page


def test_the_targets_are_shown_per_cpu_class_from_the_latest_run_of_each(tmp_path):
    import json

    def run(flags, int8_720p_ms, commit, engine="styles6", model="EPYC"):
        doc = document()
        doc["environment"] = {**doc["environment"], "cpu": {"model": model, "flags": flags},
                              "git": {"commit": commit}, "command": f"stylize-rt bench --engine {engine} --pipeline"}
        records = report.records_of(doc) + [rec("onnxruntime", "int8", (720, 1280), int8_720p_ms)]
        return report.build_document(doc["environment"], doc["sgemm_peak"], records)

    history = tmp_path / "history.jsonl"
    lines = [run(["avx2", "avx512f", "avx512_vnni"], 40.0, "old0000"), run(["avx2", "avx512f", "avx512_vnni"], 31.0, "vnni000"),
             run(["avx2", "fma"], 64.0, "avx2000"), run(["avx2"], 10.0, "mosaic0", engine="mosaic"),
             run(["avx2", "avx512f", "avx512_vnni"], 35.0, "xeon000", model="Xeon")]
    history.write_text("\n".join(json.dumps(d) for d in lines) + "\n{not json\n")
    rows = cpu_matrix.cpu_class_rows(history, "styles6")
    assert len(rows) == 5  # header, rule, one row per class and chip: the latest EPYC VNNI run, the Xeon, the AVX2 one
    vnni, xeon, avx2 = rows[2], rows[3], rows[4]  # sorted by class name, then chip
    assert xeon.startswith("| AVX-512 with VNNI (Xeon) | xeon000") and "28.6 (**not met**) / -" in xeon
    assert avx2.startswith("| AVX2 without VNNI (EPYC) | avx2000") and "15.6 (**not met**) / -" in avx2
    assert vnni.startswith("| AVX-512 with VNNI (EPYC) | vnni000") and "32.3 (met) / -" in vnni
    assert "40.0 (**not met**) / 38.5 (**not met**)" in vnni  # 640x360 against 60
    assert cpu_matrix.cpu_class(["avx2", "avx_vnni"]) == "AVX2 with AVX-VNNI"
    assert cpu_matrix.cpu_class_rows(tmp_path / "none.jsonl", "styles6") == ["No runs of this model in the history file."]


def test_an_end_to_end_row_whose_model_only_row_is_left_out_is_not_judged(tmp_path):
    doc = document()
    records = [r for r in report.records_of(doc) if not (r.mode == "model" and r.height == 512 and r.backend == "onnxruntime")]
    records.append(rec("onnxruntime", "fp32", (512, 512), 60.0, flagged=1))  # the busy twin of the 512 pipeline row
    doc = report.build_document(doc["environment"], doc["sgemm_peak"], records)
    page = cpu_matrix.render(doc, "cmd", Path(tmp_path / "r.json"), None)
    assert "2 of 2 end-to-end configurations are within the 10% overhead target (1 more have their model-only row left out)" in page
    assert "| onnxruntime FP32 | 512x512 | left out | 16.0 | - |" in page
    assert "nan" not in page
