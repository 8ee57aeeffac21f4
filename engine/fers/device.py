"""Choosing the torch device: 'auto', 'cpu' or 'cuda'."""
from __future__ import annotations

import torch

from .errors import DeviceError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> str:
    name = (name or "auto").lower()
    if name not in DEVICES and not name.startswith("cuda:"):
        raise DeviceError(f"unknown device '{name}' (choose one of: {', '.join(DEVICES)})")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("DEVICE=cuda was asked for, but this torch build sees no CUDA GPU "
                          f"(torch {torch.__version__}); use DEVICE=cpu or DEVICE=auto")
    return name


def describe_device(dev: str) -> str:
    """One line for a run log: the device, what it is, and why 'auto' chose it."""
    if dev.startswith("cuda"):
        i = torch.device(dev).index or 0
        return f"{dev} ({torch.cuda.get_device_name(i)}, torch {torch.__version__})"
    why = "" if torch.cuda.is_available() else ", no CUDA GPU visible"
    return f"cpu ({torch.get_num_threads()} threads, torch {torch.__version__}{why})"
