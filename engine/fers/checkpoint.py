"""Model files: our single-file checkpoint format and the authors' published folders.

Our format is one ``torch.save`` of a dict that holds only tensors and plain
containers, so it loads with ``weights_only=True`` (nothing in it can execute):

    {"format": "fers-checkpoint", "format_version": 1,
     "kind": "spe-fen" | "stage1" | "fers",
     "meta": {"bands", "band_indices", "wavelengths", "trunk", "backbone_weights", "fpl_hidden",
              "training": {...}, "losses": {...}, "engine_version", "created"},
     "spe_fen": state dict,            # CWL, layer1, FPL (all kinds)
     "ferd": state dict,               # the whole stage-1 training net ("stage1" only)
     "spa_fen": state dict,            # stage 2 ("fers" only)
     "frozen_backbone": {...}}         # format 2: the Spa-FEN's random, frozen ResNet-34 convolutions
                                       # as the seed that draws them again (fers.spatial.frozen)

Every model the engine can run loads through ``load_model`` into a ``FersModel``.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Optional

import torch

from . import __version__
from .errors import ModelError
from .io.atomic import atomic_path
from .io.paths import check_outputs
from .io.weights import safe_torch_load  # noqa: F401  (also fers.checkpoint.safe_torch_load, as before)

FORMAT = "fers-checkpoint"
# 2: the Spa-FEN's frozen random convolutions may be stored as their seed ("frozen_backbone"); files without
# that record are still written as format 1, which every earlier engine reads
FORMAT_VERSION = 2
KINDS = ("spe-fen", "stage1", "fers")


def save_checkpoint(path: str, kind: str, meta: dict, frozen_backbone: Optional[dict] = None, **states) -> str:
    """Write atomically (temp file + rename): a crash never leaves a half-written model. ``frozen_backbone``:
    the record of ``fers.spatial.frozen.pack`` (then ``spa_fen`` lacks those weights)."""
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind}")
    meta = dict(meta, engine_version=__version__,
                created=meta.get("created") or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    obj = {"format": FORMAT, "format_version": 2 if frozen_backbone else 1, "kind": kind, "meta": meta}
    if frozen_backbone:
        obj["frozen_backbone"] = frozen_backbone
    for name, sd in states.items():
        obj[name] = {k: v.detach().cpu().clone() for k, v in sd.items()}
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except (OSError, RuntimeError) as e:  # torch's writer fails without an errno ("unexpected pos 64 vs 0")
            from .errors import DISK_FULL, OutputError, disk_full_message

            if getattr(e, "errno", None) in DISK_FULL:
                raise OutputError(disk_full_message(e, path)) from None
            raise OutputError(f"writing {path} failed ({str(e).strip()[:200]}): is the disk full? Free space or "
                              "write elsewhere; no output was written") from None
    return path


def read_checkpoint(path: str) -> dict:
    obj = safe_torch_load(path, "model checkpoint")
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ModelError(f"{path} is not a FERS checkpoint (no '{FORMAT}' header); for the authors' published "
                         "models pass their folder (convh.pt, enc.pt, pc.pt)")
    if obj.get("format_version", 0) > FORMAT_VERSION:
        raise ModelError(f"{path} was written by a newer FERS (format {obj['format_version']}); update the plugin")
    if obj.get("kind") not in KINDS or "spe_fen" not in obj or "meta" not in obj:
        raise ModelError(f"{path} is an incomplete FERS checkpoint (kind {str(obj.get('kind'))[:40]!r})")
    check_meta(obj, path)
    return obj


MAX_MODEL_BANDS = 4096  # past every imaging spectrometer (AVIRIS-NG 425, HySpex ~400); networks are built from it
MAX_BAND_NUMBER = 100_000


def check_meta(obj: dict, path: str) -> None:
    """Bound and type-check what a checkpoint's metadata claims before any network is built from it: the band
    count sizes the networks (a file claiming millions of bands once drove a run to 15 GB)."""
    meta = obj["meta"]

    def bad(what):
        raise ModelError(f"{path} is a damaged FERS checkpoint: {what}")

    def numbers(key, kind, lo, hi):
        v = meta.get(key)
        if v is None:
            return
        if not isinstance(v, (list, tuple)) or len(v) != bands:
            bad(f"'{key}' must list one value per band ({bands})")
        for x in v:
            if isinstance(x, bool) or not isinstance(x, kind) or not lo <= x <= hi or x != x:
                bad(f"'{key}' holds {str(x)[:30]!r}, not a number from {lo} to {hi}")

    if not isinstance(meta, dict):
        bad("its metadata is not a table")
    bands = meta.get("bands")
    if isinstance(bands, bool) or not isinstance(bands, int) or not 1 <= bands <= MAX_MODEL_BANDS:
        bad(f"'bands' must be a whole number from 1 to {MAX_MODEL_BANDS}, got {str(bands)[:30]!r}")
    numbers("band_indices", int, 0, MAX_BAND_NUMBER)
    numbers("wavelengths", (int, float), 0.0, 1e7)
    numbers("fwhm", (int, float), 0.0, 1e7)
    if meta.get("input_band_count") is not None and (not isinstance(meta["input_band_count"], int)
                                                     or isinstance(meta["input_band_count"], bool)):
        bad("'input_band_count' is not a whole number")
    for name in ("spe_fen", "ferd", "spa_fen"):
        state = obj.get(name)
        if state is not None and (not isinstance(state, dict) or not all(
                isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())):
            bad(f"'{name}' is not a table of tensors")


@dataclass
class FersModel:
    """What detection needs: the two enhancement branches (either may be absent) and metadata."""

    spe: Optional[torch.nn.Module]
    spa: Optional[torch.nn.Module] = None
    meta: dict = field(default_factory=dict)
    source: str = ""

    @property
    def bands(self) -> int:
        return int(self.meta["bands"])

    def describe(self) -> str:
        k = getattr(self.spe, "members", 1)
        spe = f"Spe-FEN ensemble of {k}" if k > 1 else "Spe-FEN"
        branches = " + ".join(n for n, m in ((spe, self.spe), ("Spa-FEN", self.spa)) if m is not None)
        return f"{os.path.basename(self.source.rstrip('/'))} ({branches}, {self.bands} bands)"

    def to(self, device: str) -> "FersModel":
        for m in (self.spe, self.spa):
            if m is not None:
                m.to(device).eval()
        return self


def spefen_from_state(state: dict, meta: dict, path: str):
    """A SpeFEN, or a SpeFENEnsemble when the state holds several CWL/FPL pairs (``cwls.K.*``, ``fpls.K.*``)."""
    from .backbones import load_state_strict
    from .spectral.model import SpeFEN, SpeFENEnsemble

    bands = int(meta["bands"])
    members = len({k.split(".")[1] for k in state if k.startswith("cwls.")})
    if members == 1:
        raise ModelError(f"{path} (Spe-FEN ensemble) holds a single member; save it as a plain Spe-FEN")
    if members:
        hidden = int(state["fpls.0.conv1.weight"].shape[0]) if "fpls.0.conv1.weight" in state else None
        net = SpeFENEnsemble(bands, members, hidden=hidden)
    else:
        hidden = int(state["fpl.conv1.weight"].shape[0]) if "fpl.conv1.weight" in state else None
        net = SpeFEN(bands, hidden=hidden)
    load_state_strict(net, state, f"{path} (Spe-FEN)")
    return net.eval()


def load_model(path: str) -> FersModel:
    """A FersModel from our checkpoint file or the authors' folder (convh.pt, enc.pt, pc.pt),
    or a bundled model's bare name (``fers.bundled``)."""
    from .bundled import resolve_model_path

    path = resolve_model_path(os.fspath(path))
    if os.path.isdir(path):
        from .spectral.model import load_reference_spefen

        spe = load_reference_spefen(path)
        meta = {"bands": spe.bands, "band_indices": list(range(spe.bands)), "trunk": "wide_resnet101_2",
                "backbone_weights": "authors' enc.pt (ImageNet layer1 of Wide-ResNet-101-2)",
                "origin": "FERS/FERD authors' published checkpoint"}
        return FersModel(spe=spe, meta=meta, source=path)
    obj = read_checkpoint(path)
    meta = obj["meta"]
    spe = spefen_from_state(obj["spe_fen"], meta, path)
    spa = None
    if obj["kind"] == "fers":
        from .spatial.model import spafen_from_state

        spa = spafen_from_state(spa_state(obj, path), meta, path)
    return FersModel(spe=spe, spa=spa, meta=meta, source=path)


