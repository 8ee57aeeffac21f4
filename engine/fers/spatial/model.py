"""Stage 2 of FERS: the spatial branch, Spa-FEN, and its training-only decoder FRN (SPEC §2).

Part names follow the paper: spectral compression (Eq. 5), the frozen ResNet-34
backbone, LightSPP (Eq. 6), the SE block (Eq. 7) and the feature restoration
network FRN (Eq. 9). Module and parameter names inside the parts follow the
authors' reference code (``models/spa_branch.py``: ``conv``/``hidden``,
``fuse``, ``se.fc``, ``body``/``final_conv``), so a reference ``spa_fen.pt`` maps
onto ours by renaming prefixes only: ``initial_conv`` → ``compression``,
``get_features.{0,1,4,5,6}`` → ``backbone.{conv1,bn1,layer1,layer2,layer3}``
(``spp.*`` and the FRN's keys are the same).

Details taken from the reference implementation (checked against its source):

* The false-RGB image ``H_3c`` (a sigmoid output in (0, 1)) goes into the
  ImageNet ResNet-34 **without** ImageNet mean/std normalisation; we do the same.
* The backbone's parameters are frozen, but the reference keeps the module in
  train mode during stage-2 training, so its BatchNorm layers normalise with
  batch statistics and their running statistics adapt to the false-RGB images.
  ``SpaFEN(adapt_bn=True)`` (the default) does that; ``adapt_bn=False`` keeps the
  ImageNet statistics (backbone always in eval mode). At inference the whole
  network is in eval mode either way, and the (adapted) running statistics are
  part of the checkpoint.
* Initialisation: the reference's ``init_weights(mode="uniform")``: conv weights
  U(−0.1, 0.1), conv biases U(±1/√fan_in), BatchNorm weight 1 and bias 0.
* The reference's SE reduction ``C // 8`` is 0 below 8 bands (it would crash);
  we use at least one hidden channel.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import backbones
from ..backbones import load_state_strict
from ..errors import InputError, ModelError

# ResNet-34 stem + layer1..3 downsample 16× (conv1 s2, max-pool s2, layer2 s2, layer3 s2)
BACKBONE_STRIDE = 16
# Below one backbone cell the ResNet-34 features come mostly from zero padding (nothing crashes in eval
# mode at any size ≥ 1 px, but the features are meaningless), and in training mode a 1×1 layer3 map with
# batch 1 makes BatchNorm fail. 16×16 is the smallest input whose layer3 cell is computed from real pixels.
MIN_SIZE = BACKBONE_STRIDE
POOL_SIZES = (1, 2, 4)
# at inference the per-pixel parts (spectral compression, LightSPP after pooling) run on row blocks of about
# this many pixels: their 256- and 128-channel intermediates never exist for the whole scene at once
INFER_BLOCK_PIXELS = 1 << 18
SE_REDUCTION = 8
FRN_BLOCKS = 3
COMPRESSION_WIDTH = 256
BACKBONE_CHANNELS = 256  # ResNet-34 layer3


def reference_init(module: nn.Module) -> None:
    """The authors' ``init_weights(mode="uniform")``: conv U(−0.1, 0.1), bias U(±1/√fan_in), BN 1/0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.uniform_(m.weight, -0.1, 0.1)
            if m.bias is not None:
                fan_in = m.weight[0].numel()
                bound = 1.0 / fan_in ** 0.5
                nn.init.uniform_(m.bias, -bound, bound)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1.0)
            nn.init.constant_(m.bias, 0.0)


def _layer3_size(size: int) -> int:
    """Side length of the ResNet-34 layer3 map for an input side (four stride-2 stages, k/p as torchvision)."""
    for _ in range(4):
        size = (size - 1) // 2 + 1
    return size


