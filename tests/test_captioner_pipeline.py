"""Export -> ONNX Runtime captioner -> `stylize-rt caption`: real graphs, real files, real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from stylize_rt.errors import BadInputError
from stylize_rt.imageio import read_image
from stylize_rt.runtime.captioner import Captioner
from stylize_rt.tokenizer import Tokenizer
from stylize_rt.training.scenes import make_scenes, render_scenes

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

TINY = dict(image_size=32, channels=(8, 16), feature_dim=16, embed_dim=8, hidden_dim=16, attention_dim=8, max_len=12)


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "stylize_rt", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny captioner trained for a few steps on scenes, saved as a checkpoint and exported."""
    from stylize_rt.export.captioner import export_captioner
    from stylize_rt.nets.captioner import Captioner as TorchCaptioner
    from stylize_rt.nets.captioner import CaptionerConfig, caption_loss, save_captioner
    from stylize_rt.training.scenes import scene_dataset
    from stylize_rt.training.train_captioner import CaptionBatches

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    data = scene_dataset(64, seed=0, split="train", size=32)
    tokenizer = Tokenizer.build(data.all_captions())
    torch.manual_seed(0)
    model = TorchCaptioner(CaptionerConfig(vocab_size=len(tokenizer), **TINY))
    batches = CaptionBatches(data, tokenizer, 12, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(10):  # a few steps, so decoding is not one repeated token
        images, tokens, _ = batches.sample(16)
        loss = caption_loss(model(images, tokens), tokens[:, 1:], tokenizer.pad_id)
        opt.zero_grad()
        loss.backward()
        opt.step()
    root = tmp_path_factory.mktemp("captioner")
    ckpt = save_captioner(root / "ckpt", model.eval(), tokenizer)
    out = export_captioner(ckpt, root / "onnx")
    torch.set_num_threads(threads)
    return {"ckpt": ckpt, "onnx": out, "root": root}


@pytest.fixture(scope="module")
def held_out():
    return render_scenes(make_scenes(24, seed=7, split="test"), 32)


def test_export_folder_layout_and_metadata(exported):
    import onnx

    out = exported["onnx"]
    assert sorted(p.name for p in out.iterdir()) == ["captioner.json", "decoder_step.onnx", "encoder.onnx", "tokenizer.json"]
    config = json.loads((out / "captioner.json").read_text())
    assert config["image_size"] == 32 and config["vocab_size"] == len(Tokenizer.load(out / "tokenizer.json"))
    dec = onnx.load(str(out / "decoder_step.onnx"))
    assert [i.name for i in dec.graph.input] == ["token", "hidden", "context", "features", "keys"]
    assert [o.name for o in dec.graph.output] == ["logits", "hidden_out", "context_out", "attention"]
    meta = {p.key: p.value for p in dec.metadata_props}
    assert meta["stylize_rt.kind"] == "captioner" and meta["stylize_rt.part"] == "decoder_step"
    assert not list(exported["root"].glob("*.tmp"))


def test_graphs_pass_the_tensorrt_lint(exported):
    trt_lint = pytest.importorskip("stylize_rt.export.trt_lint")
    for name in ("encoder.onnx", "decoder_step.onnx"):
        report = trt_lint.lint_file(exported["onnx"] / name, run_parser=False)
        assert report.lines()[0].startswith("TensorRT lint: ready"), report.lines()


def test_onnx_stepwise_decode_equals_pytorch_on_held_out_scenes(exported, held_out):
    from stylize_rt.export.captioner import verify_captioner_export
    from stylize_rt.nets.captioner import images_to_tensor, load_captioner

    report = verify_captioner_export(exported["onnx"], exported["ckpt"], images=held_out)
    assert report["token_mismatches"] == 0 and report["encoder_scaled_err"] < 1e-5
    # and independently of the verifier: the runtime's words == PyTorch greedy's words
    model, tokenizer, _ = load_captioner(exported["ckpt"])
    with torch.no_grad():
        rows = model.greedy(images_to_tensor(held_out), tokenizer.bos_id, tokenizer.eos_id).tolist()
    runtime = Captioner(exported["onnx"], constrained=False)  # the graphs' own decode, as PyTorch's greedy
    assert runtime.caption_batch(list(held_out)) == [tokenizer.decode(r) for r in rows]


def test_verifier_catches_a_different_model(exported, held_out, tmp_path):
    from stylize_rt.export.captioner import VerificationError, verify_captioner_export
    from stylize_rt.nets.captioner import load_captioner

    model, tokenizer, _ = load_captioner(exported["ckpt"])
    with torch.no_grad():
        model.out.bias.add_(torch.linspace(0, 3, model.out.bias.numel()))
    with pytest.raises(VerificationError):
        verify_captioner_export(exported["onnx"], (model, tokenizer), images=held_out)


def _sequence_logprob(cap: Captioner, image: np.ndarray, tokens: list[int]) -> float:
    state = cap._encode(image[None])  # noqa: SLF001 - scoring a sequence needs the raw graph outputs
    prev, total = cap.spec.bos_id, 0.0
    for tok in [*tokens, cap.spec.eos_id][: cap.spec.max_len]:
        logits, state = cap._step(np.array([prev]), state)  # noqa: SLF001 - likewise
        logits = logits[0].astype(np.float64)
        total += logits[tok] - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
        prev = tok
    return total


def test_beam_one_is_greedy_and_wider_beams_score_at_least_as_well(exported, held_out):
    cap = Captioner(exported["onnx"])
    images = cap.preprocess(list(held_out[:8]))
    greedy = cap.greedy_tokens(images)
    for i, image in enumerate(images):
        assert cap.beam_tokens(image[None], beam=1) == greedy[i]
        wide = cap.beam_tokens(image[None], beam=4)
        if len(wide) + 1 <= cap.spec.max_len and len(greedy[i]) + 1 <= cap.spec.max_len:
            assert _sequence_logprob(cap, image, wide) >= _sequence_logprob(cap, image, greedy[i]) - 1e-6
    assert cap.caption(held_out[0], beam=1) == cap.tokenizer.decode(greedy[0])


def test_frames_of_any_size_and_bad_frames(exported):
    cap = Captioner(exported["onnx"])
    frame = render_scenes(make_scenes(1, 3, "test"), 97)[0][:, :80]  # odd, non-square
    assert isinstance(cap.caption(frame), str)
    assert isinstance(cap.caption(frame[..., 0]), str)  # gray is accepted
    for bad, match in [(np.zeros((0, 10, 3), np.uint8), "zero-size"), (np.zeros((8, 8, 3), np.float32), "uint8"),
                       (np.zeros((8, 8, 5), np.uint8), "HxWx3")]:
        with pytest.raises(BadInputError, match=match):
            cap.caption(bad)
    with pytest.raises(BadInputError, match="beam"):
        cap.caption(frame, beam=0)


def test_caption_cli_on_a_written_image(exported, tmp_path):
    img = render_scenes(make_scenes(1, 11, "test"), 120)[0]
    path = tmp_path / "scene.png"
    cv2.imwrite(str(path), img[..., ::-1])
    expected = Captioner(exported["onnx"]).caption(read_image(path))
    proc = run_cli("caption", path, "--model", exported["onnx"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected and expected
    beam = run_cli("caption", path, "--model", exported["onnx"], "--beam", "3")
    assert beam.returncode == 0 and beam.stdout.strip()


@pytest.mark.parametrize("kind", ["garbage", "empty", "missing"])
def test_caption_cli_bad_images(exported, tmp_path, kind):
    path = tmp_path / "bad.png"
    if kind == "garbage":
        path.write_bytes(b"\x89PNG not really")
    elif kind == "empty":
        path.write_bytes(b"")
    proc = run_cli("caption", path, "--model", exported["onnx"])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stylize-rt: error:") and "Traceback" not in proc.stderr


def test_vocabulary_mismatch_in_exported_folder(exported, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(exported["onnx"], folder)
    tok = Tokenizer.load(folder / "tokenizer.json")
    Tokenizer([*tok.itos[4:], "zebra"]).save(folder / "tokenizer.json")
    with pytest.raises(BadInputError, match="vocabulary mismatch"):
        Captioner(folder)
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.full((16, 16, 3), 128, np.uint8))
    proc = run_cli("caption", img, "--model", folder)
    assert proc.returncode == 2 and "vocabulary mismatch" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    # same size, two words swapped: caught by the vocabulary hash in captioner.json
    words = tok.itos[4:]
    words[0], words[1] = words[1], words[0]
    Tokenizer(words).save(folder / "tokenizer.json")
    with pytest.raises(BadInputError, match="same size, different words"):
        Captioner(folder)


def test_runtime_captioner_does_not_import_torch():
    code = ("import sys, stylize_rt.runtime.captioner, stylize_rt.runtime.caption_cli, stylize_rt.tokenizer; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
