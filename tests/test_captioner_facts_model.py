"""A tiny fact captioner end to end: train a few steps, save, export (the shipped classifier copied in),
verify ONNX against PyTorch, lint for TensorRT, caption real photos with the runtime and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from stylize_rt.caption_facts import SLOTS, FactCoder
from stylize_rt.errors import BadInputError
from stylize_rt.models import get_model
from stylize_rt.runtime.captioner import Captioner
from stylize_rt.training.caption_nouns import build_table

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

TINY = dict(feature_dim=16, embed_dim=8, hidden_dim=16, attention_dim=8, max_len=16)


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "stylize_rt", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from stylize_rt.export.captioner import export_captioner
    from stylize_rt.nets.captioner import Captioner as TorchCaptioner
    from stylize_rt.nets.captioner import CaptionerConfig, caption_loss, save_captioner
    from stylize_rt.training.caption_synth import FactBatches, build_tokenizer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    coder = FactCoder(build_table())
    tokenizer = build_tokenizer(coder.table, sentences=2000)
    torch.manual_seed(0)
    model = TorchCaptioner(CaptionerConfig(vocab_size=len(tokenizer), input="facts", fact_tokens=len(coder.vocab),
                                           fact_slots=len(SLOTS), **TINY))
    batches = FactBatches(coder, tokenizer, TINY["max_len"], seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(15):
        ids, tokens, _ = batches.sample(16)
        loss = caption_loss(model(ids, tokens), tokens[:, 1:], tokenizer.pad_id)
        opt.zero_grad()
        loss.backward()
        opt.step()
    root = tmp_path_factory.mktemp("facts")
    ckpt = save_captioner(root / "ckpt", model.eval(), tokenizer, coder=coder)
    out = export_captioner(ckpt, root / "onnx", classifier=get_model("captioner").directory)
    torch.set_num_threads(threads)
    return {"ckpt": ckpt, "onnx": out, "root": root, "coder": coder}


def test_checkpoint_and_export_folder_layout(tiny):
    assert sorted(p.name for p in tiny["ckpt"].iterdir()) == ["captioner.safetensors", "config.json", "nouns.json",
                                                              "tokenizer.json"]
    assert sorted(p.name for p in tiny["onnx"].iterdir()) == [
        "captioner.json", "classifier.npz", "decoder_step.onnx", "encoder.onnx", "fact_encoder.onnx", "nouns.json",
        "tokenizer.json"]
    config = json.loads((tiny["onnx"] / "captioner.json").read_text())
    assert config["input"] == "facts" and config["facts"]["slots"] == list(SLOTS)
    assert config["classifier"]["copied_from"] == str(get_model("captioner").directory)
    assert not list(tiny["root"].glob("*.tmp"))


def test_onnx_decode_equals_pytorch_on_held_out_fact_sets(tiny):
    from stylize_rt.export.captioner import VerificationError, verify_captioner_export
    from stylize_rt.nets.captioner import load_captioner

    report = verify_captioner_export(tiny["onnx"], tiny["ckpt"], scenes=40, seed=3)
    assert report["token_mismatches"] == 0 and report["images"] == 40
    model, tokenizer, _ = load_captioner(tiny["ckpt"])
    with torch.no_grad():
        model.out.bias[len(tokenizer) - 1] += 100.0  # PyTorch now says one word over and over
    with pytest.raises(VerificationError):
        verify_captioner_export(tiny["onnx"], (model, tokenizer, tiny["coder"]), scenes=40)


def test_fact_graphs_pass_the_tensorrt_lint(tiny):
    trt_lint = pytest.importorskip("stylize_rt.export.trt_lint")
    for name in ("fact_encoder.onnx", "decoder_step.onnx"):
        report = trt_lint.lint_file(tiny["onnx"] / name, run_parser=False)
        assert report.lines()[0].startswith("TensorRT lint: ready"), report.lines()


def test_runtime_captions_frames_of_any_size_and_refuses_bad_ones(tiny):
    cap = Captioner(tiny["onnx"], faces=False)
    assert cap.kind == "facts"
    frame = np.random.default_rng(0).integers(0, 255, (97, 61, 3), dtype=np.uint8)
    text, facts = cap.describe(frame)
    assert text and facts is not None and 1 <= len(facts.subjects) <= 3
    assert isinstance(cap.caption(frame[..., 0], beam=3), str)  # gray
    assert cap.caption_batch([frame, frame]) == [text, text]
    for bad, match in [(np.zeros((0, 10, 3), np.uint8), "zero-size"), (np.zeros((8, 8, 3), np.float32), "uint8")]:
        with pytest.raises(BadInputError, match=match):
            cap.caption(bad)
    cap.close()


def test_caption_cli_with_facts_and_sampling(tiny, tmp_path):
    path = tmp_path / "noise.png"
    cv2.imwrite(str(path), np.random.default_rng(1).integers(0, 255, (60, 80, 3), dtype=np.uint8))
    proc = run_cli("caption", path, "--model", tiny["onnx"], "--facts", "--no-faces")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("  facts: ") and "colours" in lines[1]
    a = run_cli("caption", path, "--model", tiny["onnx"], "--sample", "--seed", "5", "--no-faces")
    b = run_cli("caption", path, "--model", tiny["onnx"], "--sample", "--seed", "5", "--no-faces")
    assert a.returncode == 0 and a.stdout == b.stdout and a.stdout.strip()
    bad = run_cli("caption", path, "--model", tiny["onnx"], "--sample", "--beam", "3")
    assert bad.returncode == 2 and "alternatives" in bad.stderr


def test_a_classifier_for_another_noun_table_is_refused(tiny, tmp_path):
    import shutil

    from stylize_rt.caption_facts import NounGroup, NounTable
    from stylize_rt.export.captioner import export_captioner

    other = tmp_path / "other"
    shutil.copytree(tiny["onnx"], other)
    table = tiny["coder"].table
    NounTable([NounGroup("blob", "blobs", "thing"), *table.groups[1:]], table.class_group.tolist(),
              table.class_kind).save(other / "nouns.json")
    with pytest.raises(BadInputError, match="noun table"):
        export_captioner(tiny["ckpt"], tmp_path / "out", classifier=other)
