"""Stage 1 of FERS: the FERD reverse-distillation network and its pruned Spe-FEN (SPEC §1).

Part names follow the papers (CWL, MFFM, decoder, de-CWL, FPL, ZCL). The
training network ``FERDNet`` and the inference network ``SpeFEN`` share module
objects (``SpeFEN.from_ferd``), so a Spe-FEN cut from a trained FERDNet needs no
weight copying and cannot drift from it.

Padding: the cube is reflect-padded by ``PAD`` = 4 pixels on every side before
the CWL and cropped back afterwards. ``layer1``'s receptive-field radius is 3
(three 3×3 convs), so the cropped Spe-FEN output never sees the padding's
borders. The training network additionally pads the bottom/right edges so the
padded size is a multiple of 8, which its three stride-2 stages need.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import backbones
from ..backbones import conv1x1, conv3x3, load_state_strict, load_weights_file
from ..errors import InputError, ModelError

PAD = 4
# three stride-2 stages between f_E^1 and φ (layer2, layer3, the MFFM's own stride-2 block)
SIZE_MULTIPLE = 8
TRUNKS = ("wide_resnet101_2", "wide_resnet50_2")


def fpl_hidden(bands: int) -> int:
    """FPL hidden width: 256 above 128 bands, else 128 (as in the authors' checkpoints)."""
    return 256 if bands > 128 else 128


def _check_cube(x: torch.Tensor, bands: int, what: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise InputError(f"{what} expects a (N, bands, rows, cols) tensor, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if x.shape[1] != bands:
        raise ModelError(f"the {what} was built for {bands} bands, but the input has {x.shape[1]}; "
                         f"select {bands} bands (e.g. --bands {bands}) or use a model trained for {x.shape[1]}")
    if min(x.shape[2], x.shape[3]) <= PAD:
        raise InputError(f"the {what} needs an image of at least {PAD + 1}×{PAD + 1} pixels "
                         f"(it reflect-pads {PAD} pixels on each side); got {x.shape[2]}×{x.shape[3]}")


def crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Undo the CWL padding: the original pixels start at (PAD, PAD)."""
    return x[:, :, PAD:PAD + height, PAD:PAD + width]


class CWL(nn.Module):
    """Channel-wise layer: reflect padding, then a bias-free 1×1 conv C → 64 (the trunk's stem width).

    The conv is named ``convh`` as in the authors' ``convh.pt``.
    """

    def __init__(self, bands: int):
        super().__init__()
        self.bands = bands
        self.convh = nn.Conv2d(bands, 64, kernel_size=1, bias=False)
        nn.init.xavier_normal_(self.convh.weight)

    def forward(self, x: torch.Tensor, multiple: int = 1) -> torch.Tensor:
        x = F.pad(x, (PAD, PAD, PAD, PAD), mode="reflect")
        eh, ew = (-x.shape[2]) % multiple, (-x.shape[3]) % multiple
        if eh or ew:
            # a second reflection of the already padded cube, so that any input of ≥ 5 px works
            # (a single pad of 4 + extra would need the input to be larger than the extra);
            # 64×64 training patches pad to 72, a multiple of 8 already, so this never runs there
            x = F.pad(x, (0, ew, 0, eh), mode="reflect")
        # 1×1 conv commutes with padding: padding first keeps the cost of the extra rows negligible anyway
        return self.convh(x)


class FPL(nn.Module):
    """Feature projection layer (part of SFAM): 256 → h → C, ReLU after each; F_spe ≥ 0."""

    def __init__(self, bands: int, hidden: Optional[int] = None, in_channels: int = 256):
        super().__init__()
        hidden = hidden or fpl_hidden(bands)
        self.conv1 = nn.Conv2d(in_channels, hidden, kernel_size=1)
        self.conv2 = nn.Conv2d(hidden, bands, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        for conv in (self.conv1, self.conv2):
            nn.init.xavier_normal_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.relu(self.conv1(x))))


class ZCL(nn.Module):
    """Zero-centralisation layer (part of SFAM): 1×1 C → 1 logits (``conv3`` in the authors' pc.pt).

    Trained so that the FPL projections of student and teacher features agree
    (sigmoid of the logits pushed to 0); not used at inference.
    """

    def __init__(self, bands: int):
        super().__init__()
        self.conv3 = nn.Conv2d(bands, 1, kernel_size=1)
        nn.init.xavier_normal_(self.conv3.weight)
        nn.init.zeros_(self.conv3.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(x)


def _kaiming_init(module: nn.Module) -> None:
    """RD4AD's init: Kaiming-normal (fan_out) on Conv2d, BN weight 1 bias 0; transposed convs keep torch's default."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


class MFFM(nn.Module):
    """Multi-scale feature fusion module = RD4AD's one-class bottleneck (OCBE), wide variant.

    f_E^1 goes down twice and f_E^2 once to the resolution of f_E^3; the three are
    concatenated (256·4·3 = 3072 channels) and compressed by three bottleneck blocks
    (planes 512, inner width 1024 as in RD4AD's wide_resnet50_2 OCBE, the first with
    stride 2) into φ, 2048 channels at 1/8 of the padded size. Module names are
    RD4AD's (its unused conv4/bn4 are left out).
    """

    def __init__(self, width_per_group: int = 128, blocks: int = 3):
        super().__init__()
        e = backbones.Bottleneck.expansion
        self.conv1 = conv3x3(64 * e, 128 * e, 2)
        self.bn1 = nn.BatchNorm2d(128 * e)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(128 * e, 256 * e, 2)
        self.bn2 = nn.BatchNorm2d(256 * e)
        self.conv3 = conv3x3(128 * e, 256 * e, 2)
        self.bn3 = nn.BatchNorm2d(256 * e)
        planes, cat = 512, 3 * 256 * e
        downsample = nn.Sequential(conv1x1(cat, planes * e, 2), nn.BatchNorm2d(planes * e))
        layers = [backbones.Bottleneck(cat, planes, 2, downsample, base_width=width_per_group)]
        layers += [backbones.Bottleneck(planes * e, planes, base_width=width_per_group) for _ in range(1, blocks)]
        self.bn_layer = nn.Sequential(*layers)
        _kaiming_init(self)

    def forward(self, f_e: List[torch.Tensor]) -> torch.Tensor:
        l1 = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(f_e[0]))))))
        l2 = self.relu(self.bn3(self.conv3(f_e[1])))
        return self.bn_layer(torch.cat([l1, l2, f_e[2]], 1))


