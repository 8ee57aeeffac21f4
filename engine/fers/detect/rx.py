"""Global RX (Reed–Xiaoli) detector, SPEC §3.

Mean and covariance are accumulated in float64 over row blocks in one pass, so a
raster never needs a second copy in memory and the same code streams blocks read
from disk. Scoring is a whitening by the pseudo-inverse square root of Σ.

The SPEC's min-max scaling to [0, 1] before RX is an affine map with a positive
scalar: Mahalanobis distances are invariant to it (and the pseudo-inverse cut-off
is relative to λ_max), so it is skipped rather than spend a pass on it.

Trimmed RX (``trim`` > 0, beyond the SPEC): the anomalies themselves enter the global mean and
covariance, and many or large ones (an airport's planes) pull Σ towards their own spectra, which
lowers their distances. After the first scoring pass, μ and Σ are estimated again from the valid
pixels scored at or below the (1 − trim) quantile and every pixel is scored against those: one
re-estimation of the classical "background purification" kind. The left-out pixels' sums are
subtracted from the first pass's rather than summing the rest again, so it costs one more scoring
pass and a pass over the left-out pixels only.

Precision matters: AVIRIS covariances have condition numbers around 1e8–1e9, so
statistics and scores are computed in float64 even when the cube is float32.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np
import torch

from ..errors import InputError
from ..feedback import Feedback

# The trim of the enhanced strategies (spectral, spatial, A, B) when none is asked for; strategy 'none'
# keeps the SPEC's plain RX. Chosen by research/trimmed_rx.py's rule, fixed before its figures, on the
# implanted targets with the background anomalies as guard (0.05 failed the guard at 100 bands).
DEFAULT_TRIM = 0.01

# Enhanced cubes routinely reach 1e10-1e11 without harm; beyond 1e12 float32 inputs keep too few digits.
ILL_CONDITIONED = 1e12


class Scratch:
    """One float64 working array reused across row blocks (``get`` returns a C-contiguous view of its head).
    Blocks are equal but the last and the masked ones, so it is allocated about once per pass."""

    def __init__(self):
        self.flat = np.empty(0)

    def get(self, shape) -> np.ndarray:
        size = int(np.prod(shape))
        if self.flat.size < size:
            self.flat = np.empty(size)
        return self.flat[:size].reshape(shape)


@dataclass
class RxModel:
    mean: torch.Tensor  # (B,) float64
    whitening: torch.Tensor  # (B, r) float64: Σ⁺ = W Wᵀ
    rank: int
    condition: float
    n: int


class RxStats:
    """Streaming mean/covariance of pixel vectors (float64, shifted for stability).

    On the CPU every step is NumPy's, none is torch's: torch's OpenMP threads keep spinning for a while after
    each parallel torch operation, and in a loop that alternates torch reductions with BLAS calls they took a
    core from OpenBLAS's threads (plain RX at 512²×200: 0.85-0.95 s with a torch sum per block, 0.65-0.67 s
    with those threads made to sleep at once; this loop now leaves them idle from the start)."""

    def __init__(self, bands: int, device: torch.device):
        self.device = device
        self.n = 0
        self.shift = None
        self.s1 = torch.zeros(bands, dtype=torch.float64, device=device)
        self.s2 = torch.zeros(bands, bands, dtype=torch.float64, device=device)
        self.scratch = Scratch()

    def _cpu(self, x: torch.Tensor) -> bool:
        return self.device.type == "cpu" and x.device.type == "cpu"

    def update(self, x: torch.Tensor) -> None:
        """x: (B, n) valid pixel vectors, bands first (as they lie in a (B, H, W) cube)."""
        self._add(x, 1)

    def remove(self, x: torch.Tensor) -> None:
        """Take pixels that ``update`` saw out of the statistics again (the trimmed RX: 1% of the pixels,
        so this is far cheaper than a new pass over the other 99%; float64 sums, no cancellation to fear)."""
        self._add(x, -1)

    def _add(self, x: torch.Tensor, sign: int) -> None:
        if x.shape[1] == 0:
            return
        self.n += sign * x.shape[1]
        if not self._cpu(x):
            d = x.to(self.device, torch.float64, copy=True)  # centred in place: never the caller's cube
            if self.shift is None:
                # shifting by a rough mean avoids the catastrophic cancellation of E[xxᵀ] − μμᵀ
                self.shift = d.mean(1)
            d -= self.shift[:, None]
            self.s1.add_(d.sum(1), alpha=sign)
            self.s2.addmm_(d, d.T, alpha=sign)
            return
        xs = x.numpy()
        # x − shift in float64 into a scratch array kept from block to block (a fresh 20–60 MB array per block
        # costs its page faults every time), never the caller's cube
        d = self.scratch.get(xs.shape)
        if self.shift is None:
            np.copyto(d, xs)
            self.shift = torch.from_numpy(d.mean(1))
            d -= self.shift.numpy()[:, None]
        else:  # the cast and the subtraction in one pass
            np.subtract(xs, self.shift.numpy()[:, None], out=d)
        s1, s2 = self.s1.numpy(), self.s2.numpy()  # the tensors' own memory
        # d @ d.T is BLAS's syrk in NumPy (the symmetric rank-k update: half the multiply-adds of a general
        # product; the covariance was a third of plain RX's time)
        if sign > 0:
            s1 += d.sum(1)
            s2 += np.dot(d, d.T)
        else:
            s1 -= d.sum(1)
            s2 -= np.dot(d, d.T)

    def finalize(self, feedback: Optional[Feedback] = None) -> RxModel:
        if self.n < 2:
            raise InputError(f"RX needs at least 2 valid pixels to estimate a covariance; got {self.n}")
        m = self.s1 / self.n
        # unbiased (n − 1), as np.cov in the authors' RX, so scores match theirs, not only rankings
        cov = (self.s2 - self.n * torch.outer(m, m)) / (self.n - 1)
        cov = 0.5 * (cov + cov.T)
        return rx_model_from_covariance(self.shift + m, cov, self.n, feedback)


def rx_model_from_covariance(mean, cov, n, feedback=None) -> RxModel:
    bands = cov.shape[0]
    evals, evecs = _eigh(cov)
    lmax = float(evals[-1])
    if not lmax > 0:
        raise InputError("the selected bands have zero variance over the valid pixels: RX is undefined")
    # the pseudo-inverse cut-off numpy uses for Hermitian matrices (B·eps·λmax)
    tol = lmax * bands * np.finfo(np.float64).eps
    keep = evals > tol
    rank = int(keep.sum())
    cond = lmax / float(evals[keep][0])
    if feedback is not None:
        if rank < bands:
            feedback.warn(
                f"the band covariance is singular (rank {rank} of {bands}"
                + (f"; only {n} valid pixels" if n <= bands else "; duplicate or linearly dependent bands")
                + "): RX uses its pseudo-inverse, i.e. scores within the data's "
                f"{rank}-dimensional subspace. Using fewer bands gives a better-posed detector.")
        elif cond > ILL_CONDITIONED:
            feedback.warn(f"the band covariance is ill-conditioned (condition number {cond:.2g}); "
                          "scores of nearly collinear bands are dominated by noise.")
    whitening = evecs[:, keep] / torch.sqrt(evals[keep])
    return RxModel(mean=mean, whitening=whitening, rank=rank, condition=cond, n=n)


def _eigh(cov: torch.Tensor) -> tuple:
    """Eigenvalues (ascending) and eigenvectors of the symmetric B×B covariance. On the CPU through NumPy's
    LAPACK: torch's (MKL) runs its first syevd of a process on every thread, and on a shared or busy CPU
    that first call took 1.7–2.4 s for a 200×200 matrix (a barrier per step waits for a thread the
    scheduler has put aside), more than the rest of RX; NumPy's takes ~10 ms every time."""
    if cov.device.type == "cpu":
        w, v = np.linalg.eigh(cov.numpy())
        return torch.from_numpy(w), torch.from_numpy(v)
    return torch.linalg.eigh(cov)


