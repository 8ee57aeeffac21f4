"""Training: background patch sampling, a shared trainer loop, stage 1 (Spe-FEN) and stage 2 (Spa-FEN)."""
