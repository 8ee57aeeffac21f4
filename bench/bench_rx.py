"""RX speed: the engine's streaming float64 RX vs a straightforward per-pixel NumPy RX, same data, same run.

Prints seconds for each and the ratio, plus the max relative score difference, and the seconds of the
trimmed RX (the default with a model: two more passes) on the same cube.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import real_mosaic, timed  # noqa: E402

from fers.detect.rx import DEFAULT_TRIM, rx  # noqa: E402


def numpy_per_pixel_rx(cube):
    b, h, w = cube.shape
    x = cube.reshape(b, -1).T.astype(np.float64)
    mu = x.mean(0)
    inv = np.linalg.pinv(np.cov(x, rowvar=False))
    z = x - mu
    out = np.empty(len(z))
    for i in range(len(z)):  # the reference implementation's loop
        out[i] = z[i] @ inv @ z[i]
    return out.reshape(h, w)


def main():
    size, bands = int(os.environ.get("BENCH_SIZE", 512)), int(os.environ.get("BENCH_BANDS", 200))
    cube = real_mosaic(size, bands)
    valid = np.ones((size, size), bool)
    print(f"RX on a {size}×{size}×{bands} float32 cube (real ABU tiles), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    t_engine, (s_engine, _) = timed(lambda: rx(cube, valid, device="cpu"), repeat=3)
    t_trim, _ = timed(lambda: rx(cube, valid, device="cpu", trim=DEFAULT_TRIM), repeat=3)
    t_numpy, s_numpy = timed(lambda: numpy_per_pixel_rx(cube))
    rel = float(np.max(np.abs(s_engine - s_numpy) / np.maximum(np.abs(s_numpy), 1e-12)))
    print(f"{'engine RX (streaming, float64)':<36}{t_engine:8.3f} s")
    print(f"{'per-pixel NumPy RX (pinv, loop)':<36}{t_numpy:8.3f} s")
    print(f"{'speed-up':<36}{t_numpy / t_engine:8.1f} ×")
    print(f"{'max relative score difference':<36}{rel:8.1e}")
    print(f"{f'engine RX trimmed {DEFAULT_TRIM:g}':<36}{t_trim:8.3f} s ({t_trim / t_engine:.2f} × plain)")


if __name__ == "__main__":
    main()
