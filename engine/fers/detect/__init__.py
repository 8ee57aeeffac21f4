"""Training-free detectors that score an (enhanced) cube, and the fusion strategies."""


def working_bytes(detector: str, bands: int, height: int, width: int) -> float:
    """What ``detector`` needs beyond the cube and RX's own share (``fers.memory.PEAK``), estimated before the
    cube is read: each detector's module knows its own; those that stream (RX, UTD, local means, AE) need none."""
    if detector == "rx-dual":
        from .classic import dual_window_bytes

        return dual_window_bytes(bands, width)
    if detector == "autoad":
        from .autoad import autoad_bytes

        return autoad_bytes(bands, height, width)
    return 0.0