def rx_scores_from_model(model: RxModel, x: torch.Tensor, scratch: Optional[tuple] = None) -> torch.Tensor:
    """(B, n) pixel vectors, bands first → (n,) Mahalanobis distances (float64).

    On the CPU through NumPy (the same float64 products and sums, the same scores bit for bit here): torch's
    OpenMP threads meet at a barrier in every operation of every block, and on a shared CPU one of them is
    often waiting for the scheduler; plain RX at 512²×200 took 4.0–4.9 s with torch's scoring and
    2.5–2.9 s with NumPy's on this loaded 2-core machine. ``scratch``: two ``Scratch`` arrays for the centred
    pixels and their whitened coordinates, kept across blocks (no fresh pages per block)."""
    if x.device.type == "cpu" and model.mean.device.type == "cpu":
        xs = x.numpy()
        w = model.whitening.numpy()
        if scratch is None:
            scratch = (Scratch(), Scratch())
        d = scratch[0].get(xs.shape)
        np.subtract(xs, model.mean.numpy()[:, None], out=d)  # float32 → float64, then centred: never in place
        y = np.matmul(w.T, d, out=scratch[1].get((w.shape[1], d.shape[1])))
        return torch.from_numpy(np.einsum("ij,ij->j", y, y))
    d = x.to(model.mean.device, torch.float64, copy=True)  # centred in place: never the caller's cube
    d -= model.mean[:, None]
    y = model.whitening.T @ d
    return (y * y).sum(0)


