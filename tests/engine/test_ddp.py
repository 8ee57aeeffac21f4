"""Training under fers-torchrun (torchrun): 2 CPU processes (gloo, DistributedDataParallel) = one process with
2 micro-batches."""
import json
import os

import numpy as np
import torch

from conftest import RAW, VENV_BIN, fers, run

# 16-px patches: a step costs half of a 32-px one here (most of it is the optimiser), the arithmetic is the same
ARGS = ["--bands", "12", "--epochs", "1", "--batch", "4", "--patch", "16", "--steps", "3", "--seed", "3",
        "--backbone-weights", "random", "--device", "cpu", "--trunk", "wide_resnet50_2"]


def _losses(path):
    with open(str(path) + ".log.jsonl") as f:
        return [r["train"]["total"] for r in map(json.loads, f) if r["event"] == "epoch"]


def test_torchrun_two_gloo_processes_equal_one_process_with_two_micro_batches(tmp_path):
    sources = [os.path.join(RAW, n + ".mat") for n in ("abu-urban-1", "abu-beach-3", "abu-urban-2")]
    one = tmp_path / "one.pt"
    # one thread per process on both sides, so that both compute each slice with the same arithmetic
    r = fers("train-spectral", *sources, "-o", one, *ARGS, "--micro-batches", "2", env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    two = tmp_path / "two.pt"
    # fers-torchrun: torchrun, which also starts on a PyTorch built without libuv (Debian's python3-torch)
    r = run([os.path.join(VENV_BIN, "fers-torchrun"), "--standalone", "--nproc_per_node", "2",
             os.path.join(VENV_BIN, "fers"), "train-spectral", *sources, "-o", str(two), *ARGS],
            env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "distributed training: 2 processes (gloo), 2 patches each per step" in r.stderr
    assert r.stderr.count("distributed training:") == 1  # rank 1 is quiet
    a = torch.load(one, weights_only=True)
    b = torch.load(two, weights_only=True)
    assert a["spe_fen"].keys() == b["spe_fen"].keys()
    for k, v in a["spe_fen"].items():
        # (g1 + g2)/2 all-reduced = g1/2 + g2/2 accumulated, exactly, so Adam sees the same gradients
        torch.testing.assert_close(b["spe_fen"][k], v, rtol=1e-5, atol=1e-7, msg=k)
    np.testing.assert_allclose(_losses(two), _losses(one), rtol=1e-5)
    # the weights did move from their seeded initialisation: equal results are not two untouched inits
    from fers.spectral.model import FERDNet
    from fers.train.loop import seed_everything

    seed_everything(3)
    init = FERDNet(12, trunk="wide_resnet50_2").cwl.convh.weight.detach()
    assert float((a["spe_fen"]["cwl.convh.weight"] - init).abs().max()) > 1e-3
    assert not os.path.exists(str(two) + ".resume.pt")
