"""Stage-2 loss, the "rebellious student" objective (SPEC §2, paper Eq. 10–16).

    L = L_cc + 0.1·L_cos + 0.1·L_var + λ_recon·(L_mse + 0.01·L_ssim),  λ_recon = 1

The first three terms decouple F_spa from the teacher's F_spe (no linear
cross-correlation, no per-pixel alignment) while keeping F_spa alive (unit
variance per channel, small magnitude); the reconstruction terms make F_spe + F_spa
still describe the scene through the FRN.

Matches the authors' ``losses/losses.py`` and ``train.py`` (kornia's SSIMLoss(5)):

* standard deviations and variances are the unbiased ones (torch's default
  ``std``/``var``, correction 1), as in the reference;
* SSIM: 5×5 Gaussian window with σ = 1.5, C1 = (0.01·L)², C2 = (0.03·L)² with
  data range L = 1.0 (kornia's default ``max_val``, although the scaled cubes
  span only [−0.1, 0.1], which makes the constants dominate; kept as the
  reference), reflect padding ("same" size), ε = 1e-12 added to the denominator,
  loss = mean of clamp((1 − SSIM)/2, 0, 1) over every pixel, channel and sample.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

W_COS = 0.1
W_VAR = 0.1
W_SSIM = 0.01
LAMBDA_RECON = 1.0
STD_EPS = 1e-6
SSIM_WINDOW = 5
SSIM_SIGMA = 1.5
SSIM_MAX_VAL = 1.0
SSIM_EPS = 1e-12


def _standardise(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) → (N, C, H·W), each channel zero-mean, unit-std over batch and pixels (+1e-6 on the std)."""
    x = x.reshape(x.shape[0], x.shape[1], -1)
    return (x - x.mean(dim=(0, 2), keepdim=True)) / (x.std(dim=(0, 2), keepdim=True) + STD_EPS)


def loss_cc(f_spe: torch.Tensor, f_spa: torch.Tensor) -> torch.Tensor:
    """Eq. 11–12: ‖Cmat‖_F² with Cmat = Σ_n X_n Y_nᵀ / (N·H·W) of the standardised features (C×C).

    Cmat[i, j] is (close to) the Pearson correlation of teacher channel i and
    student channel j over all pixels of the batch; driving every entry to zero
    removes any linear redundancy between the branches.
    """
    a, b = _standardise(f_spe), _standardise(f_spa)
    n, _, pixels = a.shape
    cmat = torch.einsum("nik,njk->ij", a, b) / (n * pixels)
    return cmat.pow(2).sum()


def loss_cos(f_spe: torch.Tensor, f_spa: torch.Tensor) -> torch.Tensor:
    """Eq. 13: 1 + mean over batch and pixels of cos(F_spe(p), F_spa(p)) along channels.

    Both features are non-negative (ReLU outputs), so cos ∈ [0, 1] and the term is
    minimal (1) when the two branches use disjoint channels at every pixel.
    """
    return 1.0 + F.cosine_similarity(f_spe, f_spa, dim=1).mean()


def loss_var(f_spa: torch.Tensor, target: float = 1.0) -> torch.Tensor:
    """Eq. 14: mean_k relu(1 − Var_k) + mean|F_spa|.

    Var_k is channel k's variance over the pixels of each sample, averaged over the
    batch: it forbids the trivial decorrelated solution F_spa = constant, while the
    L1 term keeps the magnitude of F_spa (added to the cube at detection) small.
    """
    var = f_spa.reshape(f_spa.shape[0], f_spa.shape[1], -1).var(dim=2).mean(dim=0)
    return F.relu(target - var).mean() + f_spa.abs().mean()


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian taps centred on the middle tap (kornia's get_gaussian_kernel1d, odd size)."""
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-x.pow(2) / (2.0 * sigma ** 2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA,
         max_val: float = SSIM_MAX_VAL, eps: float = SSIM_EPS) -> torch.Tensor:
    """SSIM index map (N, C, H, W) of two (N, C, H, W) images, per channel, Gaussian-weighted local statistics.

    SSIM = (2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2) + ε) with the
    local moments from a separable Gaussian filter over reflect-padded images.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"SSIM needs two (N, C, H, W) tensors of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    n, c, h, w = x.shape
    g = gaussian_window(window, sigma, x.dtype, x.device)
    pad = window // 2
    # the five moment maps are filtered in one depthwise pass each way
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    stack = F.pad(stack, (pad, pad, pad, pad), mode="reflect")
    k = stack.shape[1]
    stack = F.conv2d(stack, g.view(1, 1, 1, window).expand(k, 1, 1, window), groups=k)
    stack = F.conv2d(stack, g.view(1, 1, window, 1).expand(k, 1, window, 1), groups=k)
    mu_x, mu_y, e_xx, e_yy, e_xy = stack.split(c, dim=1)
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    var_x, var_y, cov = e_xx - mu_x * mu_x, e_yy - mu_y * mu_y, e_xy - mu_x * mu_y
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return num / (den + eps)


def loss_ssim(h: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """Reference form (kornia SSIMLoss(5)): mean of clamp((1 − SSIM(H, Ĥ))/2, 0, 1); the paper writes 1 − SSIM."""
    return torch.clamp((1.0 - ssim(recon, h)) / 2.0, 0.0, 1.0).mean()


def loss_mse(h: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """mean((H − Ĥ)²) over every element."""
    return F.mse_loss(recon, h)


def fers_loss(f_spe: torch.Tensor, f_spa: torch.Tensor, h: torch.Tensor, recon: torch.Tensor,
              lambda_recon: float = LAMBDA_RECON) -> Tuple[torch.Tensor, dict]:
    """``(total, {"cc", "cos", "var", "mse", "ssim"})``; the parts are floats for logging."""
    cc = loss_cc(f_spe, f_spa)
    cos = loss_cos(f_spe, f_spa)
    var = loss_var(f_spa)
    mse = loss_mse(h, recon)
    ss = loss_ssim(h, recon)
    total = cc + W_COS * cos + W_VAR * var + lambda_recon * (mse + W_SSIM * ss)
    parts = {"cc": cc, "cos": cos, "var": var, "mse": mse, "ssim": ss}
    return total, {k: float(v.detach()) for k, v in parts.items()}


__all__ = ["loss_cc", "loss_cos", "loss_var", "gaussian_window", "ssim", "loss_ssim", "loss_mse", "fers_loss"]
