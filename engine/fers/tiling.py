"""Tiles for the spectral branch: bounded memory on large rasters, and no seams.

The Spe-FEN (CWL → layer1 → crop → FPL) is local: only layer1's three 3×3 convolutions
see neighbours, a receptive-field radius of 3 pixels, and the whole-image path
reflect-pads the cube by ``PAD`` = 4 pixels first. A tile that carries a halo of
3 pixels — real neighbours inside the image, the same reflection at its borders —
through layer1's convolutions without zero padding (``FusedBottleneck``: each shrinks the
tile by a pixel a side) therefore gives exactly the whole-image features on its pixels:
tiling changes the memory needed, not the map (tests/engine/test_tiling.py checks equality).

The halo is a slice of the cube, reflected only where a tile meets the image's border
(``halo_tile``), rather than a padded copy of the whole cube: no second full-size copy of
the raster is ever made.

The Spa-FEN is global by design (its ResNet-34 sees the whole false-RGB image, its
pyramid pooling and SE gate average over the whole scene); it runs on the whole image,
and its per-pixel parts already go by row blocks (``fers.spatial.model``).
"""
from __future__ import annotations

import math
import weakref
from typing import Iterator, Optional, Tuple

import numpy as np
import torch

from .spectral.model import PAD, _check_cube

# float32 values alive per pixel inside one Spe-FEN tile, besides its C input bands: the CWL output (64),
# a layer1 bottleneck's 128-wide intermediates and its 256-wide output and shortcut, the FPL's hidden and
# output layers, with head-room for the allocator
SPE_FLOATS_PER_PIXEL = 64 + 3 * 128 + 3 * 256 + 256
DEFAULT_MEMORY_MB = 1024
MIN_TILE, MAX_TILE = 32, 4096
# On CPUs small tiles are faster, not only lighter: their activations stay in cache (2-core Xeon,
# 512²×200, channels-last, folded BatchNorm; bench/bench_speed.py: 64 px 2.93 s, 96 px 3.06 s,
# 128 px 2.75 s, 160 px 3.22 s, 256 px 3.41 s, ±0.3 s between runs). GPUs want the largest tile the
# memory budget allows.
CPU_TILE = 128


def spe_tile_size(bands: int, memory_mb: float = DEFAULT_MEMORY_MB, device: str = "cpu") -> int:
    """The tile side to use: the largest whose Spe-FEN working memory fits in ``memory_mb``, and on a CPU
    no more than ``CPU_TILE``."""
    per_pixel = 4 * (SPE_FLOATS_PER_PIXEL + 2 * bands)
    side = int(math.sqrt(max(1.0, memory_mb) * (1 << 20) / per_pixel)) - 2 * PAD
    if not str(device).startswith("cuda"):
        side = min(side, CPU_TILE)
    return int(min(MAX_TILE, max(MIN_TILE, side)))


