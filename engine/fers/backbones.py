"""ResNet trunks for both branches, without torchvision.

torchvision is not a dependency (QGIS installs rarely ship it, and its wheels pin
torch), so the blocks are defined here with torchvision's exact module and
parameter names: torchvision's ImageNet state dicts load as they are, and so do
the FERS authors' checkpoints (their ``enc.pt`` is a torchvision ``layer1``).

A trunk keeps only what the method uses: the stem (7×7 conv, BN, ReLU, max-pool)
when asked for (ResNet-34 of the spatial branch, SPEC §2) and ``layer1`` up to
``layer{depth}``. FERD's encoder has no stem (SPEC §1), because the CWL feeds it
64 channels at full resolution.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from typing import List, Optional, Sequence
from urllib.error import URLError

import torch
from torch import nn

from .errors import ModelError

# torchvision's official ImageNet-1k weights (the "V1" sets the FERS authors used)
IMAGENET_URLS = {
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "wide_resnet50_2": "https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth",
    "wide_resnet101_2": "https://download.pytorch.org/models/wide_resnet101_2-32ee1156.pth",
}


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convs + identity (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 base_width: int = 64):
        super().__init__()
        if base_width != 64:
            raise ValueError("BasicBlock only supports base_width=64")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 → 3×3 → 1×1 bottleneck, torchvision "v1.5" layout (the stride sits on the 3×3).

    ``base_width`` 128 gives the Wide-ResNet-*-2 blocks: the inner width doubles,
    the output (planes × 4) does not.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 base_width: int = 64):
        super().__init__()
        width = int(planes * (base_width / 64.0))
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNetTrunk(nn.Module):
    """The first ``depth`` stages of a ResNet (optionally with its stem), no pooling head.

    ``forward`` returns the list of stage outputs ``[layer1, ..., layer{depth}]``.
    """

    def __init__(self, block, layers: Sequence[int], width_per_group: int = 64, stem: bool = True, depth: int = 3):
        super().__init__()
        if not 1 <= depth <= len(layers):
            raise ValueError(f"depth must be in 1..{len(layers)}, got {depth}")
        self.stem, self.depth = stem, depth
        self.base_width = width_per_group
        self.inplanes = 64
        if stem:
            self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for i in range(depth):
            # layer1 keeps the resolution; every later stage halves it
            setattr(self, f"layer{i + 1}", self._make_layer(block, 64 * 2 ** i, layers[i], 1 if i == 0 else 2))
        self.out_channels = [64 * 2 ** i * block.expansion for i in range(depth)]
        # torchvision's initialisation, so that weights="random" means the same thing here as there
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, base_width=self.base_width)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, base_width=self.base_width) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def module_prefixes(self) -> tuple:
        """State-dict prefixes of the modules this trunk has (to filter a full network's weights)."""
        stem = ("conv1.", "bn1.") if self.stem else ()
        return stem + tuple(f"layer{i + 1}." for i in range(self.depth))

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        if self.stem:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = []
        for i in range(self.depth):
            x = getattr(self, f"layer{i + 1}")(x)
            out.append(x)
        return out


def resnet34(stem: bool = True, depth: int = 3) -> ResNetTrunk:
    return ResNetTrunk(BasicBlock, [3, 4, 6, 3], 64, stem, depth)


def wide_resnet50_2(stem: bool = False, depth: int = 3) -> ResNetTrunk:
    return ResNetTrunk(Bottleneck, [3, 4, 6, 3], 128, stem, depth)


def wide_resnet101_2(stem: bool = False, depth: int = 3) -> ResNetTrunk:
    return ResNetTrunk(Bottleneck, [3, 4, 23, 3], 128, stem, depth)


ARCHS = {"resnet34": resnet34, "wide_resnet50_2": wide_resnet50_2, "wide_resnet101_2": wide_resnet101_2}


def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients into every parameter (the caller decides about train/eval mode)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


# ---------------------------------------------------------------- safe loading

def load_weights_file(path: str, what: str = "checkpoint") -> dict:
    """A state dict from a file, through ``torch.load(weights_only=True)`` only.

    Checkpoints come from the internet and from colleagues; a full unpickle would
    run whatever code the file names, so anything beyond tensors and plain
    containers is refused. Accepts a raw state dict or ``{'state_dict': ...}``
    (the FERS authors' layout). Every failure becomes a ModelError that says
    which file and what to do.
    """
    from .io.weights import safe_torch_load

    obj = safe_torch_load(path, what)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"{what} {path} is not a state dict (a mapping of parameter names to tensors, "
                         "optionally under the key 'state_dict')")
    # checkpoints saved from nn.DataParallel prefix every key with 'module.'
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def load_state_strict(module: nn.Module, state: dict, what: str) -> None:
    """``module.load_state_dict(state)`` with missing/unexpected keys and shape mismatches as ModelError."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s): "
                         f"{', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
        raise ModelError(f"{what} does not fit the network: {'; '.join(parts)}")
    bad = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in own.items()
           if tuple(state[k].shape) != tuple(v.shape)]
    if bad:
        raise ModelError(f"{what} does not fit the network: shape mismatch for {'; '.join(bad[:5])}"
                         f"{' ...' if len(bad) > 5 else ''}")
    module.load_state_dict(state, strict=True)


def _imagenet_state(arch: str) -> tuple:
    url = IMAGENET_URLS[arch]
    filename = os.path.basename(url)
    cache = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
    try:
        # looked up at call time (not imported by name) so tests can stand in for the network
        state = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, check_hash=True,
                                                   weights_only=True)
    except (URLError, ConnectionError, TimeoutError) as e:
        raise ModelError(
            f"cannot download the ImageNet weights for {arch}: this machine is offline or {url} is unreachable "
            f"({getattr(e, 'reason', e)}). Download {url} on a connected machine and put the file at {cache} "
            "(torch's hub cache), or pass --backbone-weights PATH (BACKBONE_WEIGHTS in QGIS) to a local copy, "
            "or --backbone-weights random to train from a random frozen trunk") from None
    except pickle.UnpicklingError:
        raise ModelError(f"the cached ImageNet weights {cache} hold Python objects other than tensors; "
                         "refused for safety. Delete the file and download it again") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as e:
        # check_hash failure or a truncated earlier download sitting in the cache
        raise ModelError(f"the ImageNet weights for {arch} at {cache} are corrupt or incomplete ({e}); "
                         "delete the file and download it again") from None
    return state, f"imagenet:{filename}"


def load_backbone_weights(trunk: ResNetTrunk, arch: str, weights: str) -> str:
    """Fill ``trunk`` from ``weights`` = "imagenet", "random" or a file path.

    Only the keys of the modules the trunk has are used (a full torchvision
    network's fc, layer4 or stem are ignored), strictly for those. Returns a short
    description of the source for checkpoint metadata.
    """
    if arch not in ARCHS:
        raise ModelError(f"unknown backbone '{arch}' (choose one of: {', '.join(ARCHS)})")
    weights = os.fspath(weights) if weights is not None else "random"
    if weights == "random":
        return "random"
    partial = weights.startswith("partial:")
    if partial:
        weights = weights[len("partial:"):]
    if weights == "imagenet":
        state, source = _imagenet_state(arch)
    else:
        state, source = load_weights_file(weights, f"backbone weights for {arch}"), f"file:{os.path.abspath(weights)}"
    prefixes = trunk.module_prefixes()
    state = {k: v for k, v in state.items() if k.startswith(prefixes)}
    if partial:
        # explicit opt-in ("partial:PATH"): stages the file lacks keep their (seeded) random init,
        # e.g. the authors' enc.pt, which holds only layer1 of Wide-ResNet-101-2
        have = sorted({k.split(".")[0] for k in state})
        rest = [p.rstrip(".") for p in prefixes if p.rstrip(".") not in have]
        if not have:
            raise ModelError(f"{weights} holds none of the {arch} stages ({', '.join(p.rstrip('.') for p in prefixes)})")
        own = trunk.state_dict()
        state = dict({k: v for k, v in own.items() if k.split(".")[0] in rest}, **state)
        source = f"{source} ({', '.join(have)})" + (f" + random ({', '.join(rest)})" if rest else "")
    load_state_strict(trunk, state, f"backbone weights {source} for {arch}")
    return source
