"""``stylize-rt run / demo / models`` as real subprocesses: pipes, files, faults and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_runtime_helpers import coded_frame, decode_index, identity_onnx, read_video, write_video

CLI = [sys.executable, "-m", "stylize_rt"]


def like_a_terminal() -> None:
    """Popen ``preexec_fn``: the child starts with Ctrl-C's default action, as from a terminal. A shell
    without job control starts background jobs (``make test &``) with SIGINT ignored, and Python then
    installs no KeyboardInterrupt handler, so the signal tests would test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(extra)
    return env


def run_cli(*args, stdin: bytes | None = None, env=None, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], input=stdin, capture_output=True, timeout=timeout,
                          env=env or _env())


def _error_line(result) -> str:
    lines = [line for line in result.stderr.decode().splitlines() if line.startswith("stylize-rt: error:")]
    assert len(lines) == 1, result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()
    return lines[0]


@pytest.fixture(scope="module")
def identity(tmp_path_factory) -> Path:
    return identity_onnx(tmp_path_factory.mktemp("cli_identity") / "identity.onnx")


def test_raw_stdin_to_raw_stdout_in_order(identity):
    frames = np.stack([coded_frame(i) for i in range(6)])
    result = run_cli("--engine", identity, "--input", "-", "--raw-size", "64x48", "--output", "-",
                     "--batch", "4", stdin=frames.tobytes())
    assert result.returncode == 0, result.stderr.decode()
    out = np.frombuffer(result.stdout, np.uint8).reshape(-1, 48, 64, 3)
    assert np.array_equal(out, frames)  # identity model, no codec: byte-exact, every frame, in order


def test_raw_bgr24_round_trip(identity):
    frames = np.stack([coded_frame(i) for i in range(3)])
    bgr = np.ascontiguousarray(frames[..., ::-1])
    result = run_cli("run", "--engine", identity, "--input", "-", "--raw-size", "64x48", "--pix-fmt", "bgr24",
                     "--output", "-", stdin=bgr.tobytes())
    assert result.returncode == 0
    assert np.array_equal(np.frombuffer(result.stdout, np.uint8).reshape(bgr.shape), bgr)


def test_partial_last_raw_frame_is_bad_input_after_whole_frames(identity):
    frames = np.stack([coded_frame(i) for i in range(3)])
    data = frames.tobytes() + b"\x00" * 1000
    result = run_cli("--engine", identity, "--input", "-", "--raw-size", "64x48", "--output", "-", stdin=data)
    assert result.returncode == 2
    assert "middle of frame 4" in _error_line(result) and "--raw-size" in _error_line(result)
    assert len(result.stdout) == frames.nbytes  # the whole frames still came out


def test_raw_output_to_full_disk_is_output_error(identity):
    frames = np.stack([coded_frame(i) for i in range(200)])
    with open("/dev/full", "wb") as full:
        result = subprocess.run([*CLI, "--engine", str(identity), "--input", "-", "--raw-size", "64x48", "--output", "-"],
                                input=frames.tobytes(), stdout=full, stderr=subprocess.PIPE, timeout=60, env=_env())
    assert result.returncode == 3
    assert "disk full" in _error_line(result)


def test_video_file_to_file_and_stats(identity, tmp_path):
    src = write_video(tmp_path / "in.mp4", 20, fps=15)
    out = tmp_path / "out.mp4"
    result = run_cli("--engine", identity, "--input", src, "--output", out, "--stats", "--batch", "2")
    assert result.returncode == 0, result.stderr.decode()
    assert [decode_index(f) for f in read_video(out)] == list(range(20))
    assert "model" in result.stderr.decode() and "latency" in result.stderr.decode()


def test_truncated_video_exit_2_and_output_playable(identity, tmp_path):
    src = write_video(tmp_path / "in.avi", 60)
    src.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    out = tmp_path / "out.mp4"
    result = run_cli("--engine", identity, "--input", src, "--output", out)
    assert result.returncode == 2
    assert "ended early" in _error_line(result)
    frames = read_video(out)
    assert 5 < len(frames) < 60 and [decode_index(f) for f in frames] == list(range(len(frames)))


