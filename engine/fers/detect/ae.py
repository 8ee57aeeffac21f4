"""AE detector (SPEC §3): a per-scene lightweight autoencoder of 1×1 convolutions.

The network is trained on the very scene it scores, for a fixed number of
full-scene iterations; the score of a pixel is its mean squared reconstruction
error. Anomalies are rare, so the autoencoder fits the background first and the
anomalous spectra keep a larger error.

Differences from the authors' ``utils/AE.py`` (``refine_anomaly_map``), on purpose:

* **No ground truth.** The reference computes the AUC against the ground truth
  after every iteration and returns the map of the best one: that is label
  leakage and impossible on a real scene. We return the map of the **last**
  iteration (the last forward pass, or the one whose loss fell below the
  early-stop threshold, exactly where the reference would stop).
* Nodata pixels are excluded from the min/max, from training and from scoring
  (NaN in the output); the reference uses every pixel.
* Min-max over valid pixels with an explicit error for a constant cube (the
  reference adds 1e-8 to the denominator instead).
* Weights are drawn from a local generator seeded with ``seed`` (torch's default
  Conv2d initialisation, reproduced), so runs are repeatable and the global RNG is
  untouched.
* Pixels are processed in fixed chunks whose gradients are accumulated, which
  equals the full-scene step (same loss, same gradient up to float summation order)
  while bounding memory on large rasters.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..feedback import Feedback

ITERATIONS = 50
LR = 1e-3
STOP_LOSS = 1e-7
CHUNK_PIXELS = 1 << 18  # pixels per forward/backward chunk (≈ 0.5 GB of activations at 200 bands)
# the label-free answer (research/ae_rule.py chose it on the selection groups; see ae_scores)
RULES = ("last", "mean", "plateau")
RULE = "last"
SEEDS = 1
PLATEAU_WINDOW, PLATEAU_DROP = 5, 0.05


class LightAutoEncoder(nn.Module):
    """Encoder: sigmoid, 1×1 C→128→64→32, tanh. Decoder: 1×1 32→64→128→C, sigmoid.

    No activations between the convolutions, as in the reference: each half is an
    affine map squeezed by its output non-linearity. A 1×1 convolution is the same
    affine map applied to every pixel, so the layers are ``nn.Linear`` on a
    (pixels, bands) matrix: identical arithmetic, several times faster on CPU than
    a convolution over a one-pixel-wide image, and nodata pixels are simply absent.
    """

    def __init__(self, bands: int):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Sigmoid(),
            nn.Linear(bands, 128),
            nn.Linear(128, 64),
            nn.Linear(64, 32),
            nn.Tanh(),
        )
        self.decoder = nn.Sequential(
            nn.Linear(32, 64),
            nn.Linear(64, 128),
            nn.Linear(128, bands),
            nn.Sigmoid(),
        )

    def reset_parameters(self, generator: torch.Generator) -> None:
        """torch's default Conv2d/Linear init, drawn from ``generator``.

        kaiming_uniform with a=√5 is U(±1/√fan_in) for the weights; the biases are U(±1/√fan_in) too.
        """
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    bound = 1.0 / m.in_features ** 0.5
                    m.weight.uniform_(-bound, bound, generator=generator)
                    m.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def ae_iterations(cube: np.ndarray, valid: np.ndarray, iterations: int = ITERATIONS, lr: float = LR, seed: int = 0,
                  device: str = "cpu", feedback: Optional[Feedback] = None, stop_loss: float = STOP_LOSS,
                  chunk_pixels: int = CHUNK_PIXELS):
    """Train the AE on a (B, H, W) cube and yield ``(iteration, loss, scores)`` after every forward pass.

    ``iteration`` counts from 1; ``scores`` is a (n,) float32 tensor over the valid pixels (row-major order of
    ``valid``): the per-pixel mean squared reconstruction error of that pass, taken before the optimiser's
    step, which is the map the authors' ``refine_anomaly_map`` scores at that iteration. The generator stops
    after ``iterations`` passes or after the pass whose loss falls below ``stop_loss`` (where the reference
    stops). The tensor is reused: copy what you keep. Both the product (``ae_scores``) and the conformance
    harness (bench/ae_harness.py, which applies the authors' ground-truth selection) read this one loop.
    """
    feedback = feedback or Feedback()
    if cube.ndim != 3:
        raise InputError(f"the AE detector expects a (bands, rows, cols) cube, got shape {cube.shape}")
    bands, height, width = cube.shape
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != (height, width):
        raise InputError(f"valid mask {valid.shape} does not match the cube's {height}×{width} pixels")
    if iterations < 1:
        raise InputError(f"the AE detector needs at least 1 iteration, got {iterations}")
    n = int(valid.sum())
    if n == 0:
        raise InputError("every pixel is nodata (or NaN/Inf): nothing to detect")
    pixels = np.ascontiguousarray(cube[:, valid], dtype=np.float32)  # (B, n): nodata never enters
    lo, hi = float(pixels.min()), float(pixels.max())
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise InputError("the cube holds NaN/Inf at pixels marked valid")
    if not hi > lo:
        raise InputError(f"all valid pixels have the same value ({lo:g}): nothing to detect")
    dev = torch.device(device)
    # (n, B): one row per valid pixel, the layout of a 1×1 conv seen pixel by pixel
    x = ((torch.from_numpy(pixels).to(dev) - lo) / (hi - lo)).T.contiguous()

    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        # nn.Linear draws a default init from the global RNG on construction; fork_rng gives that state back
        net = LightAutoEncoder(bands)
    net.reset_parameters(generator)
    net.to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    chunks = [slice(i, min(n, i + chunk_pixels)) for i in range(0, n, chunk_pixels)]
    scores = torch.empty(n, dtype=torch.float32, device=dev)
    for it in range(iterations):
        feedback.check()
        last = it == iterations - 1
        opt.zero_grad(set_to_none=True)
        total = 0.0
        with torch.set_grad_enabled(not last):  # the last pass only scores
            for sl in chunks:
                xc = x[sl]
                err = (net(xc) - xc).pow(2)
                # Σ over chunks of sum/(B·n) is the full-scene mean, so the accumulated gradient is the full-batch one
                loss = err.sum() / (bands * n)
                if not last:
                    loss.backward()
                total += float(loss.detach())
                scores[sl] = err.detach().mean(dim=1)
        feedback.progress((it + 1) / iterations, f"AE iteration {it + 1}/{iterations}, loss {total:.3g}")
        yield it + 1, total, scores
        if last or total < stop_loss:
            # the map of this iteration's forward pass is the result; a further step would not change it
            return
        opt.step()


def plateau_iteration(losses, window: int = PLATEAU_WINDOW, drop: float = PLATEAU_DROP) -> Optional[int]:
    """1-based iteration at which the loss curve has flattened: the first t >= ``window`` whose loss fell by less
    than ``drop`` (relative) over the ``window`` iterations before it; None while it still falls."""
    for t in range(window, len(losses)):
        if losses[t - window] - losses[t] < drop * losses[t - window]:
            return t + 1
    return None


def ae_scores(cube: np.ndarray, valid: np.ndarray, iterations: int = ITERATIONS, lr: float = LR, seed: int = 0,
              device: str = "cpu", feedback: Optional[Feedback] = None, stop_loss: float = STOP_LOSS,
              chunk_pixels: int = CHUNK_PIXELS, rule: str = RULE, seeds: int = SEEDS) -> np.ndarray:
    """AE anomaly scores of a (B, H, W) cube: (H, W) float32, NaN at invalid pixels. No ground truth anywhere.

    The cube (typically the enhanced cube H + F_spa + F_spe) is min-max scaled to [0, 1] with one global
    min/max over the valid pixels; the autoencoder is trained with Adam (``lr``) and MSE on the valid pixels
    only, for ``iterations`` full-scene iterations or until the loss falls below ``stop_loss``. Which map is
    the answer is ``rule`` (label-free; chosen on the selection groups by research/ae_rule.py):

    * ``"last"``: the map of the last iteration;
    * ``"mean"``: the mean of every iteration's map, each divided by its mean over the valid pixels (the
      map is scale-free, and no single iteration's accident decides);
    * ``"plateau"``: the map of the iteration where the loss curve flattens (``plateau_iteration``), the
      last if it never does.

    ``seeds`` > 1 averages that answer over runs seeded ``seed``, ``seed + 1``, … (each divided by its mean).
    Deterministic for a given ``seed`` on CPU.
    """
    if rule not in RULES:
        raise InputError(f"unknown AE rule '{rule}' (choose one of: {', '.join(RULES)})")
    if seeds < 1:
        raise InputError(f"the AE detector needs at least 1 seed, got {seeds}")
    feedback = feedback or Feedback()
    total = None
    for k in range(seeds):
        sub = feedback.sub(k / seeds, (k + 1) / seeds)
        answer, losses = None, []
        for _, loss, s in ae_iterations(cube, valid, iterations, lr, seed + k, device, sub, stop_loss, chunk_pixels):
            losses.append(loss)
            if rule == "mean":
                m = s / s.mean().clamp(min=1e-30)
                answer = m.clone() if answer is None else answer.add_(m)
            else:
                answer = s
                if rule == "plateau" and plateau_iteration(losses) is not None:
                    break  # stopping here also ends training: no later iteration can change the answer
        answer = answer / answer.mean().clamp(min=1e-30) if seeds > 1 or rule == "mean" else answer
        total = answer.clone() if total is None else total.add_(answer)
    valid = np.asarray(valid, dtype=bool)
    out = np.full(valid.shape, np.nan, dtype=np.float32)
    out[valid] = (total / seeds).cpu().numpy()
    return out
