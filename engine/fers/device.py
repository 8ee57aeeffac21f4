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


def full_fp32(fn):
    """Run ``fn`` with TF32 off for cuDNN convolutions and CUDA matmuls, restoring the flags afterwards.

    On Ampere/Hopper GPUs PyTorch lets cuDNN convolutions use TF32 (10-bit mantissa) by default.
    The enhanced cube H + F_spe is scored by RX, which inverts a covariance of features ~100× larger
    than H: TF32 rounding in the Spe-FEN's 1×1 convolutions moved 200-band scores by up to 17 % of
    their range on an H100 (AUC −0.0002). Detection is cheap next to training, so it runs in full
    fp32 and a GPU map equals the CPU map; training keeps the faster default.
    """
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            return fn(*args, **kwargs)
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved

    return wrapper
