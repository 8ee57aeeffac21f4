"""The classic anomaly detectors analysts compare with (SPEC §3, "Classic detectors").

ENVI's RX Anomaly Detection offers three of them (Chang & Chiang, IEEE TGRS 2002), each with the
background mean μ taken from the whole scene or from a local window around the pixel, and one global
covariance K:

    RXD      (r − μ)ᵀ K⁺ (r − μ)        the RX of fers.detect.rx
    UTD      (1 − μ)ᵀ K⁺ (r − μ)        uniform target detector, 1 the all-ones vector
    RXD-UTD  (r − 1)ᵀ K⁺ (r − μ)

Spectral Python's ``spectral.rx(..., window=(inner, outer))`` is the local dual-window RX: μ and K both
from the pixels of an outer window around each pixel less an inner guard window.

Why these shapes of computation:
- Every global detector is one whitening: with K⁺ = W Wᵀ (the pseudo-inverse the RX already builds),
  y = Wᵀr, and each score is a dot product of whitened vectors, so the three share fers.detect.rx's
  streaming statistics and cost one more pass than the mean and covariance.
- A local mean is a box filter of the whitened cube (Wᵀμ_p is the local mean of y), computed band by band
  with scipy.ndimage.uniform_filter over the valid pixels only (sum of valid / count of valid), never a
  per-pixel Python loop.
- The dual-window RX needs one covariance per pixel. Its window sums of x·xᵀ are kept per column while the
  window slides down the rows (add the row entering, subtract the row leaving) and summed across columns by
  cumulative sums; each pixel then solves its own B×B system, batched over a row chunk (LU, as np.linalg;
  the pseudo-inverse where a ring has no more valid pixels than bands). That B³ per pixel is the price of
  the method itself (Spectral Python pays it too, one np.linalg.inv per pixel); it is why analysts run it
  on few bands.

UTD and RXD-UTD are not affine-invariant (1 is a point of the data space): they see the cube min-max scaled
to [0, 1] over its valid pixels, as SPEC §3 scales the detector's input; RX-type scores do not depend on it.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from ..errors import InputError
from ..feedback import Feedback
from .rx import RxStats, _row_blocks

CLASSIC = ("utd", "rxd-utd", "rx-dual")
DEFAULT_WINDOW = (3, 15)  # inner guard, outer window (pixels, odd): 15² − 3² = 216 background pixels


def check_window(window) -> Tuple[int, int]:
    inner, outer = (int(v) for v in window)
    if inner < 1 or outer < 3 or inner % 2 == 0 or outer % 2 == 0 or inner >= outer:
        raise InputError(f"the dual window must be two odd sizes in pixels, inner ≥ 1 < outer ≥ 3; got {inner} {outer}")
    return inner, outer


def check_local_mean(size: int) -> int:
    size = int(size)
    if size != 0 and (size < 3 or size % 2 == 0):
        raise InputError(f"the local-mean window must be an odd size of at least 3 pixels (0 = global mean); got {size}")
    return size


def _unit_scale(cube: np.ndarray, valid: np.ndarray) -> Tuple[float, float]:
    """(lo, span) of the global min-max scaling to [0, 1] over the valid pixels."""
    lo, hi = np.inf, -np.inf
    for b in range(cube.shape[0]):
        v = cube[b][valid]
        lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
    return lo, (hi - lo) or 1.0


def _local_means(y: np.ndarray, valid: np.ndarray, size: int) -> np.ndarray:
    """Mean of each band of ``y`` (k, H, W) over the valid pixels of a size×size window (clipped at the
    edges), a new array. A pixel whose window holds no other valid pixel keeps its own value."""
    from scipy.ndimage import uniform_filter

    v = valid.astype(np.float64)
    count = uniform_filter(v, size, mode="constant", cval=0.0)
    out = np.empty_like(y)
    for b in range(y.shape[0]):
        s = uniform_filter(np.where(valid, y[b], 0.0).astype(np.float64), size, mode="constant", cval=0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[b] = np.where(count > 0, s / np.maximum(count, 1e-300), y[b])
    return out


def _scores(detector: str, y: np.ndarray, mean_y: np.ndarray, one_y: np.ndarray) -> np.ndarray:
    """Each column's score from its whitened vector ``y`` (r, n) and whitened background mean ``mean_y``
    ((r, n), or (r, 1) for the global mean)."""
    d = y - mean_y  # whitened r − μ
    if detector == "rx":
        return np.einsum("kn,kn->n", d, d)
    if detector == "utd":
        return np.einsum("kn,kn->n", one_y[:, None] - mean_y, d)
    return np.einsum("kn,kn->n", y - one_y[:, None], d)


def global_scores(cube: np.ndarray, valid: np.ndarray, detector: str, local_mean: int = 0, device: str = "cpu",
                  feedback: Optional[Feedback] = None, block_bytes: int = 64 << 20) -> tuple:
    """RXD / UTD / RXD-UTD with one global covariance and a global or local (``local_mean`` pixels) mean.

    Streamed like fers.detect.rx: one pass over row blocks for the mean and covariance, one to score; each
    block is whitened, its local means (if any) taken from it and ``local_mean // 2`` rows above and below it
    (the box filter's reach), scored, and dropped, so the working memory is a few blocks whatever the raster's
    size. Returns (scores float32 (H, W), NaN where invalid; RxModel)."""
    feedback = feedback or Feedback()
    if detector not in ("rx", "utd", "rxd-utd"):
        raise InputError(f"unknown global detector '{detector}'")
    local_mean = check_local_mean(local_mean)
    valid = np.asarray(valid, dtype=bool)
    if not valid.any():
        raise InputError("every pixel is nodata (or NaN/Inf): nothing to detect")
    bands, height, width = cube.shape
    dev = torch.device(device)
    cpu = dev.type == "cpu"
    lo, span = _unit_scale(cube, valid) if detector != "rx" else (0.0, 1.0)
    blocks = list(_row_blocks(height, width, bands, block_bytes))
    half = local_mean // 2
    if half:  # blocks of at least 4 halos, so that the halo rows whitened twice stay a small share of the work
        rows = max(blocks[0].stop - blocks[0].start, 4 * half)
        blocks = [slice(r0, min(height, r0 + rows)) for r0 in range(0, height, rows)]

    def pixels(rs, mask=None):
        """(B, n) float64 pixels of a row block (those where ``mask`` holds), scaled as the detector sees them.
        NumPy's on the CPU, as in fers.detect.rx: a torch operation inside these loops wakes torch's OpenMP
        threads, which keep spinning and take a core from the BLAS threads of the products around them."""
        x = cube[:, rs].reshape(bands, -1)
        if mask is not None:
            m = mask[rs].reshape(-1)
            if not m.all():
                x = x[:, m]
        if cpu:
            d = np.subtract(x, lo, dtype=np.float64)  # a float64 copy: never the caller's cube
            if span != 1.0:
                d /= span
            return d
        return (torch.from_numpy(x).to(dev, torch.float64) - lo) / span

    out = np.full((height, width), np.nan, dtype=np.float32)
    with torch.inference_mode():
        stats = RxStats(bands, dev)
        for i, rs in enumerate(blocks):
            feedback.check()
            x = pixels(rs, valid)
            stats.update(torch.from_numpy(x) if cpu else x)
            feedback.progress(0.5 * (i + 1) / len(blocks), "background mean and covariance")
        model = stats.finalize(feedback)
        w_t = np.ascontiguousarray(model.whitening.cpu().numpy().T)  # (r, B): K⁺ = W Wᵀ, y = Wᵀ r
        w_dev = None if cpu else model.whitening.T.contiguous()
        mu_y = (w_t @ model.mean.cpu().numpy())[:, None]  # whitened global mean
        one_y = w_t @ np.ones(bands)
        for i, rs in enumerate(blocks):
            feedback.check()
            # the rows the local means of this block reach (none beyond the block for the global mean)
            ext = slice(max(0, rs.start - half), min(height, rs.stop + half))
            x = pixels(ext)
            y = w_t @ x if cpu else (w_dev @ x).cpu().numpy()
            if half:
                top, n_rows = rs.start - ext.start, rs.stop - rs.start
                y = y.reshape(-1, ext.stop - ext.start, width)
                mean_y = _local_means(y, valid[ext], local_mean)[:, top:top + n_rows].reshape(y.shape[0], -1)
                y = y[:, top:top + n_rows].reshape(y.shape[0], -1)
            else:
                mean_y = mu_y
            out[rs] = _scores(detector, y, mean_y, one_y).reshape(-1, width)
            feedback.progress(0.5 + 0.5 * (i + 1) / len(blocks), "scores")
    out[~valid] = np.nan
    return out, model


COLUMN_CHUNK = 128  # pixels of a row whose B×B systems are formed and solved at once


def dual_window_bytes(bands: int, width: int) -> float:
    """Working memory of ``dual_window_scores`` beyond the cube: per-column sums of x·xᵀ for the outer and the
    inner window, their cumulative sums across the row and one row's x·xᵀ (float64), plus one chunk's systems."""
    return 8.0 * bands * bands * (5 * (width + 1) + 3 * min(width, COLUMN_CHUNK))


def dual_window_scores(cube: np.ndarray, valid: np.ndarray, window=DEFAULT_WINDOW, device: str = "cpu",
                       feedback: Optional[Feedback] = None) -> np.ndarray:
    """Local dual-window RX: each pixel's μ and K (unbiased, as np.cov) from the valid pixels of the outer
    window less the inner one (near the edges both windows shift to stay whole inside the image, as Spectral
    Python's do, so every ring holds outer² − inner² pixels). Returns scores float32 (H, W), NaN where invalid or where
    the ring holds fewer than 2 valid pixels."""
    feedback = feedback or Feedback()
    inner, outer = check_window(window)
    if outer * outer - inner * inner <= cube.shape[0]:
        raise InputError(f"a {inner}/{outer} window's ring holds {outer * outer - inner * inner} pixels, no more than "
                         f"the {cube.shape[0]} bands: its covariance is singular; use a larger outer window (at "
                         f"least {int(np.ceil(np.sqrt(cube.shape[0] + 1 + inner * inner))) | 1}) or fewer bands")
    if not valid.any():
        raise InputError("every pixel is nodata (or NaN/Inf): nothing to detect")
    bands, height, width = cube.shape
    dev = torch.device(device)
    ri, ro = inner // 2, outer // 2
    x = torch.from_numpy(cube)
    v = torch.from_numpy(valid)
    out = np.full((height, width), np.nan, dtype=np.float32)

    def row_terms(r):
        """Per column: count, Σx, Σxxᵀ of row r's valid pixels (float64)."""
        vr = v[r].to(dev)
        xr = torch.where(vr[:, None], x[:, r, :].to(dev, torch.float64).T, 0.0)  # (W, B); NaN/nodata → 0
        return vr.to(torch.float64), xr, xr[:, :, None] * xr[:, None, :]

    def span(p, half, size, shift):
        """[lo, hi) of a window of 2·half + 1 around p on an axis of ``size``: shifted to stay whole inside
        the image (as Spectral Python does both windows, so every ring holds outer² − inner² pixels), or
        clipped."""
        if shift:
            lo = min(max(0, p - half), max(0, size - (2 * half + 1)))
            return lo, min(size, lo + 2 * half + 1)
        return max(0, p - half), min(size, p + half + 1)

    def window_rows(half, shift, sums, rows_in, r):
        """Slide the per-column sums to the rows of the window around row r."""
        want = set(range(*span(r, half, height, shift)))
        for q in sorted(rows_in - want):
            c, s1, s2 = row_terms(q)
            sums[0] -= c
            sums[1] -= s1
            sums[2] -= s2
        for q in sorted(want - rows_in):
            c, s1, s2 = row_terms(q)
            sums[0] += c
            sums[1] += s1
            sums[2] += s2
        return want

    def cumulative(col_sums):
        """Cumulative sums across the row of per-column sums (first axis), with a leading zero."""
        return torch.cumsum(torch.cat([torch.zeros_like(col_sums[:1]), col_sums]), 0)

    def across(cs, half, shift, cols):
        """Sums over the columns of the window around each column of ``cols``."""
        if shift:
            lo = torch.clamp(torch.clamp(cols - half, min=0), max=max(0, width - (2 * half + 1)))
            return cs[torch.clamp(lo + 2 * half + 1, max=width)] - cs[lo]
        return cs[torch.clamp(cols + half + 1, max=width)] - cs[torch.clamp(cols - half, min=0)]

    def zeros():
        return [torch.zeros(width, dtype=torch.float64, device=dev),
                torch.zeros(width, bands, dtype=torch.float64, device=dev),
                torch.zeros(width, bands, bands, dtype=torch.float64, device=dev)]

    so, si = zeros(), zeros()
    rows_o, rows_i = set(), set()
    with torch.inference_mode():
        for r in range(height):
            feedback.check()
            rows_o = window_rows(ro, True, so, rows_o, r)
            rows_i = window_rows(ri, True, si, rows_i, r)
            valid_cols = torch.nonzero(v[r]).flatten().to(dev)
            if len(valid_cols):
                cso, csi = [cumulative(t_) for t_ in so], [cumulative(t_) for t_ in si]
            for c0 in range(0, len(valid_cols), COLUMN_CHUNK):
                cols = valid_cols[c0:c0 + COLUMN_CHUNK]
                n, s1, s2 = (across(cso[j], ro, True, cols) - across(csi[j], ri, True, cols) for j in range(3))
                ok = n >= 2
                m = s1 / n.clamp(min=1)[:, None]
                k = (s2 - n[:, None, None] * m[:, :, None] * m[:, None, :]) / (n - 1).clamp(min=1)[:, None, None]
                k = 0.5 * (k + k.transpose(1, 2))
                d = x[:, r, :].to(dev, torch.float64).T[cols] - m
                # LU, not Cholesky: a ring of a few hundred pixels of 200 correlated bands gives a K that is
                # positive definite in theory and often not in float64; np.linalg (Spectral Python) solves it
                sol, info = torch.linalg.solve_ex(k, d)
                # a ring of no more valid pixels than bands (nodata around, an image smaller than the window) has
                # a singular K by construction: its pseudo-inverse, as numpy's pinv, not a factorisation of noise
                bad = (info != 0) | (n <= bands)
                if bool(bad.any()):
                    sol[bad] = (torch.linalg.pinv(k[bad], hermitian=True) @ d[bad][:, :, None])[:, :, 0]
                s = (d * sol).sum(1)
                s[~ok] = float("nan")
                out[r, cols.cpu().numpy()] = s.cpu().numpy().astype(np.float32)
            if len(valid_cols):
                del cso, csi
            feedback.progress((r + 1) / height, "dual-window RX")
    return out