class DeBottleneck(nn.Module):
    """Decoder bottleneck (RD4AD's de_resnet): like the encoder's, but stride 2 means ×2 upsampling
    with a 2×2 stride-2 transposed conv in place of the 3×3."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, upsample: Optional[nn.Module] = None,
                 base_width: int = 64):
        super().__init__()
        width = int(planes * (base_width / 64.0))
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        if stride == 2:
            self.conv2 = nn.ConvTranspose2d(width, width, kernel_size=2, stride=2, bias=False)
        else:
            self.conv2 = conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.upsample = upsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.upsample is None else self.upsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class Decoder(nn.Module):
    """Student decoder: Wide-ResNet-50-2 layers 3 → 1 mirrored (3, 4, 6 de-bottleneck blocks).

    Each stage's first block upsamples ×2, with a transposed-conv projection on the
    shortcut. Returns ``[g_D^1, g_D^2, g_D^3]`` in the order of the encoder's
    ``[f_E^1, f_E^2, f_E^3]`` (256@Hp, 512@Hp/2, 1024@Hp/4).
    """

    def __init__(self, layers=(3, 4, 6), width_per_group: int = 128):
        super().__init__()
        self.base_width = width_per_group
        self.inplanes = 512 * DeBottleneck.expansion
        self.layer1 = self._make_layer(256, layers[0])
        self.layer2 = self._make_layer(128, layers[1])
        self.layer3 = self._make_layer(64, layers[2])
        _kaiming_init(self)

    def _make_layer(self, planes: int, blocks: int) -> nn.Sequential:
        e = DeBottleneck.expansion
        upsample = nn.Sequential(nn.ConvTranspose2d(self.inplanes, planes * e, kernel_size=2, stride=2, bias=False),
                                 nn.BatchNorm2d(planes * e))
        layers = [DeBottleneck(self.inplanes, planes, 2, upsample, base_width=self.base_width)]
        self.inplanes = planes * e
        layers += [DeBottleneck(self.inplanes, planes, base_width=self.base_width) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, phi: torch.Tensor) -> List[torch.Tensor]:
        g3 = self.layer1(phi)
        g2 = self.layer2(g3)
        g1 = self.layer3(g2)
        return [g1, g2, g3]


class DeCWL(nn.Module):
    """1×1 conv 256 → C: the reconstruction head on g_D^1 (mirror of the CWL, Xavier-normal)."""

    def __init__(self, bands: int, in_channels: int = 256):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, bands, kernel_size=1)
        nn.init.xavier_normal_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@dataclass
class FERDOutput:
    f_E: List[torch.Tensor]  # encoder (teacher) features, 256@Hp, 512@Hp/2, 1024@Hp/4
    g_D: List[torch.Tensor]  # decoder (student) features, same shapes
    recon: torch.Tensor  # Ĥ, (N, C, H, W), padding cropped
    zcl_logits: torch.Tensor  # (N, 1, H, W), logits o of the ZCL
    f_spe: torch.Tensor  # F_spe = FPL(crop(f_E^1)), (N, C, H, W)


def _freeze_eval_trunk(trunk: nn.Module) -> nn.Module:
    backbones.freeze(trunk)
    return trunk.eval()


class FERDNet(nn.Module):
    """Stage-1 training network: CWL → frozen trunk → MFFM → decoder → de-CWL, plus SFAM (FPL + ZCL).

    Only the CWL in front of the trunk learns on the encoder side; the trunk stays
    in eval mode (BatchNorm running statistics of ImageNet / the loaded weights)
    even after ``.train()``. Load the trunk's weights with ``load_backbone``.
    """

    def __init__(self, bands: int, trunk: str = "wide_resnet101_2", fpl_width: Optional[int] = None):
        super().__init__()
        if trunk not in TRUNKS:
            raise ModelError(f"unknown FERD trunk '{trunk}' (choose one of: {', '.join(TRUNKS)})")
        self.bands, self.trunk_name = bands, trunk
        self.cwl = CWL(bands)
        self.encoder = _freeze_eval_trunk(backbones.ARCHS[trunk](stem=False, depth=3))
        self.mffm = MFFM()
        self.decoder = Decoder()
        self.decwl = DeCWL(bands)
        self.fpl = FPL(bands, fpl_width)
        self.zcl = ZCL(bands)

    def load_backbone(self, weights: str) -> str:
        """'imagenet', 'random' or a file; returns the source string for checkpoint metadata."""
        return backbones.load_backbone_weights(self.encoder, self.trunk_name, weights)

    def train(self, mode: bool = True) -> "FERDNet":
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, h: torch.Tensor) -> FERDOutput:
        _check_cube(h, self.bands, "FERD network")
        rows, cols = h.shape[2], h.shape[3]
        f_e = self.encoder(self.cwl(h, multiple=SIZE_MULTIPLE))
        g_d = self.decoder(self.mffm(f_e))
        recon = crop(self.decwl(g_d[0]), rows, cols)
        f_spe = self.fpl(crop(f_e[0], rows, cols))
        zcl_logits = self.zcl(torch.abs(self.fpl(crop(g_d[0], rows, cols)) - f_spe))
        return FERDOutput(f_E=f_e, g_D=g_d, recon=recon, zcl_logits=zcl_logits, f_spe=f_spe)


class SpeFEN(nn.Module):
    """Spectral feature enhancement network (inference): CWL → layer1 → crop → FPL.

    Holds CWL, layer1 and FPL only, as SPEC §1 says a Spe-FEN checkpoint does; the
    ZCL is a training-time regulariser and is deliberately not part of it (the
    authors' pc.pt conv3 is ignored when loading). ``layer1`` is frozen and always
    in eval mode. Output F_spe: (N, C, H, W), ≥ 0.
    """

    def __init__(self, bands: int, hidden: Optional[int] = None, *, cwl: Optional[CWL] = None,
                 layer1: Optional[nn.Module] = None, fpl: Optional[FPL] = None):
        super().__init__()
        self.bands = bands
        self.cwl = cwl if cwl is not None else CWL(bands)
        # layer1 of both wide trunks is identical in shape (3 blocks, width 128), so the trunk choice is moot here
        self.layer1 = layer1 if layer1 is not None else backbones.wide_resnet101_2(stem=False, depth=1).layer1
        _freeze_eval_trunk(self.layer1)
        self.fpl = fpl if fpl is not None else FPL(bands, hidden)

    @classmethod
    def from_ferd(cls, net: FERDNet) -> "SpeFEN":
        """The pruned network of a FERDNet, sharing (not copying) its CWL, layer1 and FPL."""
        return cls(net.bands, cwl=net.cwl, layer1=net.encoder.layer1, fpl=net.fpl)

    @property
    def hidden(self) -> int:
        return self.fpl.conv1.out_channels

    def train(self, mode: bool = True) -> "SpeFEN":
        super().train(mode)
        self.layer1.eval()
        return self

    def branches(self) -> List[tuple]:
        """The (CWL conv, FPL) pairs around the shared layer1: one here, K in a SpeFENEnsemble."""
        return [(self.cwl.convh, self.fpl)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_cube(x, self.bands, "Spe-FEN")
        # stride 1 and receptive-field radius 3 < PAD: no multiple-of-8 padding needed here
        return self.fpl(crop(self.layer1(self.cwl(x)), x.shape[2], x.shape[3]))


class SpeFENEnsemble(nn.Module):
    """K Spe-FENs trained with different seeds, one frozen layer1: F_spe = mean_k FPL_k(layer1(CWL_k(H))).

    Beyond the paper. With seven small background scenes one stage-1 run is one draw
    (its seed fixes the initial weights, the random frozen layer2/3 of the training trunk
    and the patch order); averaging the members' F_spe cuts that variance without new
    data. Only the CWL and FPL differ between members (layer1 is the same frozen ImageNet
    layer1 in every run), so it is stored and run once per pixel per member, not K copies.
    Drop-in for SpeFEN: same ``bands``, ``layer1``, ``branches()`` and output.
    """

    def __init__(self, bands: int, members: int, hidden: Optional[int] = None, *,
                 layer1: Optional[nn.Module] = None):
        super().__init__()
        if members < 2:
            raise ModelError(f"a Spe-FEN ensemble needs at least 2 members, got {members}")
        self.bands = bands
        self.cwls = nn.ModuleList([CWL(bands) for _ in range(members)])
        self.layer1 = layer1 if layer1 is not None else backbones.wide_resnet101_2(stem=False, depth=1).layer1
        _freeze_eval_trunk(self.layer1)
        self.fpls = nn.ModuleList([FPL(bands, hidden) for _ in range(members)])

    @classmethod
    def from_members(cls, nets: List[SpeFEN], names: Optional[List[str]] = None) -> "SpeFENEnsemble":
        """An ensemble of trained Spe-FENs (weights copied); they must share bands, FPL width and layer1."""
        names = names or [f"member {i + 1}" for i in range(len(nets))]
        first = nets[0]
        ref = first.layer1.state_dict()
        for net, name in zip(nets[1:], names[1:]):
            if net.bands != first.bands or net.hidden != first.hidden:
                raise ModelError(f"{name} has {net.bands} bands / FPL width {net.hidden}, {names[0]} "
                                 f"{first.bands} / {first.hidden}: ensemble members must match")
            other = net.layer1.state_dict()
            if any(not torch.equal(ref[k], other[k]) for k in ref):
                raise ModelError(f"{name} has a different layer1 than {names[0]}: ensemble members must share "
                                 "the frozen layer1 (train them from the same backbone weights)")
        out = cls(first.bands, len(nets), first.hidden)
        out.layer1.load_state_dict(ref)
        for k, net in enumerate(nets):
            out.cwls[k].load_state_dict(net.cwl.state_dict())
            out.fpls[k].load_state_dict(net.fpl.state_dict())
        return out.eval()

    @property
    def hidden(self) -> int:
        return self.fpls[0].conv1.out_channels

    @property
    def members(self) -> int:
        return len(self.cwls)

    def train(self, mode: bool = True) -> "SpeFENEnsemble":
        super().train(mode)
        self.layer1.eval()
        return self

    def branches(self) -> List[tuple]:
        return [(c.convh, f) for c, f in zip(self.cwls, self.fpls)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_cube(x, self.bands, "Spe-FEN ensemble")
        rows, cols = x.shape[2], x.shape[3]
        out = None
        for cwl, fpl in zip(self.cwls, self.fpls):
            f = fpl(crop(self.layer1(cwl(x)), rows, cols))
            out = f if out is None else out.add_(f)
        return out.div_(len(self.cwls))


REFERENCE_FILES = ("convh.pt", "enc.pt", "pc.pt")


def load_reference_spefen(folder: str) -> SpeFEN:
    """A Spe-FEN from the FERS/FERD authors' published checkpoint folder (convh.pt, enc.pt, pc.pt).

    Band count from the CWL weight, FPL hidden width from pc.pt's conv1. Files are
    read with ``weights_only=True`` only.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ModelError(f"reference checkpoint folder not found: {folder} (expected {', '.join(REFERENCE_FILES)})")
    convh, enc, pc = (load_weights_file(os.path.join(folder, f), f"checkpoint file {f}") for f in REFERENCE_FILES)
    w = convh.get("convh.weight")
    if w is None or w.dim() != 4 or w.shape[0] != 64 or w.shape[2:] != (1, 1):
        raise ModelError(f"{os.path.join(folder, 'convh.pt')} does not hold a CWL: expected 'convh.weight' of shape "
                         f"(64, bands, 1, 1), got {None if w is None else tuple(w.shape)}")
    w1 = pc.get("conv1.weight")
    if w1 is None or w1.dim() != 4:
        raise ModelError(f"{os.path.join(folder, 'pc.pt')} does not hold an FPL: 'conv1.weight' is missing")
    net = SpeFEN(int(w.shape[1]), hidden=int(w1.shape[0]))
    load_state_strict(net.cwl, convh, os.path.join(folder, "convh.pt"))
    layer1 = {k[len("layer1."):]: v for k, v in enc.items() if k.startswith("layer1.")}
    load_state_strict(net.layer1, layer1, os.path.join(folder, "enc.pt") + " (layer1)")
    fpl = {k: v for k, v in pc.items() if k.startswith(("conv1.", "conv2."))}
    load_state_strict(net.fpl, fpl, os.path.join(folder, "pc.pt") + " (FPL)")
    return net.eval()
