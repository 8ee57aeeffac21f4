"""Loading a PyTorch weights file safely: tensors and plain containers only, every failure one line.

Below every module that reads weights (our checkpoints, the authors' files, torchvision's trunks, training
resume files), so that none of them needs another: ``fers.checkpoint`` and ``fers.backbones`` both read
through here.
"""
from __future__ import annotations

import os
import pickle
import zipfile

import torch

from ..errors import InputError, ModelError
from ..memory import check_bytes
from .guard import require_regular


def safe_torch_load(path: str, what: str = "checkpoint"):
    """``torch.load(weights_only=True)`` with every failure turned into a ModelError naming the file.

    Checkpoints travel between people; a full unpickle would run whatever code the
    file names, so anything beyond tensors and plain containers is refused.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelError(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise ModelError(f"{what} is a folder, not a weights file: {path}")
    try:
        require_regular(path, what)  # a FIFO or a device would block the load, or feed it for ever
        # weights are read whole: a file larger than the memory left is refused before it is read
        check_bytes(1.2 * os.path.getsize(path), f"{what} {os.path.basename(path)}", "free memory; nothing was read")
    except InputError as e:
        raise ModelError(str(e)) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" in str(e).lower():
            raise ModelError(
                f"{what} {path} holds Python objects other than tensors (or is not a PyTorch weights file); "
                "loading it would execute code stored in the file, so it is refused for safety. "
                "Re-save it as a plain state dict: torch.save(model.state_dict(), path)") from None
        raise ModelError(f"{what} {path} is corrupt or not a PyTorch weights file ({e})") from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, zipfile.BadZipFile, IndexError, TypeError) as e:
        # truncated downloads end here: the zip central directory is at the end of the file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{what} {path} is truncated, corrupt or not a PyTorch weights file ({first[:200]})") from None