def _row_blocks(height: int, width: int, bands: int, budget_bytes: int) -> Iterable[slice]:
    rows = max(1, budget_bytes // max(1, width * bands * 8 * 3))
    for r0 in range(0, height, rows):
        yield slice(r0, min(height, r0 + rows))


def check_trim(trim: float) -> float:
    trim = float(trim)
    if not 0.0 <= trim < 0.5:
        raise InputError(f"the RX trim must be a fraction of the pixels in [0, 0.5), got {trim:g} "
                         "(0 = the SPEC's plain RX; 0.01 drops the top 1% from the background statistics)")
    return trim


def rx(cube: np.ndarray, valid: np.ndarray, device: str = "cpu", feedback: Optional[Feedback] = None,
       block_bytes: int = 64 << 20, trim: float = 0.0) -> tuple:
    """RX scores of a (B, H, W) cube over its valid pixels.

    Returns ``(scores float32 (H, W) with NaN at invalid pixels, RxModel)``. Two passes
    over row blocks: statistics, then scores; each block is at most ``block_bytes``
    of float64 working memory. ``trim`` > 0: trimmed RX (module docstring), one more scoring pass.
    """
    feedback = feedback or Feedback()
    trim = check_trim(trim)
    dev = torch.device(device)
    bands, height, width = cube.shape
    if not valid.any():
        raise InputError("every pixel is nodata (or NaN/Inf): nothing to detect")
    blocks = list(_row_blocks(height, width, bands, block_bytes))
    rounds = 2 if trim > 0 else 1
    # what each pass is, for the progress text: the trimmed RX's second pass is not a repeat of the first
    passes = (["RX, first pass", f"RX, second pass without the top {trim * 100:g}% of the first"] if rounds == 2
              else ["RX"])

    def pixels(rs, mask):
        """(B, n) pixels of a row block where ``mask`` holds (a view when it holds everywhere), and the mask.
        NumPy's indexing, not torch's: no torch thread is woken inside RX's loops (``RxStats``)."""
        x = cube[:, rs].reshape(bands, -1)
        m = mask[rs].reshape(-1)
        return (torch.from_numpy(x), None) if m.all() else (torch.from_numpy(x[:, m]), m)

    valid = np.asarray(valid, dtype=bool)
    out = np.full((height, width), np.nan, dtype=np.float32)
    with torch.inference_mode():
        stats = RxStats(bands, dev)
        scratch = (stats.scratch, Scratch())  # the statistics' centred block and the scores' share one array
        for r in range(rounds):
            base, share = r / rounds, 1 / rounds
            if r:
                # the pixels the first pass scored highest leave the background statistics
                cut = np.quantile(out[valid], 1.0 - trim)
                outliers = valid & (out > cut)
                feedback.info(f"trimmed RX: the {int(outliers.sum())} pixels the first pass scored highest (the top "
                              f"{trim * 100:g}%) leave the background mean and covariance; every pixel is scored again")
            for i, rs in enumerate(blocks):
                feedback.check()
                if r:
                    stats.remove(pixels(rs, outliers)[0])
                else:
                    stats.update(pixels(rs, valid)[0])
                feedback.progress(base + share * 0.5 * (i + 1) / len(blocks), f"{passes[r]}: statistics")
            model = stats.finalize(feedback if r == rounds - 1 else None)
            for i, rs in enumerate(blocks):
                feedback.check()
                x, m = pixels(rs, valid)
                scores = rx_scores_from_model(model, x, scratch).cpu().numpy().astype(np.float32)
                if m is None:
                    out[rs] = scores.reshape(-1, width)
                else:
                    block = out[rs].reshape(-1)
                    block[m] = scores
                    out[rs] = block.reshape(-1, width)
                feedback.progress(base + share * (0.5 + 0.5 * (i + 1) / len(blocks)), f"{passes[r]}: scores")
    return out, model