def spa_state(obj: dict, path: str) -> dict:
    """The complete Spa-FEN state of a read checkpoint: format 2 draws the frozen convolutions again."""
    if "frozen_backbone" not in obj:
        return obj["spa_fen"]
    from .spatial.frozen import unpack

    return unpack(obj["spa_fen"], obj["frozen_backbone"], int(obj["meta"]["bands"]), path)


def spe_record(meta: dict) -> dict:
    """How a model's Spe-FEN was made: trunk, weights, training and losses; a stage-2 (FERS) file keeps its
    Spe-FEN's record under ``teacher_*`` (its own ``training`` is the Spa-FEN's)."""
    pre = "teacher_" if meta.get("stage") == 2 else ""
    out = {k: meta[k] for k in ("trunk", "backbone_weights") if k in meta}
    out.update({k: meta[pre + k] for k in ("training", "losses") if pre + k in meta})
    return out


def ensemble(paths, output: str) -> str:
    """One 'spe-fen' checkpoint whose Spe-FEN averages the F_spe of the given models' Spe-FENs
    (``SpeFENEnsemble``): a stage-2 teacher or a model of its own. The members' training records
    travel in the metadata (``ensemble``); the first member's metadata is the file's."""
    from .spectral.model import SpeFEN, SpeFENEnsemble

    if len(paths) < 2:
        raise ModelError(f"an ensemble needs at least 2 models, got {len(paths)}")
    output, = check_outputs([("the member", p) for p in paths], [("the ensemble", output)])  # before anything is read
    models = [load_model(p) for p in paths]
    for m, p in zip(models, paths):
        if not isinstance(m.spe, SpeFEN):
            raise ModelError(f"{p} holds {'no Spe-FEN' if m.spe is None else 'an ensemble already'}; "
                             "ensemble members must be single Spe-FENs")
        if m.meta.get("band_indices") != models[0].meta.get("band_indices"):
            raise ModelError(f"{p} uses other bands than {paths[0]}: ensemble members must share their bands")
    net = SpeFENEnsemble.from_members([m.spe for m in models], [os.fspath(p) for p in paths])
    members = [dict(spe_record(m.meta), file=os.path.basename(os.fspath(p))) for m, p in zip(models, paths)]
    meta = {k: v for k, v in models[0].meta.items()
            if k not in ("pruned_from", "created", "engine_version", "stage", "teacher", "training", "losses")
            and not k.startswith(("spa_", "teacher_", "frozen_backbone", "adapt_bn"))}
    meta.update(spe_record(models[0].meta), stage=1)
    meta["ensemble"] = members
    return save_checkpoint(output, "spe-fen", meta, spe_fen=net.state_dict())


def prune(path: str, output: str) -> str:
    """Keep only what inference needs (Spe-FEN, and Spa-FEN if present): a small shareable file."""
    output, = check_outputs([("the checkpoint", path)], [("the pruned model", output)])  # before anything is read
    obj = read_checkpoint(path)
    kind = "fers" if obj["kind"] == "fers" else "spe-fen"
    states = {"spe_fen": obj["spe_fen"]}
    if kind == "fers":
        states["spa_fen"] = obj["spa_fen"]
    meta = dict(obj["meta"], pruned_from=os.path.basename(path))
    return save_checkpoint(output, kind, meta, frozen_backbone=obj.get("frozen_backbone") if kind == "fers" else None,
                           **states)
