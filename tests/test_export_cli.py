"""``stylize-rt export`` / ``stylize-rt verify`` as users run them: real subprocesses, real files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from stylize_rt.nets.checkpoint import save_generator


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stylize_rt", *map(str, args)], capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stylize-rt: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, tiny_generator):
    return save_generator(tmp_path_factory.mktemp("cli") / "tiny", tiny_generator, {"train": {"styles": ["mosaic"]}})


def test_export_then_verify(ckpt, tmp_path):
    out = tmp_path / "models" / "gen.onnx"
    result = cli("export", "generator", ckpt, "-o", out)
    assert result.returncode == 0, result.stderr
    for needle in ("onnx.checker", "simplify: onnxslim", "TensorRT lint: ready", "parity PyTorch", "3x31x17", "PSNR", "wrote"):
        assert needle in result.stdout, needle
    assert leftovers(out.parent) == ["gen.onnx"]
    verify = cli("verify", out, "--against", ckpt, "--sizes", "1x16x16,2x23x41")
    assert verify.returncode == 0, verify.stderr
    assert "verified" in verify.stdout and "2x23x41" in verify.stdout and "max|err|" in verify.stdout


@pytest.mark.slow
def test_export_fp16_float_layout(ckpt, tmp_path):
    out = tmp_path / "gen16.onnx"
    result = cli("export", "generator", ckpt, "-o", out, "--precision", "fp16", "--layout", "float32_nchw")
    assert result.returncode == 0, result.stderr
    assert "PyTorch per-layer simulation" in result.stdout and "FP32 nodes (islands)" in result.stdout
    verify = cli("verify", out, "--against", ckpt)
    assert verify.returncode == 0, verify.stderr
    assert "fp16 islands: every InstanceNormalization" in verify.stdout


def test_wrong_kind_checkpoint(ckpt, tmp_path):
    bad = tmp_path / "cap"
    shutil.copytree(ckpt, bad)
    card = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**card, "kind": "captioner"}))
    out = tmp_path / "out"
    out.mkdir()
    assert_one_line_error(cli("export", "generator", bad, "-o", out / "g.onnx"), 2, "captioner checkpoint")
    assert leftovers(out) == []


def test_truncated_weights(ckpt, tmp_path):
    bad = tmp_path / "trunc"
    shutil.copytree(ckpt, bad)
    weights = bad / "generator.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert_one_line_error(cli("export", "generator", bad, "-o", tmp_path / "g.onnx"), 2, "truncated")
    assert not (tmp_path / "g.onnx").exists()


def test_config_weights_mismatch(ckpt, tmp_path):
    bad = tmp_path / "mismatch"
    shutil.copytree(ckpt, bad)
    card = json.loads((bad / "config.json").read_text())
    card["generator"]["channels"] = [4, 8, 16]
    (bad / "config.json").write_text(json.dumps(card))
    assert_one_line_error(cli("export", "generator", bad, "-o", tmp_path / "g.onnx"), 2, "do not match")
    assert not (tmp_path / "g.onnx").exists()


def test_unwritable_output(ckpt, tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where a folder should be")
    assert_one_line_error(cli("export", "generator", ckpt, "-o", blocker / "g.onnx"), 3, "cannot write")
    assert_one_line_error(cli("export", "generator", ckpt, "-o", tmp_path), 3, "is a directory")
    assert leftovers(tmp_path) == ["not_a_dir"]


def test_failed_verification_writes_nothing(ckpt, tmp_path):
    out = tmp_path / "new" / "folders" / "g8.onnx"
    result = cli("export", "generator", ckpt, "-o", out, "--precision", "int8", "--min-psnr", "150")
    assert_one_line_error(result, 1, "does not match PyTorch")
    assert "int8 quality: PSNR" in result.stdout  # the measured loss is still reported
    assert leftovers(tmp_path) == []


def test_verify_bad_inputs(ckpt, tmp_path, tiny_onnx):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a protobuf" * 10)
    assert_one_line_error(cli("verify", junk, "--against", ckpt), 2, "junk.onnx")
    other = tmp_path / "other"
    import torch

    from stylize_rt.nets.generator import Generator, GeneratorConfig

    torch.manual_seed(99)
    save_generator(other, Generator(GeneratorConfig.from_dict({"channels": [4, 8, 8], "res_blocks": 1, "stem_kernel": 3})))
    result = cli("verify", tiny_onnx["float32_nchw"], "--against", other)
    assert_one_line_error(result, 1, "does not match PyTorch")
    assert "FAIL" in result.stdout


@pytest.fixture(scope="module")
def captioner_ckpt(tmp_path_factory):
    pytest.importorskip("stylize_rt.export.captioner")
    import torch

    from stylize_rt.nets.captioner import Captioner, CaptionerConfig, save_captioner
    from stylize_rt.tokenizer import Tokenizer

    tokenizer = Tokenizer.build(["a red circle on grass", "two blue squares near a tree", "a cat on a mat"])
    torch.manual_seed(0)
    config = CaptionerConfig(vocab_size=len(tokenizer), image_size=32, channels=(8, 16), feature_dim=16,
                             embed_dim=8, hidden_dim=16, attention_dim=8, max_len=8)
    return save_captioner(tmp_path_factory.mktemp("cap") / "ckpt", Captioner(config).eval(), tokenizer)


def test_export_and_verify_captioner(captioner_ckpt, ckpt, tmp_path):
    out = tmp_path / "cap"
    result = cli("export", "captioner", captioner_ckpt, "-o", out)
    assert result.returncode == 0, result.stderr
    assert {"encoder.onnx", "decoder_step.onnx", "tokenizer.json"} <= set(leftovers(out))
    assert "PASS" in result.stdout and "held-out images" in result.stdout
    verify = cli("verify", out, "--against", captioner_ckpt)
    assert verify.returncode == 0, verify.stderr
    assert "verified" in verify.stdout
    # A generator checkpoint is not a captioner: one line, exit 2, nothing written.
    assert_one_line_error(cli("export", "captioner", ckpt, "-o", tmp_path / "nope"), 2, "generator checkpoint")
    assert not (tmp_path / "nope").exists()
