"""The shared trainer's model selection: a degenerate epoch (task.degenerate says why) is never the
selected one, however low its validation loss, and a run with nothing but degenerate epochs writes no model."""
import json
import os

import numpy as np
import pytest
import torch

from fers.errors import ModelError
from fers.feedback import Feedback
from fers.train.loop import TrainConfig, Trainer, TrainTask


class Sampler:
    def __init__(self):
        self.rng = np.random.default_rng(0)

    def batch(self, n):
        return self.rng.normal(size=(n, 3)).astype(np.float32)

    def epoch_steps(self, batch):
        return 2

    def get_state(self):
        return self.rng.bit_generator.state

    def set_state(self, state):
        self.rng.bit_generator.state = state


class Warnings(Feedback):
    def __init__(self):
        super().__init__()
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)


def run(tmp_path, degenerate_from):
    """A scalar w pulled towards 0 (loss w², falls every epoch, from w = 3); epochs from `degenerate_from`
    on are flagged degenerate. Returns (history, the w that was saved, warnings)."""
    torch.manual_seed(0)
    module = torch.nn.Module()
    module.w = torch.nn.Parameter(torch.tensor(3.0))
    epoch = {"n": 0}

    def loss(m, x):
        value = m.w ** 2 + 0.0 * x.sum()
        return value, {"w2": float(value.detach())}

    def degenerate(m, x):
        epoch["n"] += 1
        return f"degenerate at check {epoch['n']}" if epoch["n"] >= degenerate_from else None

    saved = {}

    def save(path, history):
        saved["w"] = float(module.w.detach())
        open(path, "w").write("model")

    out = str(tmp_path / f"model-{degenerate_from}.txt")
    fb = Warnings()
    cfg = TrainConfig(epochs=6, batch=4, lr=0.3, seed=1, patch=8, steps_per_epoch=2, device="cpu")
    trainer = Trainer(TrainTask(module, loss, save, "toy", degenerate=degenerate), Sampler(),
                      np.zeros((4, 3), np.float32), cfg, out, fb)
    return trainer.fit(resume=False), saved.get("w"), fb.warnings, out


def test_degenerate_epochs_are_never_selected(tmp_path):
    clean, w_clean, warn_clean, _ = run(tmp_path, degenerate_from=99)
    vals = [e["val"] for e in clean["epochs"]]
    assert vals == sorted(vals, reverse=True) and clean["best_epoch"] == 6 and not warn_clean
    # the same run with epochs 4-6 degenerate: their lower losses do not count, epoch 3 is kept and saved
    h, w, warnings, out = run(tmp_path, degenerate_from=4)
    assert [e["val"] for e in h["epochs"]] == vals
    assert h["best_epoch"] == 3 and h["best_val"] == vals[2] and h["best_val"] > min(vals)
    assert w == pytest.approx(np.sqrt(vals[2]), rel=1e-5)
    assert [e.get("degenerate") for e in h["epochs"]][3:] == [f"degenerate at check {i}" for i in (4, 5, 6)]
    assert len(warnings) == 1 and "epoch 4" in warnings[0] and "best so far is epoch 3" in warnings[0]
    log = [json.loads(line) for line in open(out + ".log.jsonl")]
    assert [r.get("degenerate") is not None for r in log if r["event"] == "epoch"] == [False] * 3 + [True] * 3
    assert log[-1]["best_epoch"] == 3


def test_only_degenerate_epochs_write_no_model(tmp_path):
    with pytest.raises(ModelError, match="every epoch gave a degenerate model .*degenerate at check 6.*no model was written"):
        run(tmp_path, degenerate_from=1)
    assert not os.path.exists(tmp_path / "model-1.txt")
