"""Stage-1 training on real background patches: the loss falls, checkpoints reload exactly, resume is exact."""
import os

import numpy as np
import pytest
import torch

from conftest import RAW, WEIGHTS
from fers.checkpoint import load_model, prune, read_checkpoint
from fers.errors import Cancelled, InputError
from fers.feedback import Feedback
from fers.spectral.model import FERDNet, SpeFEN
from fers.train.data import load_background, prepare_background
from fers.train.stage1 import train_spectral

ENC = os.path.join(WEIGHTS, "fers-reference", "aviris-200bands", "enc.pt")
SOURCES = [os.path.join(RAW, n) for n in ("abu-urban-1.mat", "abu-beach-3.mat", "Rcuprite50x90x188.mat")]
SMALL = dict(bands=12, trunk="wide_resnet50_2", backbone_weights=f"partial:{ENC}", batch=2, patch=32,
             steps_per_epoch=3, device="cpu", val_patches=4, seed=3)


class CancelAfter(Feedback):
    def __init__(self, n):
        self.n, self.calls = n, 0

    def progress(self, fraction, message=""):
        self.calls += 1

    def cancelled(self):
        return self.calls >= self.n


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("s1") / "stage1.pt"
    res = train_spectral(SOURCES, str(out), epochs=2, **SMALL)
    return out, res


def test_two_epochs_lower_the_training_loss(trained):
    out, res = trained
    h = res["history"]
    assert [e["epoch"] for e in h["epochs"]] == [1, 2]
    assert h["epochs"][1]["train"]["total"] < h["epochs"][0]["train"]["total"]
    assert np.isfinite(h["best_val"]) and h["best_epoch"] in (1, 2)
    # the validation scene is held out (the last source), never trained on
    assert res["data"]["val_scenes"] == ["Rcuprite50x90x188.mat"]
    assert "Rcuprite50x90x188.mat" not in res["data"]["train_scenes"]
    assert os.path.exists(res["log"]) and not os.path.exists(str(out) + ".resume.pt")


def test_checkpoint_metadata_and_exact_reload(trained):
    out, _ = trained
    ck = read_checkpoint(str(out))
    meta = ck["meta"]
    assert ck["kind"] == "stage1" and meta["bands"] == 12 and meta["band_indices"] == list(range(12))
    assert meta["trunk"] == "wide_resnet50_2" and "enc.pt (layer1) + random (layer2, layer3)" in meta["backbone_weights"]
    assert meta["training"]["selection"] == "lowest validation loss" and meta["losses"]["best_val"] > 0
    assert not any(k.startswith("encoder.") for k in ck["ferd"])  # frozen trunk not duplicated
    # rebuild the training net from the checkpoint: its pruned Spe-FEN must equal the saved one
    torch.manual_seed(SMALL["seed"])
    net = FERDNet(12, trunk="wide_resnet50_2")
    net.load_backbone(f"partial:{ENC}")
    missing, unexpected = net.load_state_dict(ck["ferd"], strict=False)
    assert not unexpected and all(k.startswith("encoder.") for k in missing)
    x = torch.from_numpy(load_background(SOURCES[0], 12, 32).cube[None, :, :40, :40].copy())
    with torch.inference_mode():
        a = SpeFEN.from_ferd(net).eval()(x)
        b = load_model(str(out)).spe(x)
        c = load_model(str(out)).spe(x)
    assert torch.equal(b, c) and torch.allclose(a, b, atol=1e-6)


def test_prune_keeps_outputs_and_shrinks(trained, tmp_path):
    out, _ = trained
    small = prune(str(out), str(tmp_path / "spe.pt"))
    assert os.path.getsize(small) < os.path.getsize(out) / 20
    assert read_checkpoint(small)["kind"] == "spe-fen"
    x = torch.rand(1, 12, 24, 24) * 0.2 - 0.1
    with torch.inference_mode():
        assert torch.equal(load_model(str(out)).spe(x), load_model(small).spe(x))


def test_cancel_then_resume_equals_uninterrupted_run(trained, tmp_path):
    out, _ = trained
    resumed = tmp_path / "resumed.pt"
    # cancel at the 2nd step of epoch 2 (2 progress reports while loading, then one per step)
    with pytest.raises(Cancelled, match="resume with the same command"):
        train_spectral(SOURCES, str(resumed), epochs=2, feedback=CancelAfter(6), **SMALL)
    assert not resumed.exists() and os.path.exists(str(resumed) + ".resume.pt")
    train_spectral(SOURCES, str(resumed), epochs=2, **SMALL)
    a, b = read_checkpoint(str(out)), read_checkpoint(str(resumed))
    assert a["spe_fen"].keys() == b["spe_fen"].keys()
    assert all(torch.equal(a["spe_fen"][k], b["spe_fen"][k]) for k in a["spe_fen"])


def test_background_masking_and_patch_rules():
    s = load_background(os.path.join(RAW, "abu-urban-1.mat"), 10, 64)
    assert s.masked_anomalies == 67 and s.usable.all()
    small = load_background(os.path.join(RAW, "Moffet.mat"), 10, 64)  # 50×50, mirrored up to 64
    assert small.cube.shape == (10, 64, 64)
    with pytest.raises(InputError, match="multiple of 8"):
        train_spectral(SOURCES, "/tmp/x.pt", bands=12, patch=30, epochs=1)
    with pytest.raises(InputError, match="none of the background scenes has the 300 bands"):
        prepare_background(SOURCES, 300, 32, 0)
