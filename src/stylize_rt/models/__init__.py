"""Models embedded in the package: each folder holds its files and a ``model.json`` card.

The card says what the model is and how it was made (the exact reproducing command),
so ``stylize-rt models`` can tell a user where every shipped file came from.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from stylize_rt.errors import BadInputError

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_GENERATOR = "styles6"  # six styles in one network; "mosaic" is the previous single-style default


@dataclass
class EmbeddedModel:
    name: str
    kind: str
    description: str
    files: dict[str, str]
    source: str
    directory: Path
    extra: dict = field(default_factory=dict)

    def path(self, role: str) -> Path:
        """Path of the file with ``role`` (e.g. ``onnx``, ``weights``, ``config``)."""
        if role not in self.files:
            raise KeyError(f"model {self.name!r} has no {role!r} file")
        return self.directory / self.files[role]

    def to_dict(self) -> dict:
        files = {}
        for role, rel in self.files.items():
            p = self.directory / rel
            files[role] = {"path": str(p), "bytes": p.stat().st_size if p.exists() else None}
        return {"name": self.name, "kind": self.kind, "description": self.description,
                "files": files, "source": self.source, **self.extra}


def list_models() -> list[EmbeddedModel]:
    models = []
    for card in sorted(MODELS_DIR.glob("*/model.json")):
        data = json.loads(card.read_text())
        known = {k: data.pop(k) for k in ("name", "kind", "description", "files", "source")}
        models.append(EmbeddedModel(directory=card.parent, extra=data, **known))
    return models


def get_model(name: str) -> EmbeddedModel:
    for model in list_models():
        if model.name == name:
            return model
    raise BadInputError(f"no embedded model named {name!r} (embedded: {_names()})")


def _names() -> str:
    return ", ".join(m.name for m in list_models()) or "none"


def resolve_model(spec: str | os.PathLike[str]) -> Path:
    """A model as every command takes it: a path, or a name that ``stylize-rt models`` lists
    (its folder, which holds the checkpoint and its ONNX exports)."""
    path = Path(spec)
    if path.exists():
        return path
    text = str(spec)
    if text and "/" not in text and os.sep not in text and not path.suffix:
        for model in list_models():
            if model.name == text:
                return model.directory
    raise BadInputError(f"model not found: {spec} (a file or folder, or an embedded model: {_names()})")
