"""Checkpoints: a directory with safetensors weights and a JSON card.

Layout of ``CKPT/``::

    config.json              {"kind": "generator", "generator": {...GeneratorConfig...},
                              "step": N, "stylize_rt_version": ..., ...extra}
    generator.safetensors    generator state_dict (all that export and inference need)
    discriminator.safetensors, training_state.pt   (only for resuming training)

Safetensors holds plain tensors and cannot run code when loaded; the optional
``training_state.pt`` (optimizer moments, RNG state) is read with ``weights_only=True``.
Every failure (missing file, wrong kind, truncated weights, config/weights mismatch) is a
one-line ``BadInputError``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from stylize_rt import __version__
from stylize_rt.errors import BadInputError, OutputError
from stylize_rt.training.generator import Generator, GeneratorConfig

CONFIG_FILE = "config.json"
GENERATOR_FILE = "generator.safetensors"


def read_card(path: str | os.PathLike[str], kind: str | None = None) -> dict[str, Any]:
    """Read ``CKPT/config.json``; check ``kind`` when given."""
    ckpt = Path(path)
    card_path = ckpt / CONFIG_FILE
    if ckpt.is_file():
        raise BadInputError(f"{ckpt} is a file; a checkpoint is a directory holding {CONFIG_FILE}")
    if not card_path.is_file():
        raise BadInputError(f"not a checkpoint: {card_path} not found")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"corrupt checkpoint card {card_path}: {exc}") from None
    if not isinstance(card, dict) or "kind" not in card:
        raise BadInputError(f"corrupt checkpoint card {card_path}: no 'kind'")
    if kind is not None and card["kind"] != kind:
        raise BadInputError(f"{ckpt} is a {card['kind']} checkpoint, expected a {kind} checkpoint")
    return card


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a safetensors state dict into ``model`` exactly (no missing/unexpected/misshaped keys)."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise BadInputError(f"checkpoint weights not found: {path}")
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises SafetensorError/OSError on truncation
        raise BadInputError(f"corrupt or truncated weights {path}: {exc}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or misshaped:
        detail = (missing and f"missing {missing[:3]}") or (unexpected and f"unexpected {unexpected[:3]}") or (
            f"shape mismatch at {misshaped[:3]}"
        )
        raise BadInputError(f"weights {path} do not match the checkpoint's config: {detail}")
    model.load_state_dict(state)


def save_weights(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))


def save_generator(
    path: str | os.PathLike[str], generator: Generator, extra: dict[str, Any] | None = None
) -> Path:
    """Write a generator checkpoint directory atomically (built beside, then renamed into place)."""
    ckpt = Path(path)
    card = {
        "kind": "generator",
        "generator": generator.config.to_dict(),
        "stylize_rt_version": __version__,
        **(extra or {}),
    }
    try:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=ckpt.name + ".", suffix=".tmp", dir=ckpt.parent))
        save_weights(generator, tmp / GENERATOR_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(card, indent=2) + "\n")
    except OSError as exc:
        raise OutputError(f"cannot write checkpoint {ckpt}: {exc.strerror or exc}") from None
    return _replace_dir(tmp, ckpt)


def _replace_dir(tmp: Path, target: Path) -> Path:
    """Move a finished temp dir into place; an existing target is swapped out, not half-overwritten."""
    old = None
    if target.exists():
        old = target.with_name(target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load_generator(path: str | os.PathLike[str]) -> tuple[Generator, dict[str, Any]]:
    """Load ``CKPT/`` as an eval-mode ``Generator`` and return it with its card."""
    card = read_card(path, kind="generator")
    try:
        config = GeneratorConfig.from_dict(card["generator"])
        generator = Generator(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInputError(f"bad generator config in {Path(path) / CONFIG_FILE}: {exc}") from None
    load_weights(generator, Path(path) / GENERATOR_FILE)
    return generator.eval(), card


__all__ = ["read_card", "load_weights", "save_weights", "save_generator", "load_generator"]
