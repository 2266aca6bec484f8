"""Writing and reading the ONNX metadata of the model contract (keys: ``stylize_rt.contract``).

Values are strings; lists and dicts are stored as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from stylize_rt import __version__
from stylize_rt.contract import CONFIG_HASH, GRID, IO_LAYOUT, KIND, OPSET, PRECISION, STYLE, STYLES, VERSION
from stylize_rt.errors import BadInputError, first_line
from stylize_rt.nets.generator import GeneratorConfig


def config_hash(card: dict[str, Any]) -> str:
    """SHA-256 of the checkpoint card's model config (canonical JSON): ties a graph to its config.

    Only the architecture and training settings count, not bookkeeping like the step count,
    so re-exporting the same checkpoint gives the same hash.
    """
    keys = [k for k in ("kind", "generator", "captioner", "training", "train", "style") if k in card]
    payload = json.dumps({k: card[k] for k in keys}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def style_name(card: dict[str, Any]) -> str:
    """The style's name as the training card records it (several spellings are accepted)."""
    for key in ("style_name", "style"):
        value = card.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            return value["name"]
    training = card.get("training") or card.get("train") or {}
    if isinstance(training, dict):
        if isinstance(training.get("style"), str):
            return training["style"]
        styles = training.get("styles")
        if isinstance(styles, (list, tuple)) and styles and all(isinstance(s, str) for s in styles):
            # Paths name a style by their file stem; built-in names stay as they are.
            return "+".join(Path(s).stem for s in styles)
    return "unknown"


def style_names(card: dict[str, Any]) -> list[str]:
    """A multi-style checkpoint's style names in style-input order (its card's ``styles``)."""
    n_styles = int((card.get("generator") or {}).get("n_styles", 1))
    names = card.get("styles")
    if n_styles > 1:
        if not isinstance(names, list) or len(names) != n_styles or not all(isinstance(n, str) for n in names):
            raise BadInputError(f"a {n_styles}-style checkpoint card needs 'styles': a list of {n_styles} names")
        return list(names)
    return [style_name(card)]


def generator_metadata(card: dict[str, Any], io_layout: str, precision: str, opset: int) -> dict[str, str]:
    """The metadata map of an exported generator graph (before verification results are added);
    multi-style graphs also list their styles (``stylize_rt.styles``)."""
    meta = {
        KIND: "generator",
        STYLE: style_name(card),
        IO_LAYOUT: io_layout,
        PRECISION: precision,
        CONFIG_HASH: config_hash(card),
        VERSION: __version__,
        OPSET: str(opset),
    }
    names = style_names(card)
    if len(names) > 1:
        meta[STYLES] = json.dumps(names)
    if isinstance(card.get("generator"), dict):
        meta[GRID] = str(GeneratorConfig.from_dict(card["generator"]).grid_px)
    return meta


def set_metadata(model, meta: dict[str, Any]) -> None:
    """Merge ``meta`` into ``model.metadata_props`` (in place); non-strings are stored as JSON."""
    current = {p.key: p.value for p in model.metadata_props}
    for key, value in meta.items():
        current[key] = value if isinstance(value, str) else json.dumps(value)
    del model.metadata_props[:]
    for key, value in current.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def get_metadata(model) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """Metadata of an ``.onnx`` file, without loading its weights into memory twice."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"model file not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError and friends
        raise BadInputError(f"not an ONNX model: {path}: {first_line(exc)}") from None
    return get_metadata(model)