class FusedBottleneck(torch.nn.Module):
    """An eval-mode bottleneck with each BatchNorm folded into the conv before it: the same function, one
    memory pass less per layer (layer1 is frozen, so its BatchNorm is a fixed affine map). 15 % faster here.

    Its 3×3 conv is a valid one (no zero padding): the output is one pixel smaller on each side, and so is the
    shortcut, cropped before the downsampling 1×1 conv. A tile's border pixels are halo to be cut anyway, so
    layer1 computes only what reaches the tile (5.5 % of its multiply-adds at 128-px tiles) and the same values
    on it: zero padding never reaches a pixel ``radius`` inside the input."""

    def __init__(self, block):
        super().__init__()
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        self.conv1 = fuse_conv_bn_eval(block.conv1, block.bn1)
        self.conv2 = fuse_conv_bn_eval(block.conv2, block.bn2)  # a copy: the model's own conv keeps its padding
        self.shrink = int(self.conv2.padding[0])
        self.conv2.padding = (0, 0)
        self.conv3 = fuse_conv_bn_eval(block.conv3, block.bn3)
        ds = block.downsample
        self.downsample = None if ds is None else fuse_conv_bn_eval(ds[0], ds[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.shrink
        identity = x[:, :, k:x.shape[2] - k, k:x.shape[3] - k] if k else x
        if self.downsample is not None:
            identity = self.downsample(identity)
        out = torch.relu_(self.conv1(x))
        out = torch.relu_(self.conv2(out))
        out = self.conv3(out)
        out += identity
        return torch.relu_(out)


# the folded layer1 of each Spe-FEN in use, built on first use (kept outside the module: not model state)
_FUSED = weakref.WeakKeyDictionary()


def inference_layer1(spe, device) -> torch.nn.Module:
    key = str(device)
    cached = _FUSED.get(spe)
    if cached is None or cached[0] != key:
        layer1 = spe.layer1.eval()
        fused = torch.nn.Sequential(*[FusedBottleneck(b) for b in layer1]).to(device)
        cached = (key, fused.to(memory_format=torch.channels_last).eval())
        _FUSED[spe] = cached
    return cached[1]


def tiles(height: int, width: int, tile: int) -> Iterator[Tuple[int, int, int, int]]:
    for r0 in range(0, height, tile):
        for c0 in range(0, width, tile):
            yield r0, min(height, r0 + tile), c0, min(width, c0 + tile)


def reflect_indices(start: int, stop: int, n: int) -> torch.Tensor:
    """Indices of positions start..stop-1 of an axis of length n, reflected at its ends (as F.pad 'reflect')."""
    idx = np.arange(start, stop)
    idx = np.where(idx < 0, -idx, idx)
    idx = np.where(idx >= n, 2 * (n - 1) - idx, idx)
    return torch.from_numpy(idx)


def halo_tile(cube: torch.Tensor, r0: int, r1: int, c0: int, c1: int, halo: int = PAD) -> torch.Tensor:
    """The (1, C, r1-r0+2·halo, c1-c0+2·halo) channels-last tile of a (C, H, W) cube with its halo, reflected
    where it leaves the image: the same values as ``reflect_indices`` gathers. A slice (a view) and one copy into
    channels-last, padded only at the image's borders: two ``index_select`` passes over a band-major cube cost
    1.7-2.0 s of the Spe-FEN's ~11 s at 512²×200 on one core here, this 0.3-0.5 s (bench/authors.py profile)."""
    height, width = cube.shape[1:]
    top, bottom = max(r0 - halo, 0), min(r1 + halo, height)
    left, right = max(c0 - halo, 0), min(c1 + halo, width)
    x = cube[None, :, top:bottom, left:right]
    # F.pad's 'reflect' mirrors about the edge pixel, as the whole-image path pads; a tile touches the border
    # on a side only where it starts or ends at the image's edge, so the reflection is the image's own
    pads = (left - (c0 - halo), c1 + halo - right, top - (r0 - halo), r1 + halo - bottom)
    if any(pads):
        x = torch.nn.functional.pad(x, pads, mode="reflect")
    return x.contiguous(memory_format=torch.channels_last)


def spefen_tiled(spe, cube: torch.Tensor, tile: int, add_to: Optional[torch.Tensor] = None,
                 feedback=None) -> torch.Tensor:
    """F_spe of a (C, H, W) cube, tile by tile. With ``add_to`` (C, H, W) the features are added into it
    (the enhanced cube H + F_spe built in place) and it is returned; else a new tensor is."""
    _check_cube(cube[None], spe.bands, "Spe-FEN")  # band count, and at least PAD + 1 pixels a side to reflect
    bands, height, width = cube.shape
    out = add_to if add_to is not None else torch.zeros_like(cube)
    work = list(tiles(height, width, tile))
    # channels-last: every layer is a 1×1 or 3×3 conv over 64–256 channels, which oneDNN (and cuDNN) run
    # fastest with channels innermost (1.6× on the CPU here); the weights are converted once, in place
    spe.to(memory_format=torch.channels_last)
    layer1, branches = inference_layer1(spe, cube.device), spe.branches()
    # layer1's valid convolutions shrink the tile by its receptive-field radius (3): a halo of that many
    # reflected pixels gives the whole-image path's values (4-pixel reflection, then cut) on the tile itself
    radius = sum(b.shrink for b in layer1)
    for i, (r0, r1, c0, c1) in enumerate(work):
        if feedback is not None:
            feedback.check()
        x = halo_tile(cube, r0, r1, c0, c1, radius)
        # the CWL's 1×1 conv on the haloed tile = the CWL on the padded image, cut to this window;
        # an ensemble's members run one after another, so a tile's activations are those of one Spe-FEN
        for conv, fpl in branches:
            f = fpl(layer1(conv(x)))[0]
            out[:, r0:r1, c0:c1] += f.div_(len(branches)) if len(branches) > 1 else f
        if feedback is not None:
            feedback.progress((i + 1) / len(work), f"spectral features, tile {i + 1}/{len(work)}")
    return out
