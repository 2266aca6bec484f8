"""``stylize-rt train style NEW.png --to MODEL_DIR --name NAME``: add a style to a multi-style model.

(In the benchmarks stage because it trains, exports and then measures the new style: the
stage that may use all three.)

Conditional instance norm keeps every convolution shared; a style is only its rows of the norm
layers' scale and shift (640 numbers in the default network). Adding one (Dumoulin et al. 2017,
section 4.3) appends a row to every conditional norm, initialized to the mean of the existing
styles, and trains only those rows on the new style image, every shared conv and every other
style's rows frozen: the existing styles' outputs stay bit-identical. Then the model folder is
rebuilt beside itself (weights, card, verified ONNX, and the INT8 graph with its quality record
where the folder ships one) and swapped into place, so it is never half-written; a duplicate
name is refused before any work. The new style's quality numbers (held-out edge correlation and
flicker, ``benchmarks.quality``) are printed and recorded in the card.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path

import torch

from stylize_rt import contract
from stylize_rt.benchmarks.int8_quality import ship_int8
from stylize_rt.benchmarks.quality import EDGE_TARGET, FLICKER_TARGET, edge_correlation, flicker_ratio, noisy_frames
from stylize_rt.errors import BadInputError, OutputError
from stylize_rt.export.cpu_form import write_cpu_form
from stylize_rt.export.frames import graph_feeds
from stylize_rt.export.onnx_export import export_checkpoint
from stylize_rt.export.parity import ort_session
from stylize_rt.fileio import read_json, replace_dir
from stylize_rt.nets.checkpoint import load_generator, save_weights
from stylize_rt.training.data import held_out_photos, load_style
from stylize_rt.training.preview import write_png
from stylize_rt.training.trainer import TrainConfig, Trainer

# Names go into --mix "a=0.5,b=0.5" and --style-timeline "a@0,b@4": none of those separators.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _check_target(folder: Path, name: str) -> tuple[dict, list[str]]:
    card_path = folder / contract.CHECKPOINT_CARD
    if not folder.is_dir() or not card_path.is_file() or not (folder / contract.GENERATOR_WEIGHTS).is_file():
        raise BadInputError(f"--to {folder}: not a model folder ({contract.CHECKPOINT_CARD} and "
                            f"{contract.GENERATOR_WEIGHTS} expected)")
    card = read_json(card_path, "checkpoint card")
    n_styles = int((card.get("generator") or {}).get("n_styles", 1))
    styles = card.get("styles") or []
    if n_styles < 2 or len(styles) != n_styles:
        raise BadInputError(f"--to {folder}: a single-style model; styles can be added to multi-style models "
                            "(train one with stylize-rt train generator --multi-style)")
    if not NAME_PATTERN.match(name):
        raise BadInputError(f"--name {name!r}: use letters, digits, '_', '.', '-' (it goes into --mix and --style-timeline)")
    if name in styles:
        raise BadInputError(f"--to {folder} already has a style named {name!r} (styles: {', '.join(styles)})")
    return card, styles


def quality_numbers(onnx_path: Path, style: int, frames: int = 12) -> dict:
    """Held-out edge correlation (worst photo) and flicker ratio (worst photo) of one style of a graph."""
    session = ort_session(onnx_path)
    n_styles = next(int(i.shape[1]) for i in session.get_inputs() if i.name == contract.INPUT_STYLE)
    edges, flickers = {}, {}
    for seed, (photo_name, photo) in enumerate(held_out_photos().items()):
        out = session.run(None, graph_feeds(photo[None], "uint8_nhwc", n_styles, style=style))[0][0]
        edges[photo_name] = round(edge_correlation(photo, out), 4)
        seq = noisy_frames(photo, frames, seed=seed)
        styled = session.run(None, graph_feeds(seq, "uint8_nhwc", n_styles, style=style))[0]
        flickers[photo_name] = round(flicker_ratio(seq, styled), 4)
    return {"edge_corr": edges, "edge_corr_min": min(edges.values()), "flicker": flickers,
            "flicker_max": max(flickers.values()), "targets": {"edge_corr_min": EDGE_TARGET, "flicker_max": FLICKER_TARGET}}


def add_style(image: str, folder: Path, name: str, steps: int = 300, size: int = 128, batch: int = 4,
              lr: float = 1e-2, content: str = "builtin", progress: bool = True, log=print) -> dict:
    """Train the new style's norm rows and rebuild ``folder`` with it appended; returns the summary."""
    card, styles = _check_target(folder, name)
    style_image = load_style(image, size=512)  # a one-line error for a missing / undecodable image, before any work
    generator, _ = load_generator(folder)
    old_state = {k: v.clone() for k, v in generator.state_dict().items()}
    new_index = generator.add_style()
    base = TrainConfig.from_dict(card.get("train") or {})
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.add-{name}.", dir=folder.parent))
    try:
        style_file = work / "style_image.png"
        write_png(style_image, style_file)
        config = TrainConfig(**{
            **{k: getattr(base, k) for k in ("channels", "res_blocks", "stem_kernel", "stem", "padding", "perception",
                                              "content_weight", "style_weight", "swd_weight", "tv_weight", "adv",
                                              "adv_weight", "stability", "stability_shift", "d_width", "d_layers",
                                              "seed")},
            # the existing styles are never drawn (train_styles), so their images are not needed
            "styles": tuple(styles + [str(style_file)]),
            "multi_style": True, "train_styles": (new_index,), "norm_only": True, "steps": steps, "size": size,
            "batch": batch, "lr_g": lr, "content": content, "out": str(work / "run"), "preview_every": 0,
            "checkpoint_every": 0, "progress": progress, "device": "cpu",
        })
        t0 = time.perf_counter()
        result = Trainer(config, generator=generator).run()
        wall = time.perf_counter() - t0
        if result.interrupted:
            raise KeyboardInterrupt
        changed = []
        for key, value in generator.state_dict().items():
            before = old_state[key]
            if key.endswith((".scale", ".shift")):
                value = value[: before.shape[0]]  # the old styles' rows; the new row is appended
            if not torch.equal(value, before):
                changed.append(key)
        if changed:  # the one-hot and the frozen convs guarantee this; checked, not assumed
            raise OutputError(f"adding a style changed existing parameters ({changed[:3]}); nothing written")
        staged = work / "model"
        shutil.copytree(folder, staged)
        save_weights(generator, staged / contract.GENERATOR_WEIGHTS)
        added = list(card.get("added_styles", [])) + [{
            "name": name, "image": Path(image).name, "steps": steps, "size": size, "batch": batch, "lr": lr,
            "trained_parameters": sum(p.numel() for p in generator.norm_parameters()) // generator.n_styles,
            "wall_seconds": round(wall, 1), "steps_per_second": round(result.steps_per_second, 3),
        }]
        new_card = {**card, "generator": generator.config.to_dict(), "styles": styles + [name], "added_styles": added}
        (staged / contract.CHECKPOINT_CARD).write_text(json.dumps(new_card, indent=2) + "\n")
        onnx_path = staged / contract.CHECKPOINT_ONNX
        export_checkpoint(staged, onnx_path, io_layout="uint8_nhwc", precision="fp32", log=lambda _m: None)
        log(f"re-exported {contract.CHECKPOINT_ONNX} with {generator.n_styles} styles (parity verified)")
        write_cpu_form(onnx_path, staged / contract.CHECKPOINT_ONNX_CPU)  # the one copied from the folder is stale
        int8 = None
        if (folder / contract.CHECKPOINT_ONNX_INT8).is_file():
            int8 = ship_int8(staged, onnx_path, staged / contract.CHECKPOINT_ONNX_INT8, log=log)
        quality = quality_numbers(onnx_path, new_index)
        added[-1]["quality"] = quality
        (staged / contract.CHECKPOINT_CARD).write_text(json.dumps(new_card, indent=2) + "\n")
        _update_model_card(staged, new_card, int8)
        replace_dir(staged, folder)
        return {"name": name, "index": new_index, "styles": new_card["styles"], "wall_seconds": wall,
                "steps_per_second": result.steps_per_second, "quality": quality, "int8": int8}
    except OSError as exc:
        raise OutputError(f"cannot write {folder}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _update_model_card(staged: Path, card: dict, int8: dict | None) -> None:
    """An embedded model's ``model.json`` follows: its styles and the INT8 graph's record."""
    path = staged / "model.json"
    if not path.is_file():
        return
    model = read_json(path, "model card")
    model["styles"] = card["styles"]
    model["generator"] = card["generator"]
    model["added_styles"] = card["added_styles"]
    model.setdefault("files", {})["onnx_cpu"] = contract.CHECKPOINT_ONNX_CPU
    if int8 is not None:
        model["int8_quality"] = int8
        model.setdefault("files", {})["onnx_int8"] = contract.CHECKPOINT_ONNX_INT8  # auto follows its record
    path.write_text(json.dumps(model, indent=2) + "\n")


__all__ = ["add_style", "quality_numbers", "NAME_PATTERN"]