def _check_cube(x: torch.Tensor, bands: int, what: str) -> None:
    # same wording as the spectral branch (fers.spectral.model._check_cube), so users see one style
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise InputError(f"{what} expects a (N, bands, rows, cols) tensor, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if x.shape[1] != bands:
        raise ModelError(f"the {what} was built for {bands} bands, but the input has {x.shape[1]}; "
                         f"select {bands} bands (e.g. --bands {bands}) or use a model trained for {x.shape[1]}")
    if min(x.shape[2], x.shape[3]) < MIN_SIZE:
        raise InputError(f"the {what} needs an image of at least {MIN_SIZE}×{MIN_SIZE} pixels (its ResNet-34 "
                         f"backbone downsamples {BACKBONE_STRIDE}×); got {x.shape[2]}×{x.shape[3]}")


class SEBlock(nn.Module):
    """Squeeze-and-excitation channel attention (Eq. 7), reduction 8, bias-free.

    Global average pool → 1×1 C→C/8 → ReLU → 1×1 C/8→C → sigmoid → channel-wise
    scale. Used at the end of LightSPP and as the FRN's channel attention.
    """

    def __init__(self, channels: int, reduction: int = SE_REDUCTION):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
            nn.Sigmoid(),
        )

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, 1, 1) channel weights in (0, 1) from the global mean of x."""
        return self.fc(x.mean((2, 3), keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class SpectralCompression(nn.Module):
    """Eq. 5: 1×1 C→256 (bias), ReLU, 1×1 256→3 (bias), sigmoid → the false-RGB image H_3c in (0, 1).

    Named ``conv`` and ``hidden`` as the reference's Conv2RGB.
    """

    def __init__(self, bands: int, width: int = COMPRESSION_WIDTH):
        super().__init__()
        self.conv = nn.Conv2d(bands, width, kernel_size=1)
        self.relu = nn.ReLU()
        self.hidden = nn.Conv2d(width, 3, kernel_size=1)
        reference_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.hidden(self.relu(self.conv(x))))

    def pixelwise(self, x: torch.Tensor) -> torch.Tensor:
        """The same map as plain matrix products over the pixels of an NCHW block (inference: 1.4× faster
        on the CPU than the 1×1 convolutions, with no layout conversion)."""
        n, c, h, w = x.shape
        z = torch.relu_(torch.baddbmm(self.conv.bias[:, None], self.conv.weight[None, :, :, 0, 0].expand(n, -1, -1),
                                      x.reshape(n, c, h * w)))
        out = torch.baddbmm(self.hidden.bias[:, None], self.hidden.weight[None, :, :, 0, 0].expand(n, -1, -1), z)
        return torch.sigmoid_(out).reshape(n, 3, h, w)


def resize_matrix(src: int, dst: int, like: torch.Tensor) -> torch.Tensor:
    """(dst, src) matrix of 1-D bilinear resizing with align_corners=False, as F.interpolate does it.

    Taken from F.interpolate itself (resizing the identity), so the border handling is
    exactly PyTorch's. Bilinear resizing is separable: resize(Y) = A_h · Y · A_wᵀ.
    """
    eye = torch.eye(src, dtype=like.dtype, device=like.device).view(1, src, src, 1)
    return F.interpolate(eye, size=(dst, 1), mode="bilinear", align_corners=False)[0, :, :, 0].T


class LightSPP(nn.Module):
    """Light spatial pyramid pooling (Eq. 6) followed by the SE block (Eq. 7).

    Adaptive average pooling of the backbone map to 1×1, 2×2 and 4×4; each pooled
    map resized bilinearly (align_corners=False) to the **input** H×W; concatenated
    (3·256 = 768 channels) → 1×1 768→128 (no bias) → ReLU → 1×1 128→C (no bias) →
    ReLU → SE. Output at the input resolution. ``fuse`` keeps the reference's
    layout and parameter names.

    Computed in an equivalent, lighter order (equal up to float rounding):

    * the first 1×1 conv is applied to each pooled map *before* the resize: a 1×1
      conv mixes channels per pixel and bilinear resizing mixes pixels per channel,
      so the two linear maps commute and Σ_i resize(W_i·p_i) = W·concat(resize(p_i)).
      The full-resolution tensor then has 128 channels instead of 768;
    * the resize is the separable product A_h · Y · A_wᵀ (``resize_matrix``), so any
      band of output rows can be produced on its own: with ``block_rows`` (used at
      inference) the output is built row block by row block and the SE gate, which
      needs the global mean, is applied in place afterwards. Peak memory on a whole
      scene is then the output itself plus one block.
    """

    def __init__(self, in_channels: int, out_channels: int, pool_sizes: Sequence[int] = POOL_SIZES):
        super().__init__()
        self.pool_sizes = tuple(int(s) for s in pool_sizes)
        mid = max(in_channels // 2, 16)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.fuse = nn.Sequential(
            nn.Conv2d(in_channels * len(self.pool_sizes), mid, kernel_size=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, kernel_size=1, bias=False),
            nn.ReLU(inplace=True),
        )
        self.se = SEBlock(out_channels)
        reference_init(self)

    def forward(self, x: torch.Tensor, size: Tuple[int, int], block_rows: Optional[int] = None) -> torch.Tensor:
        rows, cols = int(size[0]), int(size[1])
        w = self.fuse[0].weight  # (mid, 768, 1, 1): one 256-column slice per pyramid level
        a_rows, y_cols = [], []
        for i, s in enumerate(self.pool_sizes):
            y = F.conv2d(F.adaptive_avg_pool2d(x, s), w[:, i * self.in_channels:(i + 1) * self.in_channels])
            # resize the columns once (N, mid, s, W); rows are resized per block below
            a_rows.append(resize_matrix(s, rows, y))
            y_cols.append(torch.matmul(y, resize_matrix(s, cols, y).T))
        # the sum over levels of A_h,i · Y_i is one product of the stacked factors (inner size 1+2+4 = 7):
        # one full-resolution write instead of three, and no additions
        a_h, y_w = torch.cat(a_rows, dim=1), torch.cat(y_cols, dim=2)

        def block(r0: int, r1: int) -> torch.Tensor:
            out = torch.matmul(a_h[r0:r1], y_w)  # (N, mid, r1 - r0, W)
            return self.fuse[3](self.fuse[2](self.fuse[1](out)))

        if block_rows is None or block_rows >= rows:
            return self.se(block(0, rows))
        out = x.new_empty((x.shape[0], self.out_channels, rows, cols))
        for r0 in range(0, rows, block_rows):
            r1 = min(rows, r0 + block_rows)
            out[:, :, r0:r1] = block(r0, r1)
        return out.mul_(self.se.gate(out))


class SpaFEN(nn.Module):
    """Spatial feature enhancement network (SPEC §2): compression → frozen ResNet-34 → LightSPP + SE.

    ``forward(x)`` with x (N, C, H, W) returns F_spa (N, C, H, W) ≥ 0. The backbone
    (ResNet-34 stem + layer1..3, torchvision names) has frozen parameters; with
    ``adapt_bn`` its BatchNorm layers follow the module's train/eval mode (the
    reference's behaviour), otherwise it is always in eval mode. Load its weights
    with ``load_backbone``.

    F_spa depends on the whole input through the global pooling of LightSPP and the
    SE block: a scene must be run in one piece (tiles give different features).
    """

    def __init__(self, bands: int, adapt_bn: bool = True):
        super().__init__()
        self.bands, self.adapt_bn = int(bands), bool(adapt_bn)
        self.compression = SpectralCompression(self.bands)
        self.backbone = backbones.freeze(backbones.resnet34(stem=True, depth=3))
        self.spp = LightSPP(BACKBONE_CHANNELS, self.bands)
        if not self.adapt_bn:
            self.backbone.eval()

    def load_backbone(self, weights: str) -> str:
        """'imagenet', 'random', a file or 'partial:FILE'; returns the source string for checkpoint metadata."""
        return backbones.load_backbone_weights(self.backbone, "resnet34", weights)

    def train(self, mode: bool = True) -> "SpaFEN":
        super().train(mode)
        if not self.adapt_bn:
            self.backbone.eval()
        return self

    def false_rgb(self, x: torch.Tensor) -> torch.Tensor:
        """H_3c, the 3-channel image the backbone sees (for inspection)."""
        _check_cube(x, self.bands, "Spa-FEN")
        return self.compression(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_cube(x, self.bands, "Spa-FEN")
        rows, cols = x.shape[2], x.shape[3]
        if self.backbone.training and x.shape[0] * _layer3_size(rows) * _layer3_size(cols) < 2:
            raise InputError(f"training the Spa-FEN with adapting BatchNorm needs more than one ResNet-34 layer3 "
                             f"cell per batch; got batch {x.shape[0]} of {rows}×{cols} px: use a batch of 2 or more "
                             f"or patches larger than {BACKBONE_STRIDE} px")
        # without autograd (inference) the per-pixel parts go by row blocks; with it (training patches) at once
        block = None if torch.is_grad_enabled() else max(1, INFER_BLOCK_PIXELS // cols)
        if block is None:
            rgb = self.compression(x)
        else:
            rgb = torch.cat([self.compression.pixelwise(x[:, :, r:r + block]) for r in range(0, rows, block)], dim=2)
        # no ImageNet mean/std normalisation of H_3c: the reference feeds the sigmoid output as it is
        features = self.backbone(rgb)[-1]
        return self.spp(features, (rows, cols), block)


class ResidualBlock(nn.Module):
    """FRN residual block: 3×3 conv, BN, ReLU, 3×3 conv, BN, + identity, ReLU (full resolution)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class FRN(nn.Module):
    """Feature restoration network (Eq. 9), training only: Ĥ = FRN(F_spe + F_spa).

    Three times (residual block, SE channel attention), then a 1×1 conv C→C (bias).
    Keeps the full resolution; the reconstruction term keeps F_spa informative about
    the scene while L_cc/L_cos push it away from F_spe.
    """

    def __init__(self, bands: int, blocks: int = FRN_BLOCKS):
        super().__init__()
        self.bands = int(bands)
        layers = []
        for _ in range(blocks):
            layers += [ResidualBlock(self.bands), SEBlock(self.bands)]
        self.body = nn.Sequential(*layers)
        self.final_conv = nn.Conv2d(self.bands, self.bands, kernel_size=1)
        reference_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_conv(self.body(x))


def spafen_from_state(state: dict, meta: dict, path: str) -> SpaFEN:
    """The Spa-FEN of a 'fers' checkpoint, in eval mode.

    The state holds every tensor, the ResNet-34 backbone included: with adapted
    BatchNorm its running statistics are part of the trained model, and a complete
    state keeps inference offline (no ImageNet download).
    """
    if "bands" not in meta:
        raise ModelError(f"{path}: the checkpoint metadata lacks 'bands'")
    bands = int(meta["bands"])
    w = state.get("compression.conv.weight")
    if w is not None and w.dim() == 4 and int(w.shape[1]) != bands:
        raise ModelError(f"{path}: the Spa-FEN takes {int(w.shape[1])} bands but the metadata says {bands}; "
                         "the checkpoint is inconsistent")
    net = SpaFEN(bands, adapt_bn=bool(meta.get("adapt_bn", True)))
    load_state_strict(net, state, f"{path} (Spa-FEN)")
    return net.eval()
