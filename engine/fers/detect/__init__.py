"""Training-free detectors that score an (enhanced) cube, and the fusion strategies."""
