"""FERD stage-1 loss (SPEC §1, paper Eq. 1–3): L = L_sim + 0.1·L_mse + 0.1·L_Z."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

W_MSE = 0.1
W_Z = 0.1


def loss_sim(f_e: Sequence[torch.Tensor], g_d: Sequence[torch.Tensor]) -> torch.Tensor:
    """Σ over scales of mean over the batch of 1 − cos(f_E^i[n], g_D^i[n]).

    Each sample's whole map is flattened into one vector (RD4AD's loss_function):
    the student is asked to reproduce the teacher's features as a whole scene
    pattern, not pixel by pixel.
    """
    if len(f_e) != len(g_d):
        raise ValueError(f"L_sim needs as many decoder maps as encoder maps ({len(g_d)} vs {len(f_e)})")
    total = f_e[0].new_zeros(())
    for a, b in zip(f_e, g_d):
        total = total + (1.0 - F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)).mean()
    return total


def loss_mse(h: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """mean((H − Ĥ)²) over every element."""
    return F.mse_loss(recon, h)


def loss_z(logits: torch.Tensor) -> torch.Tensor:
    """−mean log(1 − sigmoid(o)): BCE against all-zero labels, in the numerically stable logits form."""
    return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))


def ferd_loss(out, h: torch.Tensor, w_mse: float = W_MSE, w_z: float = W_Z) -> tuple:
    """``(total, {"sim", "mse", "z"})`` for a FERDOutput and the input cube; the parts are floats for logging."""
    sim = loss_sim(out.f_E, out.g_D)
    mse = loss_mse(h, out.recon)
    z = loss_z(out.zcl_logits)
    total = sim + w_mse * mse + w_z * z
    return total, {"sim": float(sim.detach()), "mse": float(mse.detach()), "z": float(z.detach())}
