"""Choosing the torch device: 'auto', 'cpu' or 'cuda'; which BLAS the CPU runs on."""
from __future__ import annotations

import os
import re
from typing import Optional

import torch

from .errors import DeviceError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto", feedback=None) -> str:
    """The device to run on; with ``feedback``, a CPU run also warns when it would run on the reference BLAS."""
    dev = _resolve(name)
    if feedback is not None and dev == "cpu":
        warning = reference_blas_warning()
        if warning:
            feedback.warn(warning)
    return dev


def _resolve(name: str) -> str:
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


# Debian/Ubuntu install the reference BLAS (libblas3, netlib's Fortran loops) at .../blas/libblas.so.3, behind the
# libblas.so.3 alternative that numpy and Debian's torch link; an optimised one (libopenblas0, BLIS, MKL) takes the
# alternative over when installed, but apt brings libopenblas0 only as a recommendation of python3-numpy, so an
# install with --no-install-recommends runs every matrix product of RX and the networks on the reference loops.
_REFERENCE_BLAS = re.compile(r"/blas/libblas\.so[.0-9]*$")


def reference_blas(maps: str = "/proc/self/maps") -> Optional[str]:
    """The reference BLAS library mapped into this process (numpy and torch are imported by then), or None: an
    optimised BLAS, or a platform without /proc (pip's numpy and torch wheels bundle OpenBLAS / MKL there).
    The mapped files are what the dynamic loader really chose: threadpoolctl would only list the libraries that
    have a threading API, which the reference BLAS has not, so it could not name it."""
    import numpy  # noqa: F401  (numpy's BLAS is loaded with it)

    try:
        with open(maps) as f:
            paths = {line.split(None, 5)[-1].strip() for line in f if "blas" in line}
    except OSError:
        return None
    found = sorted(p for p in paths if _REFERENCE_BLAS.search(p))
    return found[0] if found else None


def reference_blas_warning() -> Optional[str]:
    lib = reference_blas()
    if lib is None:
        return None
    return (f"numpy/torch run on the reference BLAS ({lib}), many times slower than an optimised one: install "
            "OpenBLAS (Debian/Ubuntu: apt install libopenblas0)")


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
