"""Seconds per stage-1 training step (batch 16, 64×64 patches, 200 bands) for both trunks.

Real background patches (abu-urban-1/2, SPEC §1 preprocessing). One warm-up step, then the
mean of BENCH_STEPS timed steps (default 2). On a CUDA machine it also times the GPU.
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DATA  # noqa: E402

from fers.spectral.loss import ferd_loss  # noqa: E402
from fers.spectral.model import FERDNet  # noqa: E402
from fers.train.data import PatchSampler, load_background  # noqa: E402


def step_seconds(trunk, device, batch, bands, steps):
    torch.manual_seed(0)
    net = FERDNet(bands, trunk=trunk).to(device).train()
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=0.005, betas=(0.5, 0.999))
    scenes = [load_background(os.path.join(DATA, "raw", n + ".mat"), bands, 64) for n in ("abu-urban-1", "abu-urban-2")]
    sampler = PatchSampler(scenes, 64, seed=0)
    times = []
    for i in range(steps + 1):
        x = torch.from_numpy(sampler.batch(batch)).to(device)
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss, _ = ferd_loss(net(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step pays for allocations
            times.append(time.perf_counter() - t0)
    return sum(times) / len(times)


def main():
    batch, bands = int(os.environ.get("BENCH_BATCH", 16)), int(os.environ.get("BENCH_BANDS", 200))
    steps = int(os.environ.get("BENCH_STEPS", 2))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"stage-1 training step, batch {batch}, 64×64, {bands} bands ({torch.get_num_threads()} CPU threads)")
    for dev in devices:
        name = torch.cuda.get_device_name() if dev == "cuda" else "CPU"
        for trunk in ("wide_resnet50_2", "wide_resnet101_2"):
            print(f"{trunk:<18} {name:<24} {step_seconds(trunk, dev, batch, bands, steps):8.2f} s/step", flush=True)


if __name__ == "__main__":
    main()
