"""Checkpoints: a directory with safetensors weights and a JSON card.

Layout of ``CKPT/``::

    config.json              {"kind": "generator", "generator": {...GeneratorConfig...},
                              "step": N, "stylize_rt_version": ..., ...extra}
    generator.safetensors    generator state_dict (all that export and inference need)
    discriminator.safetensors   PatchGAN weights   } only in training checkpoints
    training_state.pt           optimizer states   } (save_generator with discriminator=,
                                                  } optimizer_states=), for --resume

A training checkpoint's card also holds ``"train"``: the run's TrainConfig, and
``"discriminator"``: the discriminator config. Export and the backends need only
``config.json`` + ``generator.safetensors``; a resume needs all four.

Safetensors holds plain tensors and cannot run code when loaded; ``training_state.pt``
(Adam moments and step counts, as ``optimizer.state_dict()``: tensors, numbers and
lists only) is read with ``torch.load(..., weights_only=True)``. Data sampling and
loss noise are pure functions of (seed, step), so no RNG state has to be stored.
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

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from stylize_rt import __version__
from stylize_rt.contract import CHECKPOINT_CARD as CONFIG_FILE
from stylize_rt.contract import GENERATOR_WEIGHTS as GENERATOR_FILE
from stylize_rt.errors import BadInputError, OutputError, first_line
from stylize_rt.fileio import read_json, replace_dir
from stylize_rt.nets.generator import Generator, GeneratorConfig

DISCRIMINATOR_FILE = "discriminator.safetensors"
TRAINING_STATE_FILE = "training_state.pt"


def read_card(path: str | os.PathLike[str], kind: str | None = None) -> dict[str, Any]:
    """Read ``CKPT/config.json``; check ``kind`` when given."""
    ckpt = Path(path)
    card_path = ckpt / CONFIG_FILE
    if ckpt.is_file():
        raise BadInputError(f"{ckpt} is a file; a checkpoint is a directory holding {CONFIG_FILE}")
    if not card_path.is_file():
        raise BadInputError(f"not a checkpoint: {card_path} not found")
    card = read_json(card_path, "checkpoint card")
    if not isinstance(card, dict) or "kind" not in card:
        raise BadInputError(f"corrupt checkpoint card {card_path}: no 'kind'")
    if kind is not None and card["kind"] != kind:
        raise BadInputError(f"{ckpt} is a {card['kind']} checkpoint, expected a {kind} checkpoint")
    return card


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a safetensors state dict into ``model`` exactly (no missing/unexpected/misshaped keys)."""
    if not path.is_file():
        raise BadInputError(f"checkpoint weights not found: {path}")
    try:
        state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises SafetensorError/OSError on truncation
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
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))


def save_generator(
    path: str | os.PathLike[str],
    generator: Generator,
    extra: dict[str, Any] | None = None,
    discriminator: nn.Module | None = None,
    optimizer_states: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory atomically (built beside, then renamed into place).

    With ``discriminator`` and ``optimizer_states`` it is a training checkpoint that
    :func:`load_training_state` can resume from.
    """
    ckpt = Path(path)
    card = {
        "kind": "generator",
        "generator": generator.config.to_dict(),
        "stylize_rt_version": __version__,
        **(extra or {}),
    }
    tmp = None
    try:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=ckpt.name + ".", suffix=".tmp", dir=ckpt.parent))
        save_weights(generator, tmp / GENERATOR_FILE)
        if discriminator is not None:
            save_weights(discriminator, tmp / DISCRIMINATOR_FILE)
        if optimizer_states is not None:
            torch.save(optimizer_states, tmp / TRAINING_STATE_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(card, indent=2) + "\n")
        return replace_dir(tmp, ckpt)
    except OSError as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write checkpoint {ckpt}: {exc.strerror or exc}") from None


def load_training_state(path: str | os.PathLike[str], discriminator: nn.Module | None) -> dict[str, Any]:
    """Load the discriminator weights (into ``discriminator``) and return the optimizer states.

    Raises ``BadInputError`` when the checkpoint holds only a generator (e.g. an
    embedded model), or when ``training_state.pt`` is corrupt.
    """
    ckpt = Path(path)
    state_path = ckpt / TRAINING_STATE_FILE
    if not state_path.is_file():
        raise BadInputError(f"{ckpt} cannot be resumed: it has no {TRAINING_STATE_FILE} (not a training checkpoint)")
    if discriminator is not None:
        load_weights(discriminator, ckpt / DISCRIMINATOR_FILE)
    try:
        state = torch.load(str(state_path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - zip/pickle errors on truncation, UnpicklingError on code-bearing pickles
        raise BadInputError(f"corrupt training state {state_path}: {first_line(exc)[:200]}") from None
    if not isinstance(state, dict):
        raise BadInputError(f"corrupt training state {state_path}: not a dict")
    return state


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


__all__ = ["read_card", "load_weights", "save_weights", "save_generator", "load_generator", "load_training_state"]
