"""Train, export and ship the embedded default generators (``make models``).

``python -m stylize_rt.recipes.embedded`` trains the default ``styles6`` generator on CPU
(one network, six procedural styles from ``stylize_rt.training.style_images``, conditional
instance norm) from scikit-image's bundled photos, exports it, and writes
``src/stylize_rt/models/styles6/``::

    generator.onnx          uint8 NHWC RGB in/out + style/strength/preserve_color, dynamic batch/height/width
    generator_cpu.onnx      generator.onnx in ONNX Runtime's CPU form (export.cpu_form): what FP32 runs on a CPU
    generator_int8.onnx     the static-INT8 CPU path (calibrated over every style), with its per-style
                            quality floor in its metadata (auto precision takes it only where it passed)
    generator.safetensors   the weights (the checkpoint's)
    config.json             the checkpoint card (generator config, training config, step)
    style.png               the generated style images side by side, for the docs and ``stylize-rt models``
    model.json              the embedded-model card (name, kind, styles, files, exact source command, wall time)

Its INT8 graph passes its quality floor only after the ``qat`` stage (``export.qat``): the trained
weights are fine-tuned against themselves through the INT8 graph's rounding, and the fine-tuned
weights are what ships, as both graphs (the run goes to ``runs/styles6_qat/final``; ``--qat-only``
runs that stage alone on a finished training run).

``--model mosaic`` trains the previous single-style default (random features, Gram loss) the
same way, and also the same recipe without the stability loss into ``runs/`` (not shipped), so
the quality benchmark can show what the stability loss buys against flicker.

Training and shipping are separate steps (``--train-only``, ``--export-only``): the run folder
keeps ``recipe.json`` with the command and wall time, so a re-export keeps the recorded numbers.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from stylize_rt import contract
from stylize_rt.benchmarks.int8_quality import ship_int8
from stylize_rt.contract import CHECKPOINT_CARD as CONFIG_FILE
from stylize_rt.contract import GENERATOR_WEIGHTS as GENERATOR_FILE
from stylize_rt.errors import EXIT_INTERRUPTED, BadInputError, OutputError, run_reporting_errors
from stylize_rt.export.cpu_form import write_cpu_form
from stylize_rt.export.onnx_export import export_checkpoint
from stylize_rt.export.qat import QatConfig, fine_tune_checkpoint
from stylize_rt.fileio import read_json, replace_dir
from stylize_rt.models import MODELS_DIR
from stylize_rt.nets.generator import Generator, GeneratorConfig, count_parameters, estimate_macs
from stylize_rt.training.preview import write_png
from stylize_rt.training.style_images import EMBEDDED_STYLES, builtin_style
from stylize_rt.training.trainer import TrainConfig, Trainer

CONTENT_IMAGES = ("scikit-image bundled photos (astronaut, chelsea, coffee, rocket, immunohistochemistry, "
                  "hubble_deep_field, retina, camera, brick, grass, gravel)")
SUMMARY_FILE = "recipe.json"


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    steps: int
    train: dict
    baseline: bool = False  # also train the recipe without the stability loss (not shipped)
    int8: bool = False  # ship generator_int8.onnx (when it meets its quality floor)
    qat: QatConfig | None = None  # fine-tune for INT8 after training, and ship the fine-tuned weights
    notes: dict = field(default_factory=dict)


COMMON = dict(content="builtin", size=128, batch=4, channels=(16, 32, 32), res_blocks=3, stem_kernel=3,
              stem="unshuffle", padding="reflect", adv="nonsat", lr_g=2e-3, stability=10.0, seed=0,
              device="cpu", preview_every=250, checkpoint_every=250, log_every=10)
RECIPES = {
    # The research recipe "eff_swd60_cw3" (docs/MODELS.md, "Recipe"), trained jointly on six styles.
    # Hatching and pointillism carry fine texture that flickered above 1.5 at stability 10 (research
    # runs: 1.66 / 1.47 on the held-out flower photo); their samples get twice the stability weight.
    "styles6": Recipe(
        name="styles6",
        description="Six procedural styles in one network (conditional instance norm): "
        + ", ".join(EMBEDDED_STYLES) + "; EfficientNet-Lite0 perception with a patch (sliced-Wasserstein) "
        "style loss; live-CPU size, trained with the stability loss against video flicker",
        steps=2000,
        train=dict(COMMON, styles=EMBEDDED_STYLES, multi_style=True, perception="efficientnet",
                   content_weight=3.0, style_weight=3.0, swd_weight=60.0, tv_weight=0.5,
                   style_stability=tuple(2.0 if s in ("hatching", "pointillism") else 1.0 for s in EMBEDDED_STYLES)),
        int8=True,
        qat=QatConfig(),
    ),
    # The previous default (single style, random features, Gram only), kept reproducible.
    "mosaic": Recipe(
        name="mosaic",
        description="Bold Voronoi-mosaic style (generated by stylize_rt.training.style_images), "
        "live-CPU size, trained with the stability loss against video flicker",
        steps=800,
        train=dict(COMMON, styles=("mosaic",), perception="random", swd_weight=0.0, content_weight=2.0),
        baseline=True,
    ),
}
DEFAULT_RECIPE = "styles6"


def train_recipe(recipe: Recipe, out: Path, steps: int, stability: float | None = None, progress: bool = True):
    train = dict(recipe.train, steps=steps, out=str(out), progress=progress)
    if stability is not None:
        train["stability"] = stability
    if (out / "final").is_dir():
        shutil.rmtree(out)  # a fresh run: reproducing means starting from the seed
    return Trainer(TrainConfig(**train)).run()


def export_onnx(checkpoint: Path, onnx_path: Path) -> Path:
    """uint8-NHWC FP32 ONNX via the export stage's verified pipeline (parity against PyTorch,
    TensorRT lint, metadata incl. style names and config hash)."""
    result = export_checkpoint(checkpoint, onnx_path, io_layout="uint8_nhwc", precision="fp32", log=lambda _m: None)
    return result.path


def _style_strip(names: list[str], seed: int) -> np.ndarray:
    tiles = [builtin_style(n, size=512, seed=seed)[::4, ::4] for n in names]  # 128 px previews of the 512 px images
    return np.concatenate(tiles, axis=1) if len(tiles) > 1 else tiles[0]


def ship(recipe: Recipe, checkpoint: Path, summary: dict, log=print) -> Path:
    """Assemble the model folder beside the target, then swap it into place (never half-written)."""
    target = MODELS_DIR / recipe.name
    card = json.loads((checkpoint / CONFIG_FILE).read_text())
    gen_config = GeneratorConfig.from_dict(card["generator"])
    styles = card.get("styles") or [recipe.name]
    tmp = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=recipe.name + ".", suffix=".tmp", dir=target.parent))
        shutil.copyfile(checkpoint / GENERATOR_FILE, tmp / "generator.safetensors")
        shutil.copyfile(checkpoint / CONFIG_FILE, tmp / "config.json")
        export_onnx(checkpoint, tmp / "generator.onnx")
        files = {"onnx": "generator.onnx", "weights": "generator.safetensors", "config": "config.json",
                 "style": "style.png"}
        if len(styles) > 1:  # the control tail and the style tables: what the CPU form makes cheap
            check = write_cpu_form(tmp / "generator.onnx", tmp / contract.CHECKPOINT_ONNX_CPU)
            files["onnx_cpu"] = contract.CHECKPOINT_ONNX_CPU
            log(f"wrote {contract.CHECKPOINT_ONNX_CPU}: within {check['max_levels']} level of generator.onnx "
                f"at {check['changed_fraction']:.1e} of the bytes")
        int8 = None
        if recipe.int8:
            int8 = ship_int8(checkpoint, tmp / "generator.onnx", tmp / contract.CHECKPOINT_ONNX_INT8, log=log)
            files["onnx_int8"] = contract.CHECKPOINT_ONNX_INT8  # auto takes it only where its record passed
        write_png(_style_strip(styles, card["train"]["seed"]), tmp / "style.png")
        model_card = {
            "name": recipe.name,
            "kind": "generator",
            "description": recipe.description,
            "styles": styles,
            "files": files,
            "source": summary["source"],
            "train_wall_seconds": summary["wall_seconds"],
            "train_steps": card["step"],
            "train_steps_per_second": summary["steps_per_second"],
            "train_threads": summary.get("threads"),
            "train_device": "cpu",
            "content_images": CONTENT_IMAGES,
            "held_out_images": "scikit-learn bundled photos (china, flower): never used in training",
            "perception": card.get("perception"),
            "io_layout": "uint8_nhwc",
            "generator": gen_config.to_dict(),
            "parameters": count_parameters(Generator(gen_config)),
            "parameters_per_style": sum(p.numel() for p in Generator(gen_config).norm_parameters()) // gen_config.n_styles,
            "gmac_640x360": round(estimate_macs(gen_config, 360, 640) / 1e9, 3),
        }
        if "qat" in card:  # the shipped weights are the INT8 fine-tune of the trained ones
            model_card["qat"] = card["qat"]
        if int8 is not None:
            model_card["int8_quality"] = int8
        (tmp / "model.json").write_text(json.dumps(model_card, indent=2) + "\n")
        # temp files are created owner-only; installed package data must be world-readable
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
        return replace_dir(tmp, target)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def qat_checkpoint(recipe: Recipe, runs: Path) -> Path:
    return runs / f"{recipe.name}_qat" / "final"


def run_qat(recipe: Recipe, runs: Path, source: str, progress: bool = True) -> Path:
    """The recipe's ``qat`` stage: fine-tune the finished run's weights for INT8 (``export.qat``)."""
    assert recipe.qat is not None
    return fine_tune_checkpoint(runs / recipe.name / "final", qat_checkpoint(recipe, runs), recipe.qat,
                                progress=progress, source=source)


def _finished_run(recipe: Recipe, runs: Path, flag: str) -> dict:
    run = runs / recipe.name
    if not (run / "final").is_dir() or not (run / SUMMARY_FILE).is_file():
        raise BadInputError(f"{flag} needs a finished run in {run} (with {SUMMARY_FILE}); train it first")
    return read_json(run / SUMMARY_FILE, "recipe summary")


def _export_only(recipe: Recipe, runs: Path) -> int:
    summary = _finished_run(recipe, runs, "--export-only")
    checkpoint = runs / recipe.name / "final"
    if recipe.qat is not None:
        checkpoint = qat_checkpoint(recipe, runs)
        if not checkpoint.is_dir():
            raise BadInputError(f"--export-only ships {recipe.name}'s fine-tuned weights from {checkpoint}; "
                                "run --qat-only first")
    target = ship(recipe, checkpoint, summary)
    print(f"shipped {target}")
    if recipe.baseline and (runs / f"{recipe.name}_nostab" / "final").is_dir():
        onnx = export_onnx(runs / f"{recipe.name}_nostab" / "final", runs / f"{recipe.name}_nostab" / "generator.onnx")
        print(f"re-exported {onnx}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stylize_rt.recipes.embedded", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=sorted(RECIPES), default=DEFAULT_RECIPE,
                   help=f"which embedded generator (default {DEFAULT_RECIPE})")
    p.add_argument("--steps", type=int, help="training steps (default: the recipe's)")
    p.add_argument("--runs", default="runs", help="where the training runs go (default runs/)")
    p.add_argument("--skip-baseline", action="store_true", help="do not train the no-stability baseline")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0 = torch's default; 1 is fastest on a machine shared with other jobs)")
    p.add_argument("--train-only", action="store_true", help="train (and record the run) but do not ship")
    p.add_argument("--export-only", action="store_true",
                   help="no training: re-export and re-ship the finished run (keeps the recorded source and wall time)")
    p.add_argument("--qat-only", action="store_true",
                   help="no training: run the recipe's INT8 fine-tuning stage on the finished run, then ship")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    kept = [a for a in argv if a not in ("--train-only", "--no-progress")]
    source = " ".join(["python -m stylize_rt.recipes.embedded", *map(shlex.quote, kept)]).strip()
    return run_reporting_errors(lambda: _make(args, Path(args.runs), source))


def _make(args: argparse.Namespace, runs: Path, source: str) -> int:
    recipe = RECIPES[args.model]
    if args.export_only:
        return _export_only(recipe, runs)
    if args.qat_only:
        if recipe.qat is None:
            raise BadInputError(f"the {recipe.name} recipe has no qat stage")
        summary = _finished_run(recipe, runs, "--qat-only")
        checkpoint = run_qat(recipe, runs, source, progress=not args.no_progress)
        print(f"shipped {ship(recipe, checkpoint, summary)}")
        return 0
    steps = args.steps or recipe.steps
    t0 = time.perf_counter()
    result = train_recipe(recipe, runs / recipe.name, steps, progress=not args.no_progress)
    wall = time.perf_counter() - t0
    if result.interrupted:
        print(f"interrupted at step {result.step}; nothing shipped", file=sys.stderr)
        return EXIT_INTERRUPTED
    summary = {"source": source, "wall_seconds": round(wall, 1), "steps_per_second": round(result.steps_per_second, 3),
               "threads": torch.get_num_threads(), "steps": result.step}
    (runs / recipe.name / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"trained {runs / recipe.name} ({result.step} steps, {wall:.0f} s wall, {result.steps_per_second:.2f} steps/s)")
    if not args.train_only:
        checkpoint = runs / recipe.name / "final"
        if recipe.qat is not None:
            checkpoint = run_qat(recipe, runs, source, progress=not args.no_progress)
        print(f"shipped {ship(recipe, checkpoint, summary)}")
    if recipe.baseline and not args.skip_baseline:
        t0 = time.perf_counter()
        base = train_recipe(recipe, runs / f"{recipe.name}_nostab", steps, 0.0, not args.no_progress)
        if base.interrupted:
            return EXIT_INTERRUPTED
        onnx = export_onnx(runs / f"{recipe.name}_nostab" / "final", runs / f"{recipe.name}_nostab" / "generator.onnx")
        print(f"baseline without stability loss: {onnx} ({time.perf_counter() - t0:.0f} s wall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
