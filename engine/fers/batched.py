"""Many small scenes at once (HAD100's 64×64 tests, image chips): one batched pass on the device.

``score_batch`` gives, for a stack of equally sized, fully valid scenes, what ``score_scene``
gives for each on its own with the SPEC's plain RX (``rx_trim=0``; every strategy): the networks run on the whole batch
(both are per-sample: the Spa-FEN's pooling and SE gate average within each scene, BatchNorm
is in eval mode), and RX estimates one mean and covariance per scene with batched matrix
products and a batched eigendecomposition. On a GPU this turns a hundred kernel launches per
scene into a few per batch.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .device import full_fp32
from .errors import InputError
from .pipeline import _minmax, resolve_strategy

PARTS = {"none": [(False, False)], "spectral": [(True, False)], "spatial": [(False, True)],
         "additive": [(True, True)], "multiplicative": [(False, True), (True, False)]}


def rx_batch(x: torch.Tensor) -> torch.Tensor:
    """RX scores (N, H, W) float64 of a (N, B, H, W) batch, each scene with its own statistics, pseudo-inverse
    as ``fers.detect.rx`` (eigenvalues below B·eps·λmax dropped)."""
    n, b, h, w = x.shape
    if h * w < 2:
        raise InputError("RX needs at least 2 pixels per scene")
    p = x.reshape(n, b, h * w).to(torch.float64)
    mean = p.mean(2, keepdim=True)
    d = p - mean
    cov = d @ d.transpose(1, 2) / (h * w - 1)
    evals, evecs = torch.linalg.eigh(0.5 * (cov + cov.transpose(1, 2)))
    tol = evals[:, -1:] * b * torch.finfo(torch.float64).eps
    inv_sqrt = torch.where(evals > tol, evals.clamp_min(1e-300).rsqrt(), torch.zeros_like(evals))
    y = (evecs * inv_sqrt[:, None, :]).transpose(1, 2) @ d
    return (y * y).sum(1).reshape(n, h, w)


@full_fp32
def score_batch(cubes: np.ndarray, strategy: str = "none", model=None, device: str = "cpu") -> np.ndarray:
    """(N, B, H, W) preprocessed scenes (SPEC §0, each scaled on its own) → (N, H, W) float32 scores."""
    strategy = resolve_strategy(strategy, cubes.shape[1])
    parts = PARTS[strategy]
    if strategy != "none":
        if model is None:
            raise InputError(f"strategy '{strategy}' needs a model")
        if any(a for _, a in parts) and model.spa is None:
            raise InputError(f"strategy '{strategy}' needs the spatial branch (Spa-FEN), but {model.describe()} "
                             "holds only the spectral branch")
        if model.bands != cubes.shape[1]:
            raise InputError(f"the model {model.describe()} was trained on {model.bands} bands, but the scenes "
                             f"have {cubes.shape[1]}")
    with torch.inference_mode():
        h = torch.from_numpy(np.ascontiguousarray(cubes, dtype=np.float32)).to(device)
        f_spe = model.spe(h) if any(s for s, _ in parts) else None
        f_spa = model.spa(h) if any(a for _, a in parts) else None
        maps = []
        for with_spe, with_spa in parts:
            x = h + (f_spe if with_spe else 0) + (f_spa if with_spa else 0)
            maps.append(rx_batch(x).float().cpu().numpy())
    if len(maps) == 1:
        return maps[0]
    return np.stack([(_minmax(a) * _minmax(b)).astype(np.float32) for a, b in zip(*maps)])


def seconds_per_scene(model, strategy: str, device: str, batch: int = 100, bands: int = 200, side: int = 64,
                      repeat: int = 3, cubes: Optional[np.ndarray] = None) -> float:
    """Wall seconds per scene of ``score_batch`` on ``batch`` scenes (best of ``repeat``, after a warm-up)."""
    import time

    if cubes is None:
        rng = np.random.default_rng(0)
        cubes = (rng.random((batch, bands, side, side), dtype=np.float32) * 0.2 - 0.1)
    score_batch(cubes[:2], strategy, model, device)
    best = float("inf")
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        score_batch(cubes, strategy, model, device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best / len(cubes)
