"""Bundled models: ``resources/models/<name>.pt`` (or an authors' folder ``<name>/``) with a model card
``resources/models/<name>.md`` each.

The folder is ``$FERS_MODELS_DIR`` when set, else ``resources/models`` beside the engine: in a checkout
``<repo>/engine/fers`` → ``<repo>/resources/models``, in the plugin ZIP ``<plugin>/engine/fers`` →
``<plugin>/resources/models`` — the same relative place. ``resolve_model_path`` lets every model
argument (``--model``, MODEL) take a bare bundled name.

No torch here: the QGIS plugin lists the models while it loads, even when torch is missing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional

from .errors import ModelError

ENV = "FERS_MODELS_DIR"
AUTHORS_FILES = ("convh.pt", "enc.pt", "pc.pt")


def models_dir() -> str:
    env = os.environ.get(ENV)
    if env:
        return os.path.abspath(env)
    here = os.path.dirname(os.path.realpath(__file__))  # …/engine/fers
    return os.path.join(os.path.dirname(os.path.dirname(here)), "resources", "models")


@dataclass
class BundledModel:
    name: str
    path: str  # a .pt file, or a folder with the authors' convh.pt, enc.pt, pc.pt
    card: Optional[str]  # the model card (Markdown) if there is one

    def card_text(self) -> str:
        if self.card is None:
            return ""
        try:
            with open(self.card, encoding="utf-8") as f:
                return f.read()
        except OSError:
            return ""

    def summary(self) -> str:
        """The card's first heading or first line: one line for a list."""
        for line in self.card_text().splitlines():
            line = line.strip().lstrip("#").strip()
            if line:
                return line
        return "(no model card)"


def list_models(folder: Optional[str] = None) -> List[BundledModel]:
    """The bundled models, sorted by name (none if the folder is missing)."""
    folder = folder or models_dir()
    if not os.path.isdir(folder):
        return []
    out = []
    for entry in sorted(os.listdir(folder)):
        full = os.path.join(folder, entry)
        if entry.startswith("."):
            continue
        if os.path.isfile(full) and entry.lower().endswith(".pt"):
            name = entry[:-3]
        elif os.path.isdir(full) and all(os.path.exists(os.path.join(full, f)) for f in AUTHORS_FILES):
            name = entry
        else:
            continue
        card = os.path.join(folder, name + ".md")
        out.append(BundledModel(name, full, card if os.path.isfile(card) else None))
    return out


def find_model(name: str, folder: Optional[str] = None) -> Optional[BundledModel]:
    key = name[:-3] if name.lower().endswith(".pt") else name
    for m in list_models(folder):
        if m.name == key:
            return m
    return None


def resolve_model_path(model: str, folder: Optional[str] = None) -> str:
    """A path as given if it exists; else a bundled model's path for a bare name; else a clear error."""
    model = os.fspath(model)
    if os.path.exists(model):
        return model
    bare = os.sep not in model and (os.altsep is None or os.altsep not in model)
    if bare:
        hit = find_model(model, folder)
        if hit is not None:
            return hit.path
    names = [m.name for m in list_models(folder)]
    where = folder or models_dir()
    listed = f"bundled models: {', '.join(names)}" if names else f"no bundled models in {where}"
    raise ModelError(f"model not found: {model} (neither a file or folder, nor a bundled model name; {listed})")