def test_unwritable_output_is_exit_3_before_any_work(identity, tmp_path):
    src = write_video(tmp_path / "in.mp4", 5)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_cli("--engine", identity, "--input", src, "--output", blocker / "out.mp4")
    assert result.returncode == 3
    assert "cannot write" in _error_line(result)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--input", "ftp://example.com/x.mp4"], "unsupported URL scheme"),
        (["--camera", "9"], "camera 9 not found"),
        (["--input", "missing.mp4", "--output", "o.mp4"], "input not found"),
        (["--input", "-", "--output", "-"], "needs --raw-size"),
        (["--output", "o.mp4"], "no input"),
        (["--input", "-", "--raw-size", "64by48"], "WIDTHxHEIGHT"),
    ],
)
def test_bad_input_is_one_line_exit_2(identity, tmp_path, args, message):
    result = subprocess.run([*CLI, "--engine", str(identity), *args], capture_output=True, timeout=60, env=_env(),
                            cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr.decode()
    assert message in _error_line(result)


def test_unknown_output_kind_and_image_for_video(identity, tmp_path):
    src = write_video(tmp_path / "in.mp4", 3)
    assert "cannot tell what to write" in _error_line(run_cli("--engine", identity, "--input", src, "--output", tmp_path / "o.xyz"))
    result = run_cli("--engine", identity, "--input", src, "--output", tmp_path / "o.png")
    assert result.returncode == 2 and "one image" in _error_line(result)


def test_window_on_headless_opencv_names_the_package(identity, tmp_path):
    src = write_video(tmp_path / "in.mp4", 3)
    result = run_cli("--engine", identity, "--input", src, env=_env(DISPLAY=":0"))
    from stylize_rt.runtime.window import gui_available

    if gui_available():
        pytest.skip("this OpenCV has a GUI")
    assert result.returncode == 2
    assert "pip install opencv-python" in _error_line(result)
    result = run_cli("--engine", identity, "--input", src)  # no display at all
    assert result.returncode == 2 and "--output" in _error_line(result)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_finalizes_a_playable_video(identity, tmp_path, signum):
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen([*CLI, "--engine", str(identity), "--input", "-", "--raw-size", "64x48", "--output", str(out),
                             "--no-progress", "--stats"], stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(),
                            preexec_fn=like_a_terminal)
    for i in range(12):
        proc.stdin.write(coded_frame(i).tobytes())
    proc.stdin.flush()  # stdin stays open: the run is waiting for more frames, as a live pipe would
    deadline = time.time() + 20
    while not list(tmp_path.glob(".out.*partial.mp4")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let the 12 frames reach the encoder
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=20)
    proc.stdin.close()
    assert proc.returncode == 130, stderr.decode()
    assert "interrupted" in stderr.decode()
    assert "12 written" in stderr.decode()  # --stats is reported on interruption too
    assert [decode_index(f) for f in read_video(out)] == list(range(12))
    assert not list(tmp_path.glob(".out.*"))


def test_demo_on_a_tiny_clip(tiny_onnx, tmp_path):
    out_dir = tmp_path / "demo"
    result = run_cli("demo", "--output-dir", out_dir, "--frames", "8", "--size", "96x64",
                     "--engine", tiny_onnx["uint8_nhwc"], timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    assert "frames/s" in result.stdout.decode()
    assert len(read_video(out_dir / "input.mp4")) == 8
    stylized = read_video(out_dir / "stylized.mp4")
    assert len(stylized) == 8 and stylized[0].shape == (64, 96, 3)
    import cv2

    png = cv2.imread(str(out_dir / "side_by_side.png"))
    assert png.shape[1] == 2 * 96 + 4 and png.shape[0] > 64 * 3


def test_demo_without_embedded_model_says_what_to_do(tmp_path):
    from stylize_rt.errors import BadInputError
    from stylize_rt.models import get_model

    try:
        get_model("mosaic").path("onnx")
        pytest.skip("the embedded default is installed")
    except (BadInputError, KeyError):
        pass
    result = run_cli("demo", "--output-dir", tmp_path, "--frames", "2")
    assert result.returncode == 2 and "--engine" in _error_line(result)


def test_models_json_and_table():
    result = run_cli("models", "--json")
    assert result.returncode == 0
    models = json.loads(result.stdout)
    assert isinstance(models, list)
    for model in models:
        assert {"name", "kind", "files", "source"} <= set(model)
        for entry in model["files"].values():
            assert Path(entry["path"]).is_file() and entry["bytes"] == Path(entry["path"]).stat().st_size
    table = run_cli("models")
    assert table.returncode == 0
    for model in models:
        assert model["name"] in table.stdout.decode() and model["source"] in table.stdout.decode()


def test_run_and_demo_never_import_torch(identity, tmp_path):
    src = write_video(tmp_path / "in.mp4", 3)
    code = (
        "import sys\nfrom stylize_rt.cli import main\n"
        f"rc = main(['--engine', {str(identity)!r}, '--input', {str(src)!r}, '--output', {str(tmp_path / 'o.mp4')!r}, '--no-progress'])\n"
        "assert rc == 0\n"
        f"rc = main(['demo', '--engine', {str(identity)!r}, '--output-dir', {str(tmp_path / 'demo')!r}, "
        "'--frames', '4', '--size', '64x48', '--no-progress'])\n"
        "assert rc == 0\nassert 'torch' not in sys.modules, 'the runtime imported torch'\n"
        "assert 'onnx' not in sys.modules, 'the runtime imported onnx (not a runtime dependency)'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=_env(), timeout=60)


@pytest.fixture(scope="module")
def tiny_captioner(tmp_path_factory) -> Path:
    """A real exported captioner folder (random weights: the wiring is under test, not the words)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from stylize_rt.export.captioner import export_captioner
    from stylize_rt.nets.captioner import Captioner, CaptionerConfig, save_captioner
    from stylize_rt.tokenizer import Tokenizer

    tokenizer = Tokenizer.build(["a red ball on the grass", "a blue sky over the sea"])
    torch.manual_seed(0)
    config = CaptionerConfig(vocab_size=len(tokenizer), image_size=32, channels=(8, 16), feature_dim=16,
                             embed_dim=8, hidden_dim=16, attention_dim=8, max_len=12)
    root = tmp_path_factory.mktemp("captioner")
    checkpoint = save_captioner(root / "ckpt", Captioner(config).eval(), tokenizer)
    return export_captioner(checkpoint, root / "onnx")


def test_caption_engine_overlays_and_logs(identity, tiny_captioner, tmp_path):
    src = write_video(tmp_path / "in.mp4", 30, width=256, height=192)
    out, log = tmp_path / "out.mp4", tmp_path / "captions.jsonl"
    result = run_cli("--engine", identity, "--input", src, "--output", out, "--caption-engine", tiny_captioner,
                     "--caption-interval", "0", "--caption-log", log)
    assert result.returncode == 0, result.stderr.decode()
    frames = read_video(out)
    assert len(frames) == 30
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records and all(r["text"] and r["age_s"] >= 0 for r in records)
    # The caption band covers the bottom of later frames; the stripes at the top are untouched.
    assert [decode_index(f) for f in frames] == list(range(30))
    assert np.abs(frames[-1][-8:].astype(int) - coded_frame(29, 256, 192)[-8:].astype(int)).max() > 60


def test_missing_caption_folder_is_bad_input(identity, tmp_path):
    src = write_video(tmp_path / "in.mp4", 3)
    result = run_cli("--engine", identity, "--input", src, "--output", tmp_path / "o.mp4",
                     "--caption-engine", tmp_path / "nope")
    assert result.returncode == 2 and "captioner folder not found" in _error_line(result)


def test_image_to_image(identity, tmp_path):
    import cv2

    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), coded_frame(77)[..., ::-1])
    out = tmp_path / "styled" / "photo.png"
    result = run_cli("--engine", identity, "--input", src, "--output", out)
    assert result.returncode == 0, result.stderr.decode()
    assert np.array_equal(cv2.imread(str(out))[..., ::-1], coded_frame(77))
    result = run_cli("--engine", identity, "--input", tmp_path / "nope.png", "--output", out)
    assert result.returncode == 2 and "input not found" in _error_line(result)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really")
    result = run_cli("--engine", identity, "--input", tmp_path / "bad.jpg", "--output", out)
    assert result.returncode == 2 and "cannot read image" in _error_line(result)


def test_models_table_and_json_from_a_card(tmp_path, monkeypatch, capsys):
    import argparse

    import stylize_rt.models as models
    from stylize_rt.runtime.cli import models_command

    folder = tmp_path / models.DEFAULT_GENERATOR
    folder.mkdir()
    (folder / "generator.onnx").write_bytes(b"x" * 3000)
    card = {"name": models.DEFAULT_GENERATOR, "kind": "generator", "description": "a test card",
            "files": {"onnx": "generator.onnx", "weights": "weights.safetensors"}, "styles": ["mosaic", "waves"],
            "source": "stylize-rt train generator --style mosaic.png", "wall_time_s": 600}
    (folder / "model.json").write_text(json.dumps(card))
    monkeypatch.setattr(models, "MODELS_DIR", tmp_path)
    assert models_command(argparse.Namespace(json=False)) == 0
    table = capsys.readouterr().out
    assert f"{models.DEFAULT_GENERATOR}  (default)  [generator]" in table and "2.9 KB" in table and "missing" in table
    assert "styles: mosaic, waves" in table
    assert "source: stylize-rt train generator --style mosaic.png" in table
    assert models_command(argparse.Namespace(json=True)) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["files"]["onnx"]["bytes"] == 3000 and data[0]["wall_time_s"] == 600
    (folder / "model.json").write_text("{ not json")
    from stylize_rt.errors import BadInputError

    with pytest.raises(BadInputError, match="corrupt model card"):
        models_command(argparse.Namespace(json=True))


def test_embedded_default_runs_without_engine():
    from stylize_rt.errors import BadInputError
    from stylize_rt.runtime.session import default_model_path

    try:
        default_model_path()
    except BadInputError:
        pytest.skip("the embedded default is not installed in this checkout")
    frames = np.stack([coded_frame(i) for i in range(3)])
    result = run_cli("--input", "-", "--raw-size", "64x48", "--output", "-", stdin=frames.tobytes())
    assert result.returncode == 0, result.stderr.decode()
    out = np.frombuffer(result.stdout, np.uint8).reshape(frames.shape)
    assert np.abs(out.astype(int) - frames.astype(int)).mean() > 5  # stylized, same size, every frame
    # no --engine runs the graph that --engine styles6 runs (auto: the INT8 one on CPU where it passed)
    from stylize_rt.runtime.backends.registry import folder_graph

    picked = folder_graph(default_model_path(), "auto", "auto").name
    assert f"embedded default (styles6) ({picked}," in result.stderr.decode(), result.stderr.decode()
