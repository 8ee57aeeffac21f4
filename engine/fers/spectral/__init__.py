"""Stage 1 of FERS, the spectral branch: FERD training network, Spe-FEN and its loss (SPEC §1)."""
from .loss import ferd_loss, loss_mse, loss_sim, loss_z
from .model import (CWL, FPL, MFFM, PAD, ZCL, Decoder, DeCWL, FERDNet, FERDOutput, SpeFEN, SpeFENEnsemble,
                    fpl_hidden, load_reference_spefen)

__all__ = [
    "CWL", "FPL", "MFFM", "PAD", "ZCL", "Decoder", "DeCWL", "FERDNet", "FERDOutput", "SpeFEN", "SpeFENEnsemble",
    "fpl_hidden", "load_reference_spefen", "ferd_loss", "loss_mse", "loss_sim", "loss_z",
]
