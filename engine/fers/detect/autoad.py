"""Auto-AD (Wang et al., "Auto-AD: Autonomous Hyperspectral Anomaly Detection Network Based on Fully
Convolutional Autoencoder", IEEE TGRS 2022; SPEC §3): a per-scene, label-free detector.

A fully convolutional encoder–decoder with skip connections (the "skip" network of deep image prior, as
the authors' code builds it: 5 scales of 128 channels, 3×3 convolutions with reflection padding, stride-2
downsampling, nearest upsampling, batch norm, LeakyReLU(0.2), 1×1 skip branches, a sigmoid output) learns
to produce the scene from a fixed noise input. Background pixels are many and alike, so the network
reproduces them first; anomalies keep a larger reconstruction error. The loss is an MSE weighted per pixel:
every 100 iterations the weights become 1 − the normalised squared error of the current reconstruction
(the adaptive weighting that keeps anomalies from being learnt), and training stops when the loss has
stopped falling (the mean |Δloss| over the last 50 iterations below 1.5e-5, checked every 50; at most 1001
iterations). The score of a pixel is its squared error summed over bands at the last weighting update, as
the authors' code returns it. Nothing here reads a ground truth: the stop is the loss's own.

What differs from the authors' ``AD_main_loop.py``, and why:
- Nodata pixels carry weight 0 in the loss and enter the network as the scene's mean spectrum; their
  score is NaN. The reference has no nodata.
- The cube is min-max scaled to [0, 1] over its valid pixels, one min/max for all bands (the sigmoid
  output's range; SPEC §0's global scaling). The reference scales nothing itself; the one scene it
  publishes (data/HYDICE1.mat) is scaled band by band. bench/autoad_reference.py runs both: on Table II's
  airport scenes the global scaling scores higher, and ours on the per-band cube scores as theirs does
  (docs/REPRODUCING.md §3).
- Seeded: the weights, the fixed input and the per-iteration input perturbation come from one generator,
  so a run on the CPU is repeatable (cudnn's autotuner, which the reference enables, is not used).
- Memory: the whole scene goes through the network at once (the network is spatial: tiles would change
  the map), so a scene whose activations would not fit is refused before training (``autoad_bytes``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..feedback import Feedback

CHANNELS, SCALES = 128, 5
LR = 0.01
MAX_ITERATIONS = 1001
REWEIGHT_EVERY = 100
STOP_WINDOW, STOP_THRESHOLD = 50, 1.5e-5
INPUT_SCALE = 0.1  # the fixed input: U(0, 1) · 0.1
INPUT_JITTER = 0.1  # std of the Gaussian perturbation added to it at every iteration (reg_noise_std)


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    pad = (k - 1) // 2
    layers = [nn.ReflectionPad2d(pad)] if pad else []
    return nn.Sequential(*layers, nn.Conv2d(cin, cout, k, stride))


def _block(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(_conv(cin, cout, k, stride), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


class _Level(nn.Module):
    """One scale: [1×1 skip branch ‖ stride-2 down, 3×3, deeper level, ×2 up] → BN → 3×3 → 1×1."""

    def __init__(self, cin: int, channels: int, deeper: Optional[nn.Module]):
        super().__init__()
        self.skip = _block(cin, channels, 1)
        self.down = nn.Sequential(_block(cin, channels, 3, 2), _block(channels, channels, 3))
        self.deeper = deeper
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.merge = nn.Sequential(nn.BatchNorm2d(2 * channels), _block(2 * channels, channels, 3),
                                   _block(channels, channels, 1))

    def forward(self, x):
        s = self.skip(x)
        d = self.down(x)
        if self.deeper is not None:
            d = self.deeper(d)
        d = self.up(d)
        # odd sizes: the two branches differ by a pixel; both are cropped to the smaller, centred
        h, w = min(s.shape[2], d.shape[2]), min(s.shape[3], d.shape[3])
        s, d = (t[:, :, (t.shape[2] - h) // 2:(t.shape[2] - h) // 2 + h,
                  (t.shape[3] - w) // 2:(t.shape[3] - w) // 2 + w] for t in (s, d))
        return self.merge(torch.cat([s, d], 1))


class SkipNet(nn.Module):
    """Deep image prior's "skip" encoder–decoder as Auto-AD configures it (bands in, bands out)."""

    def __init__(self, bands: int, channels: int = CHANNELS, scales: int = SCALES):
        super().__init__()
        level = None
        for i in reversed(range(scales)):
            level = _Level(bands if i == 0 else channels, channels, level)
        self.body = level
        self.head = nn.Sequential(nn.Conv2d(channels, bands, 1), nn.Sigmoid())

    def forward(self, x):
        return self.head(self.body(x))


