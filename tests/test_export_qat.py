"""Quantization-aware fine-tuning (export.qat): the fake-quant copy rounds as ONNX Runtime's INT8 graph
does, the fine-tuned checkpoint keeps plain float weights, and the recipe's qat stage ships them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stylize_rt.export import qat  # noqa: E402
from stylize_rt.nets.checkpoint import load_generator, save_generator  # noqa: E402
from stylize_rt.nets.generator import Generator, GeneratorConfig  # noqa: E402

TINY_TWO_STYLES = {"channels": [4, 8, 8], "res_blocks": 1, "stem_kernel": 3, "stem": "unshuffle",
                   "padding": "reflect", "n_styles": 2}
STYLES = ("mosaic", "waves")


def _tiny_checkpoint(path, seed=0):
    torch.manual_seed(seed)
    generator = Generator(GeneratorConfig.from_dict(TINY_TWO_STYLES)).eval()
    return save_generator(path, generator, {"step": 5, "styles": list(STYLES), "train": {"seed": 0}})


def test_fake_quant_copy_reproduces_onnxruntime_int8_error_on_the_shipped_model():
    """Simulated INT8 error against FP32 is within 1.5 dB of ORT's own INT8 graph (hatching, flower photo)."""
    from stylize_rt.export.frames import graph_feeds
    from stylize_rt.export.int8 import calibration_set
    from stylize_rt.export.parity import ort_session, psnr
    from stylize_rt.models import DEFAULT_GENERATOR, MODELS_DIR
    from stylize_rt.training.data import held_out_photos

    folder = MODELS_DIR / DEFAULT_GENERATOR
    if not (folder / "generator_int8.onnx").is_file():
        pytest.skip("embedded default not built in this checkout (make models)")
    torch.set_num_threads(1)
    generator, card = load_generator(folder)
    style = card["styles"].index("hatching")
    simulated = qat.fake_quant_copy(generator, qat.activation_scales(generator, calibration_set(None)[0]))
    photo = held_out_photos()["flower"]
    feed = graph_feeds(photo[None], "uint8_nhwc", generator.config.n_styles, style=style)
    want = ort_session(folder / "generator.onnx").run(None, feed)[0]
    got = ort_session(folder / "generator_int8.onnx").run(None, feed)[0]
    with torch.no_grad():
        one_hot = torch.nn.functional.one_hot(torch.tensor([style]), generator.config.n_styles).float()
        sim = simulated.forward_nhwc(torch.from_numpy(photo[None].copy()).float() / 255, one_hot)
    sim = (sim.clamp(0, 1) * 255).round().byte().numpy()
    ort_db, sim_db = psnr(want, got, 255.0), psnr(want, sim, 255.0)
    assert sim_db < 45, "the fake-quant copy does not round at all"
    assert abs(sim_db - ort_db) < 1.5, (sim_db, ort_db)


def test_plain_copy_drops_the_fake_quantization_and_keeps_the_float_weights(tiny_generator, frames):
    scales = qat.activation_scales(tiny_generator, frames)
    assert len(scales) == sum(isinstance(m, torch.nn.Conv2d) for m in tiny_generator.modules())
    student = qat.fake_quant_copy(tiny_generator, scales)
    plain = qat.plain_copy(student, tiny_generator)
    assert plain.state_dict().keys() == tiny_generator.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), tiny_generator.state_dict().values()))
    x = torch.from_numpy(frames).float() / 255
    with torch.no_grad():
        assert torch.equal(plain.forward_nhwc(x), tiny_generator.forward_nhwc(x))
        assert not torch.equal(student.forward_nhwc(x), tiny_generator.forward_nhwc(x))


def test_fine_tune_moves_the_weights_and_lowers_the_loss_it_trains(tmp_path):
    teacher, _ = load_generator(_tiny_checkpoint(tmp_path / "teacher"))
    config = qat.QatConfig(steps=30, pool=8, crop=(32, 48), lr=2e-3)
    logs = []
    result = qat.fine_tune(teacher, config, progress=False, log=logs.append)
    assert result.steps == 30 and np.isfinite(result.final_loss) and "30 steps" in logs[0]
    changed = [not torch.equal(a, b) for a, b in zip(result.generator.state_dict().values(),
                                                     teacher.state_dict().values())]
    assert any(changed)
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in result.generator.modules())


def test_cli_writes_a_fine_tuned_checkpoint_and_refuses_to_overwrite_or_repeat(tmp_path):
    teacher = _tiny_checkpoint(tmp_path / "teacher")
    cmd = [sys.executable, "-m", "stylize_rt.export.qat"]
    done = subprocess.run([*cmd, str(teacher), str(tmp_path / "out"), "--steps", "2", "--threads", "1",
                           "--no-progress"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    card = json.loads((tmp_path / "out" / "config.json").read_text())
    assert card["qat"]["steps"] == 2 and card["qat"]["teacher_step"] == 5 and card["styles"] == list(STYLES)
    assert card["qat"]["source"].startswith("python -m stylize_rt.export.qat") and card["qat"]["threads"] == 1
    load_generator(tmp_path / "out")
    same = subprocess.run([*cmd, str(teacher), str(teacher)], capture_output=True, text=True, timeout=120)
    again = subprocess.run([*cmd, str(tmp_path / "out"), str(tmp_path / "again")], capture_output=True, text=True,
                           timeout=120)
    for proc, words in ((same, "overwrite its teacher"), (again, "already quantization-aware")):
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "again").exists()


def test_recipe_qat_stage_ships_the_fine_tuned_weights_with_its_record(tmp_path, monkeypatch):
    from stylize_rt.recipes import embedded

    recipe = embedded.Recipe(name="tinyqat", description="test", steps=1, train={},
                             qat=qat.QatConfig(steps=2, pool=2, crop=(32, 48)))
    monkeypatch.setitem(embedded.RECIPES, "tinyqat", recipe)
    monkeypatch.setattr(embedded, "MODELS_DIR", tmp_path / "models")
    (tmp_path / "models").mkdir()
    runs = tmp_path / "runs"
    args = ["--model", "tinyqat", "--runs", str(runs), "--no-progress", "--threads", "1"]
    assert embedded.main([*args, "--qat-only"]) == 2  # no finished run yet: a one-line error
    _tiny_checkpoint(runs / "tinyqat" / "final")
    (runs / "tinyqat" / embedded.SUMMARY_FILE).write_text(json.dumps(
        {"source": "python -m stylize_rt.recipes.embedded --model tinyqat", "wall_seconds": 1.0,
         "steps_per_second": 1.0, "threads": 1, "steps": 5}))
    assert embedded.main([*args, "--export-only"]) == 2  # the fine-tuned weights do not exist yet
    assert embedded.main([*args, "--qat-only"]) == 0
    shipped = tmp_path / "models" / "tinyqat"
    model = json.loads((shipped / "model.json").read_text())
    assert model["source"] == "python -m stylize_rt.recipes.embedded --model tinyqat"
    assert model["qat"]["steps"] == 2 and "--qat-only" in model["qat"]["source"]
    fine_tuned, _ = load_generator(runs / "tinyqat_qat" / "final")
    in_package, _ = load_generator(shipped)
    assert all(torch.equal(a, b) for a, b in zip(fine_tuned.state_dict().values(), in_package.state_dict().values()))
    assert embedded.main([*args, "--export-only"]) == 0  # re-ships the same fine-tuned run
