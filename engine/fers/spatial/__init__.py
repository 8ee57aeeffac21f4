"""Stage 2 of FERS, the spatial branch: Spa-FEN, the training-only FRN and the stage-2 loss (SPEC §2)."""
from .loss import fers_loss, loss_cc, loss_cos, loss_mse, loss_ssim, loss_var, ssim
from .model import FRN, MIN_SIZE, LightSPP, ResidualBlock, SEBlock, SpaFEN, SpectralCompression, spafen_from_state

__all__ = [
    "FRN", "MIN_SIZE", "LightSPP", "ResidualBlock", "SEBlock", "SpaFEN", "SpectralCompression", "spafen_from_state",
    "fers_loss", "loss_cc", "loss_cos", "loss_mse", "loss_ssim", "loss_var", "ssim",
]