def autoad_bytes(bands: int, height: int, width: int, channels: int = CHANNELS) -> float:
    """Rough peak of a training step: the full-resolution activations autograd keeps (about 14 maps of
    ``channels`` and 4 of ``bands`` per pixel), a third more for the coarser scales, float32, and Adam's
    state (small)."""
    return 4.0 * height * width * (14 * channels + 4 * bands) * 4 / 3


def autoad_scores(cube: np.ndarray, valid: np.ndarray, seed: int = 0, device: str = "cpu",
                  feedback: Optional[Feedback] = None, max_iterations: int = MAX_ITERATIONS,
                  channels: int = CHANNELS, scales: int = SCALES) -> tuple:
    """Auto-AD scores of a (B, H, W) cube: ((H, W) float32 with NaN at invalid pixels, info dict with the
    iterations run and why it stopped)."""
    feedback = feedback or Feedback()
    bands, height, width = cube.shape
    valid = np.asarray(valid, dtype=bool)
    n = int(valid.sum())
    if n == 0:
        raise InputError("every pixel is nodata (or NaN/Inf): nothing to detect")
    if min(height, width) <= 2 ** scales:  # its deepest scale needs 2×2 pixels for batch norm
        raise InputError(f"Auto-AD needs more than {2 ** scales}×{2 ** scales} pixels (its network halves the scene "
                         f"{scales} times); got {height}×{width}")
    pixels = cube[:, valid]
    lo, hi = float(pixels.min()), float(pixels.max())
    if not hi > lo:
        raise InputError(f"all valid pixels have the same value ({lo:g}): nothing to detect")
    dev = torch.device(device)
    x = torch.from_numpy(np.ascontiguousarray(cube, dtype=np.float32)).to(dev)
    x = (x - lo) / (hi - lo)
    v = torch.from_numpy(valid).to(dev)
    mean = x[:, v].mean(1)
    x = torch.where(v[None], x, mean[:, None, None])[None]  # nodata: the mean spectrum, weight 0 below

    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):  # the layers' default init draws from the global RNG
        torch.manual_seed(int(seed))
        net = SkipNet(bands, channels, scales)
    net.to(dev).train()
    fixed = (torch.rand(1, bands, height, width, generator=gen) * INPUT_SCALE).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    weight = v[None, None].to(x.dtype).expand_as(x).clone()
    residual = None
    deltas, last_loss, stop = [], None, "the iteration limit"
    it = 0
    for it in range(max_iterations):
        feedback.check()
        jitter = torch.randn(fixed.shape, generator=gen).to(dev) * INPUT_JITTER
        opt.zero_grad(set_to_none=True)
        out = net(fixed + jitter)
        if it % REWEIGHT_EVERY == 0 and it:
            with torch.no_grad():  # the adaptive weights: large error → small weight
                r = ((out - x) ** 2).sum(1)[0]
                residual = r.clone()
                w = r.max() - r
                w = (w - w[v].min()) / (w[v].max() - w[v].min()).clamp(min=1e-30)
                weight = torch.where(v, w, torch.zeros_like(w))[None, None].expand_as(x)
        loss = torch.mean((out * weight - x * weight) ** 2)  # the reference's mse(out·mask, img·mask)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        if last_loss is not None:
            deltas.append(abs(value - last_loss))
            deltas = deltas[-STOP_WINDOW:]
            if it % STOP_WINDOW == 0 and np.mean(deltas + [0.0] * (STOP_WINDOW - len(deltas))) < STOP_THRESHOLD:
                stop = "the loss stopped falling"
                break
        last_loss = value
        feedback.progress((it + 1) / max_iterations, f"Auto-AD iteration {it + 1}, loss {value:.3g}")
    if residual is None:  # stopped before the first reweighting: the last reconstruction's error
        with torch.no_grad():
            residual = ((net(fixed) - x) ** 2).sum(1)[0]
    scores = residual.detach().cpu().numpy().astype(np.float32)
    scores[~valid] = np.nan
    feedback.progress(1.0, "Auto-AD done")
    return scores, {"autoad_iterations": it + 1, "autoad_stop": stop}
