"""``stylize-rt bench`` end to end: real ONNX Runtime sessions on tiny models, real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from stylize_rt.benchmarks import harness, report


def bench(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "stylize_rt", "bench", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("stylize-rt: error:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def constant_model(path, nan: bool = False):
    """uint8 NHWC in -> same-shape uint8 out; every pixel 0 (or a float NaN image with ``nan``)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.UINT8, ["n", "h", "w", 3])
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    nodes = [helper.make_node("Cast", ["input"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["f", "zero"], ["z"])]
    if nan:
        nodes.append(helper.make_node("Div", ["z", "zero"], ["output"]))
        y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", "h", "w", 3])
    else:
        nodes.append(helper.make_node("Cast", ["z"], ["output"], to=TensorProto.UINT8))
        y = helper.make_tensor_value_info("output", TensorProto.UINT8, ["n", "h", "w", 3])
    graph = helper.make_graph(nodes, "constant", [x], [y], [zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    entry = model.metadata_props.add()
    entry.key, entry.value = "stylize_rt.io_layout", "uint8_nhwc"
    onnx.save(model, str(path))
    return path


def test_tiny_benchmark_through_the_cli(tiny_onnx, tmp_path):
    out = tmp_path / "out"
    proc = bench("--engine", tiny_onnx["uint8_nhwc"], "--backends", "onnxruntime", "--precision", "fp32",
                 "--sizes", "32,40x24", "--batch", "1,2", "--iters", 6, "--warmup", 1, "--threads", 1,
                 "--pipeline", "--json", out / "r.json", "--markdown", out / "r.md", "--plot", out / "r.png",
                 "--history", out / "history.jsonl")
    assert proc.returncode == 0, proc.stderr
    doc = report.load_document(out / "r.json")
    env = doc["environment"]
    assert env["cpu"]["logical_cores"] >= 1 and env["libraries"]["onnxruntime"]
    assert env["threads"]["requested_threads"] == 1 and "bench" in env["command"]
    assert doc["sgemm_peak"]["gflops"] > 0
    records = report.records_of(doc)
    assert len(records) == 2 * 2 * 2  # sizes x batches x (model, pipeline)
    for r in records:
        assert r.iters == 6 and r.backend == "onnxruntime" and r.device == "cpu"
        assert 0 < r.min_ms <= r.p50_ms <= r.p90_ms <= r.p99_ms <= r.max_ms
        assert r.fps == pytest.approx(r.batch * 1000 / r.mean_ms)
        assert r.gflops > 0 and r.peak_fraction > 0
        assert r.command.startswith("stylize-rt bench ")
    pipelines = [r for r in records if r.mode == "pipeline"]
    assert pipelines and all(r.overhead is not None and r.pipeline for r in pipelines)
    assert {(r.height, r.width) for r in records} == {(32, 32), (24, 40)}
    assert "| onnxruntime |" in (out / "r.md").read_text()
    assert (out / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert len((out / "history.jsonl").read_text().splitlines()) == 1
    assert "p99 ms" in proc.stdout and "40x24" in proc.stdout


def test_transcode_rows_time_the_codecs_too(tiny_onnx, tmp_path):
    """--transcode: decode -> stylize -> encode of an H.264 clip, with the codec's share of the time."""
    out = tmp_path / "out"
    proc = bench("--engine", tiny_onnx["uint8_nhwc"], "--backends", "onnxruntime", "--precision", "fp32",
                 "--sizes", "32,64x48", "--iters", 4, "--warmup", 1, "--threads", 1, "--no-peak",
                 "--transcode", "64x48", "--json", out / "r.json", "--markdown", out / "r.md")
    assert proc.returncode == 0, proc.stderr
    rows = report.records_of(report.load_document(out / "r.json"))
    assert sorted((r.width, r.mode) for r in rows) == [(32, "model"), (64, "model"), (64, "transcode")]
    records = {r.mode: r for r in rows if r.width == 64}
    row = records["transcode"]
    assert "libx264" in row.pipeline and row.command.endswith("--transcode")
    assert row.capture_ms > 0 and row.output_ms > 0 and row.infer_ms > 0
    assert row.codec_share == pytest.approx((row.capture_ms + row.output_ms)
                                            / (row.capture_ms + row.infer_ms + row.output_ms))
    assert row.overhead is not None and records["model"].codec_share is None
    assert "| codec % |" in (out / "r.md").read_text()
    refused = bench("--engine", tiny_onnx["uint8_nhwc"], "--sizes", "32", "--transcode", "720p", "--iters", 1)
    assert refused.returncode == 2 and "not among --sizes" in one_line_error(refused)


def test_conv_work_is_counted_from_the_onnx_graph(tiny_onnx):
    from conftest import TINY_CONFIG

    from stylize_rt.benchmarks.peak import onnx_conv_macs
    from stylize_rt.nets.generator import GeneratorConfig, estimate_macs

    config = GeneratorConfig.from_dict(TINY_CONFIG)
    for layout in ("uint8_nhwc", "float32_nchw"):
        assert onnx_conv_macs(tiny_onnx[layout], 37, 51) == estimate_macs(config, 37, 51)


def test_conv_stem_work_is_counted_too(tmp_path):
    torch = pytest.importorskip("torch")
    from stylize_rt.benchmarks.peak import onnx_conv_macs
    from stylize_rt.export.onnx_export import export_generator
    from stylize_rt.nets.generator import Generator, GeneratorConfig, estimate_macs

    config = GeneratorConfig(channels=(4, 8, 8), res_blocks=1, stem_kernel=5, stem="conv", padding="reflect")
    torch.manual_seed(0)
    path = export_generator(Generator(config).eval(), tmp_path / "conv.onnx", io_layout="uint8_nhwc")
    assert onnx_conv_macs(path, 37, 51) == estimate_macs(config, 37, 51)
    assert estimate_macs(config, 37, 51) != estimate_macs(GeneratorConfig(channels=(4, 8, 8), res_blocks=1), 37, 51)


def test_onnx_bench_does_not_import_torch(tiny_onnx):
    code = ("import sys; from stylize_rt.cli import main; "
            f"rc = main(['bench', '--engine', {str(tiny_onnx['float32_nchw'])!r}, '--backends', 'onnxruntime', "
            "'--precision', 'fp32', '--sizes', '32', '--iters', '3', '--warmup', '1', '--no-peak']); "
            "assert rc == 0; assert 'torch' not in sys.modules, 'torch was imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("nan", [False, True])
def test_output_guard_rejects_a_model_that_computes_nothing(tmp_path, nan):
    model = constant_model(tmp_path / "const.onnx", nan=nan)
    proc = bench("--engine", model, "--backends", "onnxruntime", "--precision", "fp32", "--sizes", "32",
                 "--iters", 3, "--no-peak", "--json", tmp_path / "r.json")
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert ("NaN" in line) if nan else ("constant" in line)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["records"] == [] and len(doc["failed"]) == 1


def test_check_outputs_directly():
    frames = harness.make_frames(2, 20, 30)
    harness.check_outputs({"y": frames}, 2, 20, 30)
    harness.check_outputs({"y": frames.transpose(0, 3, 1, 2).astype(np.float32)}, 2, 20, 30)
    with pytest.raises(harness.OutputCheckError, match="shape"):
        harness.check_outputs({"y": frames[:, :10]}, 2, 20, 30)
    one_flat = frames.copy()
    one_flat[1] = 7
    with pytest.raises(harness.OutputCheckError, match="constant"):
        harness.check_outputs({"y": one_flat}, 2, 20, 30)


def test_frames_look_real_and_are_deterministic():
    a, b = harness.make_frames(2, 48, 64, seed=3), harness.make_frames(2, 48, 64, seed=3)
    assert a.dtype == np.uint8 and a.shape == (2, 48, 64, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a[0], a[1])
    assert a.std() > 20 and len(np.unique(a)) > 100


def test_compare_flags_a_regression_and_exits_nonzero(tiny_onnx, tmp_path):
    args = ["--engine", tiny_onnx["uint8_nhwc"], "--backends", "onnxruntime", "--precision", "fp32",
            "--sizes", "32", "--iters", 5, "--warmup", 1, "--no-peak"]
    proc = bench(*args, "--json", tmp_path / "base.json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "base.json").read_text())
    fast, slow = json.loads(json.dumps(doc)), json.loads(json.dumps(doc))
    for r in fast["records"]:
        r["p50_ms"], r["noise"] = r["p50_ms"] / 100, 0.0  # the baseline was 100x faster: regression now
    for r in slow["records"]:
        r["p50_ms"], r["noise"] = r["p50_ms"] * 100, 0.0  # the baseline was 100x slower: improvement now
    (tmp_path / "fast.json").write_text(json.dumps(fast))
    (tmp_path / "slow.json").write_text(json.dumps(slow))
    proc = bench(*args, "--compare", tmp_path / "fast.json")
    assert proc.returncode == 1
    assert "regression" in one_line_error(proc) and "REGRESSION" in proc.stdout
    proc = bench(*args, "--compare", tmp_path / "slow.json")
    assert proc.returncode == 0, proc.stderr  # 100x faster than the baseline: never a regression
    assert "REGRESSION" not in proc.stdout and "baseline p50" in proc.stdout


@pytest.mark.parametrize("args, fragment", [
    (["--sizes", "abc"], "bad frame size"),
    (["--sizes", "8"], "minimum"),
    (["--batch", "0"], "batch"),
    (["--precision", "fp64"], "unknown precision"),
    (["--backends", "cuda-magic"], "unknown backend"),
    (["--engine", "missing.onnx"], "not found"),
    (["--compare", "missing.json"], "baseline not found"),
])
def test_bad_arguments_are_one_line_errors(tiny_onnx, args, fragment):
    base = ["--engine", tiny_onnx["uint8_nhwc"], "--iters", 2] if "--engine" not in args else ["--iters", 2]
    proc = bench(*base, *args)
    assert proc.returncode == 2
    assert fragment in one_line_error(proc)


def test_nothing_runnable_is_a_missing_dependency(tiny_onnx):
    from stylize_rt.benchmarks.cli import variant_unavailable

    if variant_unavailable("tensorrt") is None:
        pytest.skip("TensorRT is available here")
    proc = bench("--engine", tiny_onnx["uint8_nhwc"], "--backends", "tensorrt", "--sizes", "32", "--iters", 2)
    assert proc.returncode == 2
    assert "no configuration could run here" in one_line_error(proc)


@pytest.fixture(scope="module")
def tiny_captioner(tmp_path_factory):
    """A random-weight tiny captioner exported to ONNX (timing does not need a trained one)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from stylize_rt.export.captioner import export_captioner
    from stylize_rt.nets.captioner import Captioner, CaptionerConfig
    from stylize_rt.tokenizer import Tokenizer

    tokenizer = Tokenizer.build(["a red ball on the grass", "two dogs run on a beach", "a cat sits on a box"])
    torch.manual_seed(0)
    config = CaptionerConfig(vocab_size=len(tokenizer), image_size=32, channels=(8, 16), feature_dim=16,
                             embed_dim=8, hidden_dim=16, attention_dim=8, max_len=8)
    return export_captioner((Captioner(config).eval(), tokenizer), tmp_path_factory.mktemp("cap") / "onnx")


def test_captioner_timings_through_the_cli(tiny_onnx, tiny_captioner, tmp_path):
    proc = bench("--engine", tiny_onnx["uint8_nhwc"], "--backends", "onnxruntime", "--precision", "fp32",
                 "--sizes", "32", "--iters", 4, "--warmup", 1, "--no-peak", "--captioner", tiny_captioner,
                 "--json", tmp_path / "r.json")
    assert proc.returncode == 0, proc.stderr
    [row] = json.loads((tmp_path / "r.json").read_text())["captioner"]
    assert 1 <= row["tokens"] <= 9 and row["iters"] == 4
    assert row["token_ms"] > 0 and 0 < row["encoder_ms"] < row["caption_ms"]
    assert row["captions_s"] == pytest.approx(1000 / row["caption_ms"])
    assert "per-token" in proc.stdout


def test_missing_captioner_is_skipped_with_a_reason(tiny_onnx, tmp_path):
    proc = bench("--engine", tiny_onnx["uint8_nhwc"], "--backends", "onnxruntime", "--precision", "fp32",
                 "--sizes", "32", "--iters", 2, "--no-peak", "--captioner", tmp_path / "nothing")
    assert proc.returncode == 0, proc.stderr
    assert "skipped: captioner" in proc.stdout and "not found" in proc.stdout


def test_unwritable_output_fails_before_measuring(tiny_onnx, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = bench("--engine", tiny_onnx["uint8_nhwc"], "--sizes", "32", "--iters", 2, "--json", blocker / "r.json")
    assert proc.returncode == 3
    assert "cannot write --json" in one_line_error(proc)
    assert "bench: opening" not in proc.stderr


def test_int8_is_derived_from_the_fp32_onnx_and_benchmarked(tiny_onnx, tmp_path):
    pytest.importorskip("onnx")
    proc = bench("--engine", tiny_onnx["uint8_nhwc"], "--backends", "onnxruntime", "--precision", "fp32,int8",
                 "--sizes", "32", "--iters", 3, "--warmup", 1, "--no-peak", "--json", tmp_path / "r.json")
    assert proc.returncode == 0, proc.stderr
    records = report.records_of(report.load_document(tmp_path / "r.json"))
    assert sorted(r.precision for r in records) == ["fp32", "int8"]
    int8 = next(r for r in records if r.precision == "int8")
    assert int8.model.endswith("_int8.onnx") and int8.gflops > 0


@pytest.mark.slow
def test_checkpoint_directory_runs_torch_and_onnxruntime_in_one_run(tiny_generator, tmp_path):
    pytest.importorskip("safetensors")
    from stylize_rt.benchmarks.cli import variant_unavailable
    from stylize_rt.export.onnx_export import export_generator
    from stylize_rt.nets.checkpoint import save_generator

    if variant_unavailable("torch"):
        pytest.skip(variant_unavailable("torch"))
    ckpt = save_generator(tmp_path / "ckpt", tiny_generator)
    export_generator(tiny_generator, ckpt / "generator.onnx", io_layout="uint8_nhwc")
    proc = bench("--engine", ckpt, "--backends", "onnxruntime,torch", "--precision", "fp32,bf16", "--sizes", "32",
                 "--iters", 3, "--warmup", 1, "--threads", 1, "--no-peak", "--json", tmp_path / "r.json", timeout=240)
    assert proc.returncode == 0, proc.stderr
    doc = report.load_document(tmp_path / "r.json")
    got = {(r.backend, r.precision) for r in report.records_of(doc)}
    assert {("onnxruntime", "fp32"), ("torch", "fp32")} <= got
    assert any(s["backend"] == "onnxruntime" and s["precision"] == "bf16" for s in doc["skipped"])
    from stylize_rt.benchmarks.environment import cpu_has

    if cpu_has("avx512_bf16") or cpu_has("amx_bf16"):
        assert ("torch", "bf16") in got


def test_an_engine_error_fails_that_configuration_with_one_line(tmp_path):
    """A fixed 32x32 model asked for 48x48: ONNX Runtime's own error becomes a FAILED row, not a traceback."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.UINT8, [1, 32, 32, 3])
    y = helper.make_tensor_value_info("output", TensorProto.UINT8, [1, 32, 32, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "fixed", [x], [y])
    path = tmp_path / "fixed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    proc = bench("--engine", path, "--backends", "onnxruntime", "--precision", "fp32", "--sizes", "32,48",
                 "--iters", 3, "--no-peak", "--json", tmp_path / "r.json")
    assert proc.returncode == 1
    one_line_error(proc)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [(r["height"], r["width"]) for r in doc["records"]] == [(32, 32)]
    assert [(f["height"], f["width"]) for f in doc["failed"]] == [(48, 48)]
    assert "FAILED: onnxruntime fp32 48x48" in proc.stdout


def test_foreign_model_takes_layout_and_range_flags_or_is_probed(tmp_path):
    """An ONNX model without stylize-rt metadata: float NCHW in 0..255 (the ONNX model zoo's convention)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "h", "w"])
    scale = helper.make_tensor("k", TensorProto.FLOAT, [], [0.9])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "k"], ["y"])], "zoo", [x], [y], [scale])
    path = tmp_path / "zoo.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    for flags in (["--layout", "nchw", "--input-range", "0-255"], []):
        proc = bench("--engine", path, "--backends", "onnxruntime", "--precision", "fp32", "--sizes", "32",
                     "--iters", 3, "--no-peak", "--json", tmp_path / "r.json", *flags)
        assert proc.returncode == 0, proc.stderr
        [record] = report.records_of(report.load_document(tmp_path / "r.json"))
        assert record.iters == 3


def test_peer_network_takes_turns_with_the_model(tiny_onnx, tmp_path):
    pytest.importorskip("torch")
    proc = bench("--engine", tiny_onnx["uint8_nhwc"], "--backends", "onnxruntime", "--precision", "fp32",
                 "--sizes", "32", "--iters", 3, "--no-peak", "--peer", "johnson2016", "--pipeline",
                 "--json", tmp_path / "r.json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    records = report.records_of(report.load_document(tmp_path / "r.json"))
    by_network = {r.network: r for r in records if r.mode == "model"}
    assert set(by_network) == {"model", "johnson2016"}
    # the peer is a model-only reference: end-to-end rows are the model's own
    assert {r.network for r in records if r.mode == "pipeline"} == {"model"}
    assert by_network["johnson2016"].gmacs_per_frame > 10 * by_network["model"].gmacs_per_frame


def test_torch_baseline_runs_with_openmps_own_wait_policy(tiny_generator, tmp_path):
    """PyTorch eager is measured as users run it: the backend sets OMP_WAIT_POLICY only when asked."""
    pytest.importorskip("torch")
    from stylize_rt.nets.checkpoint import save_generator

    ckpt = save_generator(tmp_path / "ckpt", tiny_generator)
    code = ("import os, sys\nfrom stylize_rt.runtime.backends.torch_backend import TorchBackend\n"
            "TorchBackend(sys.argv[1], warmup=0, **({'omp_wait_policy': sys.argv[2]} if len(sys.argv) > 2 else {}))\n"
            "print(os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_WAIT_POLICY"}
    default = subprocess.run([sys.executable, "-c", code, str(ckpt)], capture_output=True, text=True, env=env)
    passive = subprocess.run([sys.executable, "-c", code, str(ckpt), "PASSIVE"], capture_output=True, text=True,
                             env=env)
    assert default.stdout.strip() == "None", default.stderr
    assert passive.stdout.strip() == "PASSIVE", passive.stderr
