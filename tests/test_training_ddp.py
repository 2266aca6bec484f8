"""Data-parallel generator training: ``torchrun --nproc-per-node 2 -m stylize_rt.training generator``.

Two CPU processes (gloo) against one, at the same global batch: the loss curves match, the
checkpoints have the single-process format, rank 0 alone writes the run's files, and a
checkpoint resumes at the other world size onto the same curve. torchrun's store and gloo
bind their host's addresses, so the runs go in a loopback-only network namespace (tests/netns.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors = pytest.importorskip("safetensors.numpy")

import netns  # noqa: E402 - tests/ helper, after the skips

from stylize_rt.imageio import write_image  # noqa: E402
from stylize_rt.nets.checkpoint import load_generator  # noqa: E402

pytestmark = pytest.mark.slow
STEPS = 4
TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.fixture(scope="module")
def content(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp_content")
    rng = np.random.default_rng(0)
    for i in range(6):
        yy, xx = np.mgrid[0:72, 0:88]
        image = np.stack([xx * 3, yy * 3, (xx * yy + 40 * i) % 256], -1)
        write_image(folder / f"p{i}.png", np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8))
    return folder


def _train(content, out, processes: int, steps: int = STEPS, resume: Path | None = None):
    args = ["generator", "--out", str(out), "--steps", str(steps), "--no-progress", "--log-every", "1",
            "--preview-every", "0", "--checkpoint-every", "2"]
    if resume is None:
        args += ["--content", str(content), "--style", "mosaic", "--batch", "4", "--size", "32",
                 "--channels", "4,8,8", "--res-blocks", "1"]
    else:
        args += ["--resume", str(resume)]
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    if processes == 1:
        command = [sys.executable, "-m", "stylize_rt.training", *args]
    else:
        prefix, reason = netns.loopback_only_prefix()
        if prefix is None:
            pytest.skip(reason)
        command = [*prefix, str(TORCHRUN), "--nproc-per-node", str(processes), "--master-addr", "127.0.0.1",
                   "--master-port", "29500", "-m", "stylize_rt.training", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _curve(run) -> dict[int, dict[str, float]]:
    lines = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]
    return {r["step"]: {k: v for k, v in r.items() if k not in ("wall_s", "steps_per_s")} for r in lines}


def _assert_same_curve(a: dict, b: dict, steps) -> None:
    for step in steps:
        assert a[step].keys() == b[step].keys()
        for key, value in a[step].items():
            assert b[step][key] == pytest.approx(value, rel=1e-4, abs=1e-6), f"step {step} {key}"


@pytest.fixture(scope="module")
def runs(content, tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp_runs")
    _train(content, root / "single", 1)
    ddp = _train(content, root / "ddp", 2)
    return root, ddp


def test_two_processes_follow_the_single_process_loss_curve(runs):
    root, ddp = runs
    single, double = _curve(root / "single"), _curve(root / "ddp")
    assert sorted(double) == list(range(1, STEPS + 1)), "rank 0 alone logs, once per step"
    _assert_same_curve(single, double, range(1, STEPS + 1))
    assert "2 processes, 2 crops each" in ddp.stderr


def test_checkpoints_have_the_single_process_format(runs):
    root, _ = runs
    for name in ("final", "checkpoints/step_0000002"):
        a, b = root / "single" / name, root / "ddp" / name
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        card_a, card_b = json.loads((a / "config.json").read_text()), json.loads((b / "config.json").read_text())
        assert card_a.keys() == card_b.keys() and card_a["step"] == card_b["step"]
        assert {k: v for k, v in card_a["train"].items() if k != "out"} == \
            {k: v for k, v in card_b["train"].items() if k != "out"}
        for weights in ("generator.safetensors", "discriminator.safetensors"):
            wa, wb = safetensors.load_file(a / weights), safetensors.load_file(b / weights)
            assert wa.keys() == wb.keys()
            for key in wa:
                assert wa[key].shape == wb[key].shape and wa[key].dtype == wb[key].dtype
        # The same function: compared by output, since Adam moves a parameter whose gradient is ~0
        # (a conv bias that instance norm cancels) by +-lr on float noise alone, differently per run.
        x = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            ya, yb = load_generator(a)[0].eval()(x), load_generator(b)[0].eval()(x)
        np.testing.assert_allclose(ya.numpy(), yb.numpy(), atol=1e-4)
    assert (root / "ddp" / "previews" / "final.png").is_file()
    assert sorted(p.name for p in (root / "ddp").iterdir()) == ["checkpoints", "final", "previews", "train.jsonl"]


def test_resume_across_world_sizes(runs, content):
    root, _ = runs
    reference = _curve(root / "single")
    _train(content, root / "ddp_then_single", 1, resume=root / "ddp" / "checkpoints" / "step_0000002")
    _train(content, root / "single_then_ddp", 2, resume=root / "single" / "checkpoints" / "step_0000002")
    for run in ("ddp_then_single", "single_then_ddp"):
        resumed = _curve(root / run)
        assert sorted(resumed) == [3, 4]
        _assert_same_curve(reference, resumed, (3, 4))


def test_a_global_batch_that_does_not_split_is_refused(content, tmp_path):
    prefix, reason = netns.loopback_only_prefix()
    if prefix is None:
        pytest.skip(reason)
    command = [*prefix, str(TORCHRUN), "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", "29500",
               "-m", "stylize_rt.training", "generator", "--content", str(content), "--batch", "3", "--size", "32",
               "--steps", "1", "--out", str(tmp_path / "run"), "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo"))
    assert result.returncode != 0
    assert "--batch 3 (the global batch) does not split evenly over 2 processes" in result.stderr
