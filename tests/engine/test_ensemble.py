"""Spe-FEN seed ensembles: F_spe is the members' mean, tiled or whole, through checkpoints, CLI, detection and stage 2."""
import os

import numpy as np
import pytest
import torch

from conftest import RAW, WEIGHTS, fers, mat_scene, numpy_rx
from fers.checkpoint import ensemble, load_model, read_checkpoint, save_checkpoint
from fers.errors import ModelError
from fers.pipeline import score_scene
from fers.preprocess import scale_cube
from fers.spectral import SpeFEN, SpeFENEnsemble
from fers.tiling import spefen_tiled
from fers.train.stage2 import train_spatial

AUTHORS_50 = os.path.join(WEIGHTS, "fers-reference", "aviris_ng-50bands")


def spe_file(path, net, seed):
    meta = {"bands": net.bands, "band_indices": list(range(net.bands)), "stage": 1, "trunk": "wide_resnet50_2",
            "training": {"seed": seed, "epochs": 1}, "losses": {"best_val": 0.5 + seed}}
    return save_checkpoint(str(path), "spe-fen", meta, spe_fen=net.state_dict())


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """The authors' 50-band Spe-FEN and a second one sharing its layer1 with its own (seeded) CWL and FPL."""
    folder = tmp_path_factory.mktemp("members")
    first = load_model(AUTHORS_50).spe
    torch.manual_seed(7)
    second = SpeFEN(50, hidden=first.hidden)
    second.layer1.load_state_dict(first.layer1.state_dict())
    # a trained FPL's outputs are not all-zero after its ReLU: shift the bias so this one is not either
    torch.nn.init.constant_(second.fpl.conv2.bias, 0.05)
    return [first, second.eval()], [spe_file(folder / "a.pt", first, 10), spe_file(folder / "b.pt", second, 11)]


@pytest.fixture(scope="module")
def scene():
    cube, gt = mat_scene("abu-airport-4")
    cube = np.ascontiguousarray(np.moveaxis(cube[:60, :60, :50], 2, 0).astype(np.float32))
    valid = np.ones(cube.shape[1:], bool)
    return scale_cube(cube, valid)[0], valid, gt[:60, :60]


def test_ensemble_is_the_mean_of_its_members_whole_and_tiled(members, scene):
    nets, _ = members
    net = SpeFENEnsemble.from_members(nets)
    h = torch.from_numpy(scene[0])
    with torch.inference_mode():
        f1, f2 = (m(h[None])[0] for m in nets)
        assert float((f1 - f2).abs().max()) > 0.01  # the members differ, so the mean is a real test
        whole = net(h[None])[0]
        tiled = spefen_tiled(net, h, 23)
    torch.testing.assert_close(whole, (f1 + f2) / 2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(tiled, whole, rtol=1e-5, atol=1e-5)
    # layer1 is stored once: an ensemble of K adds only K-1 CWL/FPL pairs
    assert sum(k.startswith("layer1.") for k in net.state_dict()) == sum(k.startswith("layer1.")
                                                                       for k in nets[0].state_dict())


def test_ensemble_checkpoint_scores_like_rx_of_the_mean_features(members, scene, tmp_path):
    nets, files = members
    out = tmp_path / "ens.pt"
    res = fers("ensemble", *files, "-o", out)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(out) and "Spe-FEN ensemble of 2, 50 bands" in res.stderr
    model = load_model(str(out))
    meta = read_checkpoint(str(out))["meta"]
    assert [m["training"]["seed"] for m in meta["ensemble"]] == [10, 11]
    assert [m["file"] for m in meta["ensemble"]] == ["a.pt", "b.pt"] and meta["training"]["seed"] == 10
    cube, valid, gt = scene
    scores, _ = score_scene(cube, valid, "spectral", "rx", model, "cpu", rx_trim=0.0)
    with torch.inference_mode():
        mean = sum(m(torch.from_numpy(cube)[None])[0] for m in nets).numpy() / 2
    expected = numpy_rx((cube + mean).reshape(50, -1).T)
    # RX is invariant to the textbook version's [0, 1] rescaling: compare up to that one factor
    got = scores.ravel().astype(np.float64)
    np.testing.assert_allclose(got / got.max(), expected / expected.max(), rtol=2e-3, atol=1e-5)


def test_ensemble_refuses_members_that_do_not_fit(members, tmp_path):
    nets, files = members
    other = SpeFEN(50, hidden=nets[0].hidden)  # a random layer1: not the members' frozen one
    odd = spe_file(tmp_path / "odd.pt", other, 12)
    with pytest.raises(ModelError, match="different layer1"):
        ensemble([files[0], odd], str(tmp_path / "x.pt"))
    with pytest.raises(ModelError, match="at least 2 models"):
        ensemble(files[:1], str(tmp_path / "x.pt"))
    wide = spe_file(tmp_path / "wide.pt", SpeFEN(60, hidden=nets[0].hidden), 13)
    res = fers("ensemble", files[0], wide, "-o", tmp_path / "x.pt")
    assert res.returncode == 2 and "other bands than" in res.stderr and res.stderr.count("\n") == 1
    ens = ensemble(files, str(tmp_path / "ens.pt"))
    res = fers("ensemble", ens, files[0], "-o", tmp_path / "x.pt")
    assert res.returncode == 2 and "an ensemble already" in res.stderr
    assert not (tmp_path / "x.pt").exists()


def test_stage2_trains_against_an_ensemble_teacher(members, tmp_path):
    _, files = members
    teacher = ensemble(files, str(tmp_path / "teacher.pt"))
    out = tmp_path / "fers.pt"
    train_spatial([os.path.join(RAW, n) for n in ("abu-urban-1.mat", "Rcuprite50x90x188.mat")], str(out), teacher,
                  backbone_weights="random", epochs=1, batch=2, patch=32, steps_per_epoch=2, device="cpu",
                  val_patches=2, seed=3)
    model = load_model(str(out))
    assert model.describe() == "fers.pt (Spe-FEN ensemble of 2 + Spa-FEN, 50 bands)"
    meta = read_checkpoint(str(out))["meta"]
    # the card's stage-1 line is the first member's run; every member's record travels
    assert meta["teacher_training"]["seed"] == 10 and len(meta["ensemble"]) == 2
    torch.testing.assert_close(model.spe.state_dict(), load_model(teacher).spe.state_dict())
