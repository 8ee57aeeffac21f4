"""The Spa-FEN's frozen, random ResNet-34 convolutions stored as the seed that drew them (checkpoint format 2).

The bundled models' Spa-FEN backbone is never trained: its convolution weights are torchvision's
random initialisation (kaiming normal, ``fers.backbones``), drawn by ``SpaFEN(bands)`` right after
``torch.manual_seed(seed)`` in stage-2 training, and kept in float16. They are 8.2 M of the 9.2 M
numbers of a model and, being random, do not compress (16 MB of each 20 MB file): two models did
not fit the plugin repository's 25 MB limit. Rounding them further is not an option (bfloat16
moved score maps by 1.4e-3 of their range, scripts/check_model_precision.py), so the file keeps
what it takes to draw them again bit for bit:

* ``seed``: the generator seed of the draw;
* ``residue``: each weight's float16 code mod 4 (2 bits, packed four to a byte). PyTorch's CPU
  ``normal_`` has a vectorised (AVX2) and a plain path whose float32 results differ in the last
  bits: after rounding to float16, ~4,800 of the 8.2 M weights land one float16 step apart
  (measured with ``ATEN_CPU_CAPABILITY=default``). Of the three codes within one step of a
  drawn weight exactly one has the stored residue, so every such weight is put back exactly;
* ``sha256`` of the rebuilt float16 weights: a torch whose generator draws something else
  is refused with a clear error rather than scoring with another network.

The draw runs under ``torch.random.fork_rng``: loading a model leaves the caller's random
state as it was. It costs about 0.3 s per model on a CPU.
"""
from __future__ import annotations

import hashlib
from typing import Dict, List

import numpy as np
import torch

from ..errors import ModelError

STORAGE = ("float16 conv weights of the random, frozen ResNet-34, kept as the seed that draws them again plus "
           "2 bits per weight (fers.spatial.frozen)")


def frozen_keys(state: dict) -> List[str]:
    """The backbone's convolution weights (4-D ``backbone.*`` tensors), in state order."""
    return [k for k, v in state.items() if k.startswith("backbone.") and v.dim() == 4]


def _order(codes: np.ndarray) -> np.ndarray:
    """float16 bit patterns (int16) → int16 in the order of the values (−0 just below +0), so that one float16
    step is ±1: negative codes get their magnitude bits flipped. The map is its own inverse. (NumPy: its
    int16 arithmetic is vectorised, PyTorch's CPU one ran 100× slower here.)"""
    return codes ^ ((codes >> 15) & 0x7FFF)


def _codes(half: torch.Tensor) -> np.ndarray:
    return half.contiguous().view(torch.int16).numpy()


def _digest(tensors: List[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(_codes(t).tobytes())
    return h.hexdigest()


def _draw(bands: int, seed: int) -> Dict[str, torch.Tensor]:
    """The state of a fresh ``SpaFEN(bands)`` built right after ``torch.manual_seed(seed)``, as in training."""
    from .model import SpaFEN

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SpaFEN(bands).state_dict()


def pack(state: dict, bands: int, seed: int) -> tuple:
    """(state without the frozen weights, the ``frozen_backbone`` record). Refuses weights that the seed does
    not draw again (a backbone that was loaded or trained, another seed)."""
    keys = frozen_keys(state)
    weights = [state[k].to(torch.float16) for k in keys]
    drawn = _draw(bands, seed)
    for k, w in zip(keys, weights):
        step = _order(_codes(w)).astype(np.int32) - _order(_codes(drawn[k].to(torch.float16)))
        if np.abs(step).max(initial=0) > 1:
            raise ModelError(f"{k} is not the random draw of seed {seed}: it cannot be stored as its seed")
    residue = np.concatenate([_order(_codes(w)).ravel() & 3 for w in weights]).astype(np.uint8)
    residue = np.concatenate([residue, np.zeros(-len(residue) % 4, np.uint8)]).reshape(-1, 4)
    packed = torch.from_numpy(residue[:, 0] | residue[:, 1] << 2 | residue[:, 2] << 4 | residue[:, 3] << 6)
    record = {"seed": int(seed), "keys": keys, "residue": packed,
              "sha256": _digest(weights), "storage": STORAGE}
    return {k: v for k, v in state.items() if k not in keys}, record


def unpack(state: dict, record: dict, bands: int, path: str) -> dict:
    """The full Spa-FEN state (float32 frozen weights, as the network holds them) from a format-2 record."""
    try:
        seed, keys, packed, digest = (int(record["seed"]), list(record["keys"]), record["residue"],
                                      str(record["sha256"]))
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{path}: the frozen-backbone record is incomplete") from None
    drawn = _draw(bands, seed)
    if any(k not in drawn for k in keys):
        raise ModelError(f"{path}: the frozen-backbone record names weights the Spa-FEN does not have")
    p = packed.numpy().astype(np.int16)
    residue = np.stack([p & 3, p >> 2 & 3, p >> 4 & 3, p >> 6 & 3], axis=1).ravel()
    out, weights, at = dict(state), [], 0
    for k in keys:
        approx = _order(_codes(drawn[k].to(torch.float16))).ravel()
        want = residue[at:at + approx.size]
        at += approx.size
        if want.size != approx.size:
            raise ModelError(f"{path}: the frozen-backbone record is truncated")
        # the one code within ±1 of the draw whose residue mod 4 is the stored one
        approx += ((want - approx + 1) & 3) - 1
        w = torch.from_numpy(_order(approx)).view(torch.float16).view(drawn[k].shape)
        weights.append(w)
        out[k] = w  # load_state_dict copies it into the float32 parameter
    if _digest(weights) != digest:
        raise ModelError(
            f"{path}: this PyTorch ({torch.__version__}) draws the model's frozen random backbone (seed {seed}) "
            "differently from the PyTorch that trained it, so the model cannot be rebuilt exactly; please report "
            "it with your PyTorch version")
    return out
