"""Helpers shared by the benchmark scripts (not part of the engine)."""
import os
import resource
import subprocess
import time

import numpy as np
import scipy.io

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("FERS_DATA") or os.path.abspath(os.path.join(REPO, "..", "shared", "data"))


def real_mosaic(size: int, bands: int, names=("abu-airport-1", "abu-airport-2", "abu-urban-4", "abu-urban-5")):
    """A size×size×bands (B, H, W) float32 cube tiled from real ABU scenes (flipped so tiles differ)."""
    tiles = []
    for n in names:
        d = scipy.io.loadmat(os.path.join(DATA, "raw", n + ".mat"))["data"][:, :, :bands].astype(np.float32)
        tiles += [d, d[::-1], d[:, ::-1], d[::-1, ::-1]]
    th, tw = tiles[0].shape[:2]
    out = np.empty((bands, size, size), np.float32)
    k = 0
    for r in range(0, size, th):
        for c in range(0, size, tw):
            t = tiles[k % len(tiles)]
            k += 1
            h, w = min(th, size - r), min(tw, size - c)
            out[:, r:r + h, c:c + w] = np.moveaxis(t[:h, :w], 2, 0)
    return out


def timed(fn, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def mirror_has(mirror: str, path: str) -> bool:
    """Whether the git mirror (a bare repository) holds ``path`` at HEAD; the benches that run other authors'
    code (authors.py, autoad_reference.py) take it out of such a mirror at run time, never committing it."""
    r = subprocess.run(["git", "--git-dir", mirror, "cat-file", "-e", f"HEAD:{path}"], capture_output=True)
    return os.path.isdir(mirror) and r.returncode == 0


def mirror_archive(mirror: str, files, into: str) -> str:
    """``files`` out of the mirror's HEAD into the folder ``into`` (git archive | tar -x); HEAD's short commit."""
    arch = subprocess.Popen(["git", "--git-dir", mirror, "archive", "HEAD", *files], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", into], stdin=arch.stdout, check=True)
    if arch.wait() != 0:
        raise SystemExit(f"git archive of {mirror} failed")
    head = subprocess.run(["git", "--git-dir", mirror, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return head.stdout.strip()
