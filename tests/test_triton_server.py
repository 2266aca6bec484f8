"""Frames through a real Triton Inference Server on loopback, gRPC and HTTP.

One server for the module (tests/triton_server.py starts ``tritonserver`` from the
nvidia-pytriton wheel on 127.0.0.1, bounded start and stop) on a repository written by
``export-triton --backend python``: the embedded generator (batched, dynamic batching), the
captioner (encoder + decoder graphs + the loop model) and one model whose graph is corrupt,
for the "not ready" case. Outputs are compared with the local ONNX Runtime backend.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import sysconfig
import threading

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc", reason="the Triton tests need tritonclient (pip install 'stylize-rt[serve]')")

import triton_server

from stylize_rt.cli import main
from stylize_rt.errors import BadInputError, StylizeError
from stylize_rt.export.triton import TritonExportConfig, export_triton
from stylize_rt.imageio import read_image, write_image
from stylize_rt.runtime.backends.registry import open_backend
from stylize_rt.runtime.captioner import Captioner
from stylize_rt.runtime.session import open_stylizer
from stylize_rt.runtime.stylizer import Stylizer
from stylize_rt.runtime.triton_python import decode_captions

pytestmark = pytest.mark.slow
MAX_BATCH = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reason = triton_server.unavailable()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("triton")
    repo = root / "repo"
    site = (sysconfig.get_paths()["purelib"],)  # the config names where stylize-rt lives for the server's Python
    export_triton("mosaic", repo, TritonExportConfig(backend="python", max_batch=MAX_BATCH, dynamic_batching=True,
                                                     queue_delay_us=50_000, threads=1, site_packages=site))
    export_triton("captioner", repo, TritonExportConfig(backend="python", threads=1, site_packages=site))
    export_triton("mosaic", repo, TritonExportConfig(name="broken", backend="python", site_packages=site))
    (repo / "broken/1/model.onnx").write_bytes(b"not an onnx graph")
    with triton_server.tritonserver(repo, root / "server") as running:
        yield running


@pytest.fixture(scope="module")
def local():
    stylizer = open_stylizer("mosaic")  # the exported embedded generator's ONNX file on ONNX Runtime CPU
    yield stylizer
    stylizer.close()


def frames(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("shared_memory", ["on", "off"])
def test_frames_match_local_onnxruntime_exactly(server, local, protocol, shared_memory):
    stylizer = Stylizer(open_backend(server.url("mosaic", protocol), shared_memory=shared_memory))
    try:
        assert stylizer.convention.source == "metadata" and stylizer.layout == "uint8_nhwc"
        assert stylizer.backend.metadata["stylize_rt.style"] == "mosaic"
        for batch in (frames(1, 64, 64), frames(MAX_BATCH, 37, 53, seed=1)):
            np.testing.assert_array_equal(stylizer.stylize_batch(batch), local.stylize_batch(batch))
    finally:
        stylizer.close()


def test_shared_memory_regions_are_registered_while_open(server, local):
    """On loopback the default (auto) sends frames through registered POSIX shared memory."""
    import tritonclient.grpc as grpc

    client = grpc.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    backend = open_backend(server.url("mosaic"), warmup=0)
    try:
        x = frames(2, 40, 56, seed=4)
        np.testing.assert_array_equal(backend.infer({"input": x})["output"], local.backend.infer({"input": x})["output"])
        regions = client.get_system_shared_memory_status(as_json=True).get("regions", {})
        assert len(regions) == 2 and all(name.startswith("stylize_rt_") for name in regions)
        bigger = frames(1, 96, 128, seed=5)  # regions grow when a call needs more
        np.testing.assert_array_equal(backend.infer({"input": bigger})["output"],
                                      local.backend.infer({"input": bigger})["output"])
    finally:
        backend.close()
    assert not client.get_system_shared_memory_status(as_json=True).get("regions")


def test_concurrent_requests_are_batched_by_the_server(server, local):
    """Dynamic batching: single-frame requests from several threads run as fewer model calls."""
    import tritonclient.grpc as grpc

    client = grpc.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    before = client.get_inference_statistics("mosaic", as_json=True)["model_stats"][0]
    inputs = [frames(1, 32, 48, seed=s) for s in range(MAX_BATCH)]
    results: dict[int, np.ndarray] = {}
    backends = [open_backend(server.url("mosaic"), warmup=0) for _ in inputs]
    barrier = threading.Barrier(len(inputs))

    def send(i: int) -> None:
        barrier.wait(timeout=30)
        results[i] = backends[i].infer({"input": inputs[i]})["output"]

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for backend in backends:
        backend.close()
    after = client.get_inference_statistics("mosaic", as_json=True)["model_stats"][0]
    inferences = int(after["inference_count"]) - int(before.get("inference_count", 0))
    executions = int(after["execution_count"]) - int(before.get("execution_count", 0))
    assert inferences == len(inputs)
    assert executions < inferences, "the dynamic batcher merged none of the concurrent requests"
    for i, x in enumerate(inputs):
        np.testing.assert_array_equal(results[i], local.backend.infer({"input": x})["output"])


def test_captions_match_the_local_decode(server):
    backend = open_backend(server.url("captioner"), warmup=0)
    captioner = Captioner()
    try:
        images = frames(3, 80, 96, seed=2)
        rows = backend.infer({"image": images})["caption"]
        assert decode_captions(rows) == captioner.caption_batch(list(images))
    finally:
        backend.close()
        captioner.close()


def test_run_command_against_the_server(server, local, tmp_path):
    image = frames(1, 48, 64, seed=3)[0]
    write_image(tmp_path / "in.png", image)
    result = subprocess.run(
        [sys.executable, "-m", "stylize_rt", "run", "--engine", server.url("mosaic", "http"), "--input",
         str(tmp_path / "in.png"), "--output", str(tmp_path / "out.png"), "--no-display", "--no-progress"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(read_image(tmp_path / "out.png"), local(image))


def test_bench_reports_latency_including_transport(server, tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "stylize_rt", "bench", "--engine", server.url("mosaic"), "--sizes", "64",
         "--iters", "5", "--warmup", "1", "--json", str(out)], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr + result.stdout
    records = json.loads(out.read_text())["records"]
    assert [(r["backend"], r["device"], r["mode"]) for r in records] == [("triton", "server", "model")]
    assert records[0]["iters"] == 5 and records[0]["p50_ms"] > 0
    assert records[0]["model"] == server.url("mosaic")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.mark.parametrize("scheme", ["triton", "triton+http"])
def test_server_down_is_one_line(scheme):
    with pytest.raises(StylizeError, match=r"cannot reach a Triton server at 127\.0\.0\.1:\d+ .*is tritonserver running"):
        open_backend(f"{scheme}://127.0.0.1:{_closed_port()}/mosaic", connect_timeout_s=5)


def test_unknown_and_unready_models(server):
    with pytest.raises(BadInputError, match=r"no model 'nosuch' on the Triton server .*\(models: .*mosaic"):
        open_backend(server.url("nosuch"))
    with pytest.raises(StylizeError, match="model 'broken' is not ready .*UNAVAILABLE"):
        open_backend(server.url("broken", "http"))


def test_refused_shape_and_timeout(server):
    backend = open_backend(server.url("mosaic"), warmup=0, timeout_s=30)
    try:
        with pytest.raises(BadInputError, match=rf"refused the request: .*batch-size must be <= {MAX_BATCH}.*--batch"):
            backend.infer({"input": frames(MAX_BATCH + 1, 16, 16)})
    finally:
        backend.close()
    for protocol in ("grpc", "http"):
        backend = open_backend(server.url("mosaic", protocol), warmup=0, timeout_s=0.001)
        try:
            with pytest.raises(StylizeError, match=r"request timed out after 0\.001 s"):
                backend.infer({"input": frames(1, 720, 1280)})
        finally:
            backend.close()


def test_cli_exit_codes_for_server_faults(server, tmp_path, capsys):
    image = tmp_path / "in.png"
    write_image(image, frames(1, 32, 32)[0])
    args = ["run", "--input", str(image), "--output", str(tmp_path / "o.png"), "--no-display", "--no-progress"]
    assert main([*args, "--engine", server.url("nosuch")]) == 2
    assert main([*args, "--engine", f"triton://127.0.0.1:{_closed_port()}/mosaic"]) == 1
    assert main([*args, "--engine", server.url("mosaic"), "--fp16"]) == 2
    err = capsys.readouterr().err
    assert "no model 'nosuch'" in err and "cannot reach" in err and "precision is fixed by the server" in err
    assert "Traceback" not in err
