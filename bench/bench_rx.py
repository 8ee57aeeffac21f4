"""RX speed: the engine's streaming float64 RX vs a straightforward per-pixel NumPy RX, same data, same run.

Prints seconds for each and the ratio, plus the max relative score difference, and the seconds of the
trimmed RX (the default with a model: two more passes) and of every classic detector (UTD, RXD-UTD, the
local-mean variants, the dual-window RX) on the same cube, with the working memory of the global ones. The dual-window RX solves one B×B system per
pixel; BENCH_DUAL_ROWS (default 32) times its first rows of the cube and scales to the whole.

Then the per-scene learners on the same cube: the AE (the product's run: its fixed iteration count, label-free
rule) timed whole; Auto-AD timed over its first BENCH_AUTOAD_ITERATIONS (default 3) iterations, printed per
iteration and as the bound its loss-based stop allows (at most 1001 iterations; it stops earlier when the loss
flattens, which on the 100×100 ABU scenes took ~300-1000). BENCH_LEARNERS=0 skips both.
"""
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import real_mosaic, timed  # noqa: E402

from fers.detect.classic import dual_window_scores, global_scores  # noqa: E402
from fers.errors import Cancelled  # noqa: E402
from fers.feedback import Feedback  # noqa: E402
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
    for name, local in (("utd", 0), ("rxd-utd", 0), ("rx", 9), ("utd", 9), ("rxd-utd", 9)):
        t, _ = timed(lambda: global_scores(cube, valid, name, local_mean=local))
        peak = traced_peak(lambda: global_scores(cube, valid, name, local_mean=local))
        label = f"{name}{f' local mean {local}' if local else ''}"
        print(f"{label:<36}{t:8.3f} s ({t / t_engine:.2f} × RX); working memory {peak / 2 ** 20:.0f} MB "
              f"({peak / cube.nbytes:.2f} × the cube)")
    rows = min(size, int(os.environ.get("BENCH_DUAL_ROWS", 32)))
    t = dual_rows_seconds(cube, valid, rows)
    print(f"{'rx-dual 3/15 (from its first rows)':<36}{t * size / rows:8.3f} s ({t * size / rows / t_engine:.0f} × RX; "
          f"{rows} of {size} rows took {t:.2f} s)")
    if os.environ.get("BENCH_LEARNERS", "1") != "0":
        learners(cube, valid, t_engine)


def traced_peak(fn):
    """Peak bytes ``fn`` allocates beyond what exists when it starts (NumPy reports its arrays to tracemalloc;
    a separate untimed run, as tracing slows it). The classic detectors stream their row blocks: a few blocks'
    worth, not a multiple of the cube."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def learners(cube, valid, t_rx):
    from fers.detect.ae import ITERATIONS, RULE, ae_scores
    from fers.detect.autoad import MAX_ITERATIONS, autoad_scores

    t, _ = timed(lambda: ae_scores(cube, valid, seed=0))
    print(f"{f'ae ({ITERATIONS} iterations, rule {RULE})':<36}{t:8.3f} s ({t / t_rx:.0f} × RX)")
    k = max(1, int(os.environ.get("BENCH_AUTOAD_ITERATIONS", 3)))
    t, (_, info) = timed(lambda: autoad_scores(cube, valid, seed=0, max_iterations=k))
    per = t / k  # the network's construction and the first weighting are counted in: an upper bound
    print(f"{'autoad, per iteration':<36}{per:8.3f} s ({k} iterations took {t:.1f} s; at most {MAX_ITERATIONS} "
          f"iterations: ≤ {per * MAX_ITERATIONS / 60:.0f} min on this machine)")


class _StopAfterRows(Feedback):
    """Cancels the dual-window RX once it has scored ``rows`` rows (it reports one progress step a row)."""

    def __init__(self, rows):
        self.left = rows

    def progress(self, fraction, message=""):
        self.left -= 1

    def cancelled(self):
        return self.left <= 0


def dual_rows_seconds(cube, valid, rows):
    """Seconds of the dual-window RX's first ``rows`` rows of the whole cube (every ring whole: the same
    work per row as anywhere in the image)."""
    t0 = time.perf_counter()
    try:
        dual_window_scores(cube, valid, (3, 15), feedback=_StopAfterRows(rows))
    except Cancelled:
        pass
    return time.perf_counter() - t0

if __name__ == "__main__":
    main()
