"""Stage 2 (spatial branch): Spa-FEN/FRN shapes and modes, each loss against independent computations,
a short stage-2 training on real background patches, checkpoint reload, resume, and the error paths."""
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import RAW, WEIGHTS
from fers.checkpoint import load_model, read_checkpoint
from fers.errors import Cancelled, InputError, ModelError
from fers.feedback import Feedback
from fers.spatial import (FRN, LightSPP, SEBlock, SpaFEN, fers_loss, loss_cc, loss_cos, loss_ssim, loss_var,
                          spafen_from_state, ssim)
from fers.spatial.loss import gaussian_window
from fers.train.data import load_background
from fers.train.stage2 import train_spatial

TEACHER = os.path.join(WEIGHTS, "fers-reference", "aviris_ng-50bands")  # the authors' 50-band Spe-FEN
SOURCES = [os.path.join(RAW, n) for n in ("abu-urban-1.mat", "abu-beach-3.mat", "Rcuprite50x90x188.mat")]
SMALL = dict(backbone_weights="random", batch=4, patch=32, steps_per_epoch=4, device="cpu", val_patches=4, seed=3)
EPOCHS = 3
# scaled cubes lie in [-0.1, 0.1] (variance ~1e-3); an FRN that reconstructs anything stays far below this
MSE_BOUND = 0.02




pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------ networks

@pytest.fixture(scope="module")
def spa():
    torch.manual_seed(0)
    return SpaFEN(12)


def test_spafen_shapes_modes_and_frozen_backbone(spa):
    x = torch.rand(2, 12, 40, 33) * 0.2 - 0.1
    spa.train()
    # the reference keeps the frozen ResNet-34 in train mode: BatchNorm statistics adapt
    assert spa.backbone.training and spa.spp.training
    assert not any(p.requires_grad for p in spa.backbone.parameters())
    before = spa.backbone.bn1.running_mean.clone()
    out = spa(x)
    assert out.shape == x.shape and (out >= 0).all()
    assert not torch.equal(before, spa.backbone.bn1.running_mean)
    frn = FRN(12)
    recon = frn(out + torch.rand_like(out))
    assert recon.shape == x.shape
    recon.pow(2).mean().backward()
    assert spa.compression.conv.weight.grad.abs().sum() > 0 and spa.spp.fuse[0].weight.grad.abs().sum() > 0
    assert spa.spp.se.fc[0].weight.grad is not None and frn.final_conv.weight.grad is not None
    assert all(p.grad is None for p in spa.backbone.parameters())
    spa.zero_grad(set_to_none=True)
    spa.eval()
    assert not spa.backbone.training
    # adapt_bn=False: the backbone stays in eval mode (ImageNet statistics) even while training
    fixed = SpaFEN(12, adapt_bn=False).train()
    assert not fixed.backbone.training and fixed.spp.training
    stats = fixed.backbone.bn1.running_var.clone()
    fixed(x)
    assert torch.equal(stats, fixed.backbone.bn1.running_var)


def test_lightspp_output_at_input_resolution_equals_the_literal_concat_form():
    torch.manual_seed(1)
    spp = LightSPP(256, 12).eval()
    feats = torch.rand(2, 256, 3, 2)
    out = spp(feats, (40, 33))
    assert out.shape == (2, 12, 40, 33)
    # the paper's order: pool, resize each level to the input size, concatenate, then the 1×1 convs
    levels = [F.interpolate(F.adaptive_avg_pool2d(feats, s), size=(40, 33), mode="bilinear", align_corners=False)
              for s in (1, 2, 4)]
    cat = torch.cat(levels, 1)
    assert cat.shape[1] == 768
    w1, w2 = spp.fuse[0].weight[:, :, 0, 0], spp.fuse[2].weight[:, :, 0, 0]
    h = torch.relu(torch.einsum("oc,nchw->nohw", w2, torch.relu(torch.einsum("oc,nchw->nohw", w1, cat))))
    # SE: global mean → C→C/8 → ReLU → C/8→C → sigmoid → scale
    s = h.mean((2, 3))
    a, b = spp.se.fc[0].weight[:, :, 0, 0], spp.se.fc[2].weight[:, :, 0, 0]
    gate = torch.sigmoid(torch.relu(s @ a.T) @ b.T)
    torch.testing.assert_close(out, h * gate[:, :, None, None], rtol=1e-5, atol=1e-6)
    # built row block by row block (inference), with the SE gate applied afterwards: the same map
    with torch.no_grad():
        torch.testing.assert_close(spp(feats, (40, 33), block_rows=7), out, rtol=1e-5, atol=1e-6)
    assert SEBlock(12).fc[0].out_channels == 1 and SEBlock(4).fc[0].out_channels == 1  # C//8, at least 1


def test_spafen_inference_by_row_blocks_equals_one_piece(spa, monkeypatch):
    import fers.spatial.model as spatial_model

    spa.eval()
    x = torch.rand(1, 12, 70, 45) * 0.2 - 0.1
    whole = spa(x).detach()  # autograd on: computed in one piece
    monkeypatch.setattr(spatial_model, "INFER_BLOCK_PIXELS", 45 * 8)  # 8-row blocks
    with torch.inference_mode():
        torch.testing.assert_close(spa(x), whole, rtol=1e-5, atol=1e-5)


def test_spafen_input_errors(spa):
    spa.eval()
    with pytest.raises(InputError, match="at least 16×16 pixels"):
        spa(torch.zeros(1, 12, 15, 40))
    with pytest.raises(ModelError, match="built for 12 bands, but the input has 13"):
        spa(torch.zeros(1, 13, 32, 32))
    with pytest.raises(InputError, match=r"\(N, bands, rows, cols\)"):
        spa(torch.zeros(12, 32, 32))
    spa.train()
    with pytest.raises(InputError, match="batch of 2 or more"):
        spa(torch.zeros(1, 12, 16, 16))
    spa.eval()


# ------------------------------------------------------------------ losses, against independent computations

def _np_standardise(x):
    x = x.reshape(x.shape[0], x.shape[1], -1).astype(np.float64)
    mean = x.mean(axis=(0, 2), keepdims=True)
    std = np.sqrt(((x - mean) ** 2).sum(axis=(0, 2), keepdims=True) / (x.shape[0] * x.shape[2] - 1))
    return (x - mean) / (std + 1e-6)


def test_loss_cc():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 5, 6, 7)), rng.normal(size=(2, 4, 6, 7))
    sa, sb = _np_standardise(a), _np_standardise(b)
    cmat = sum(sa[n] @ sb[n].T for n in range(2)) / (2 * 42)
    got = float(loss_cc(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)))
    assert math.isclose(got, float((cmat ** 2).sum()), rel_tol=1e-9)
    # identical features made of C mutually uncorrelated channels (±1 Walsh patterns over the 16 pixels):
    # Cmat = ((M-1)/M)·I with the unbiased std, so L_cc = C·((M-1)/M)², M = N·H·W
    walsh = np.array([[1 if bin(i & j).count("1") % 2 == 0 else -1 for j in range(16)] for i in range(16)], float)
    x = torch.tensor(walsh[1:4].reshape(1, 3, 4, 4))
    assert math.isclose(float(loss_cc(x, x)), 3 * (15 / 16) ** 2, rel_tol=1e-5)
    # and a student uncorrelated with the teacher costs nothing
    y = torch.tensor(walsh[4:7].reshape(1, 3, 4, 4))
    assert float(loss_cc(x, y)) < 1e-20


def test_loss_cos():
    e = torch.zeros(1, 4, 3, 3)
    spe, spa_ = e.clone(), e.clone()
    spe[:, :2], spa_[:, 2:] = 1.0, 2.0  # disjoint channels: orthogonal at every pixel
    assert float(loss_cos(spe, spa_)) == 1.0
    assert math.isclose(float(loss_cos(spe, 3 * spe)), 2.0, rel_tol=1e-6)
    rng = np.random.default_rng(1)
    a, b = rng.random((2, 6, 5, 4)), rng.random((2, 6, 5, 4))
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert math.isclose(float(loss_cos(torch.tensor(a), torch.tensor(b))), 1 + cos.mean(), rel_tol=1e-9)


def test_loss_var():
    rng = np.random.default_rng(2)
    f = rng.normal(scale=0.7, size=(3, 5, 6, 4))
    var = f.reshape(3, 5, -1).var(axis=2, ddof=1).mean(axis=0)
    expected = np.maximum(0.0, 1.0 - var).mean() + np.abs(f).mean()
    assert math.isclose(float(loss_var(torch.tensor(f))), expected, rel_tol=1e-9)
    # a constant F_spa = c: no variance at all → 1 + |c|
    assert math.isclose(float(loss_var(torch.full((2, 3, 4, 4), -0.25))), 1.25, rel_tol=1e-6)


def _np_ssim(x, y, c1=1e-4, c2=9e-4, sigma=1.5, size=5):
    """Textbook Gaussian SSIM, 2-D window as an outer product, reflect borders, float64."""
    t = np.arange(size) - size // 2
    g = np.exp(-t ** 2 / (2 * sigma ** 2))
    g /= g.sum()
    win = np.outer(g, g)
    p = size // 2

    def filt(img):  # (H, W) → (H, W)
        pad = np.pad(img, p, mode="reflect")
        h, w = img.shape
        return np.array([[(pad[i:i + size, j:j + size] * win).sum() for j in range(w)] for i in range(h)])

    out = np.empty_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            a, b = x[n, c], y[n, c]
            ma, mb = filt(a), filt(b)
            va, vb, cov = filt(a * a) - ma ** 2, filt(b * b) - mb ** 2, filt(a * b) - ma * mb
            out[n, c] = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2) + 1e-12)
    return out


def test_ssim_and_loss_ssim():
    g = gaussian_window()
    assert g.shape == (5,) and math.isclose(float(g.sum()), 1.0, rel_tol=1e-6)
    assert math.isclose(float(g[2] / g[1]), math.exp(1 / 4.5), rel_tol=1e-5)  # σ = 1.5
    rng = np.random.default_rng(3)
    x = rng.uniform(-0.1, 0.1, size=(2, 3, 9, 11))
    y = x + rng.normal(scale=0.05, size=x.shape)
    tx, ty = torch.tensor(x), torch.tensor(y)
    # SSIM(x, x) = 1 up to the reference's ε = 1e-12 in the denominator, which is not negligible against
    # C1·C2 ≈ 9e-8 for images as flat as these: 1 − SSIM ≈ ε/(C1·C2) ≈ 1e-5 at most
    assert float((1 - ssim(tx, tx)).abs().max()) < 2e-5
    expected = _np_ssim(x, y)
    np.testing.assert_allclose(ssim(tx, ty).numpy(), expected, rtol=1e-9, atol=1e-12)
    assert math.isclose(float(loss_ssim(tx, ty)), float(np.clip((1 - expected) / 2, 0, 1).mean()), rel_tol=1e-9)
    assert float(loss_ssim(tx, tx)) < 1e-5
    # constants: two flat images a, b → SSIM = (2ab + C1)/(a² + b² + C1) with C1 = (0.01·1.0)², data range 1.0
    a, b = torch.full((1, 1, 8, 8), 0.05, dtype=torch.float64), torch.full((1, 1, 8, 8), -0.05, dtype=torch.float64)
    assert torch.allclose(ssim(a, b), torch.tensor(-0.0049 / 0.0051, dtype=torch.float64))
    # far apart: SSIM < -1 is impossible, but (1 - SSIM)/2 is clamped to [0, 1] like the reference's kornia loss
    assert 0.0 <= float(loss_ssim(a, b)) <= 1.0


def test_fers_loss_combines_the_parts():
    torch.manual_seed(4)
    f_spe, f_spa = torch.rand(2, 12, 16, 16), torch.rand(2, 12, 16, 16)
    h = torch.rand(2, 12, 16, 16) * 0.2 - 0.1
    recon = h + 0.01 * torch.randn_like(h)
    total, parts = fers_loss(f_spe, f_spa, h, recon)
    assert set(parts) == {"cc", "cos", "var", "mse", "ssim"} and all(isinstance(v, float) for v in parts.values())
    expected = parts["cc"] + 0.1 * parts["cos"] + 0.1 * parts["var"] + parts["mse"] + 0.01 * parts["ssim"]
    assert math.isclose(float(total), expected, rel_tol=1e-5)
    half, _ = fers_loss(f_spe, f_spa, h, recon, lambda_recon=0.5)
    assert math.isclose(float(half), expected - 0.5 * (parts["mse"] + 0.01 * parts["ssim"]), rel_tol=1e-5)


# ------------------------------------------------------------------ stage-2 training on real background patches

class CancelAfter(Feedback):
    def __init__(self, n):
        self.n, self.calls = n, 0

    def progress(self, fraction, message=""):
        self.calls += 1

    def cancelled(self):
        return self.calls >= self.n


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("s2") / "fers.pt"
    res = train_spatial(SOURCES, str(out), TEACHER, epochs=EPOCHS, **SMALL)
    return out, res


def test_stage2_decorrelates_and_reconstruction_stays_bounded(trained):
    _, res = trained
    h = res["history"]
    epochs = h["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(1, EPOCHS + 1))
    print("\nstage-2 trajectory (train means per epoch):")
    for e in epochs:
        print(f"  epoch {e['epoch']}: " + ", ".join(f"{k} {v:.4f}" for k, v in e["train"].items())
              + f"; val {e['val']:.4f}")
    assert all(set(e["train"]) == {"cc", "cos", "var", "mse", "ssim", "total"} for e in epochs)
    # the decoupling term falls: the student moves away from the teacher's features
    assert epochs[-1]["train"]["cc"] < 0.8 * epochs[0]["train"]["cc"]
    # the reconstruction of H from F_spe + F_spa stays finite, bounded and improves
    mse = [e["train"]["mse"] for e in epochs]
    assert all(np.isfinite(mse)) and max(mse) < 1.0 and mse[-1] < MSE_BOUND and mse[-1] < mse[0]
    assert all(np.isfinite(e["val"]) for e in epochs) and h["best_epoch"] in range(1, EPOCHS + 1)
    assert res["data"]["val_scenes"] == ["Rcuprite50x90x188.mat"]
    assert os.path.exists(res["log"]) and not os.path.exists(res["output"] + ".resume.pt")


def test_fers_checkpoint_metadata_and_exact_reload(trained):
    out, res = trained
    ck = read_checkpoint(str(out))
    meta = ck["meta"]
    assert ck["kind"] == "fers" and meta["stage"] == 2 and meta["bands"] == 50 and meta["band_indices"] == list(range(50))
    assert meta["adapt_bn"] is True and meta["spa_backbone_weights"] == "random"
    assert meta["teacher"] == os.path.abspath(TEACHER) and meta["fpl_hidden"] == 128
    assert meta["training"]["selection"] == "lowest validation loss among epochs whose Spa-FEN did not collapse"
    assert meta["training"]["collapsed_epochs"] == [] and meta["losses"]["best_val"] > 0
    # the adapted BatchNorm statistics of the ResNet-34 are part of the model (torchvision init: mean 0, var 1)
    assert "backbone.bn1.running_mean" in ck["spa_fen"] and ck["spa_fen"]["backbone.bn1.running_mean"].abs().sum() > 0
    x = torch.from_numpy(load_background(SOURCES[0], 50, 32).cube[None, :, :40, :36].copy())
    a, b = load_model(str(out)), load_model(str(out))
    teacher = load_model(TEACHER)
    with torch.inference_mode():
        fa, fb = a.spa(x), b.spa(x)
        mem = res["spa_fen"].eval()(x)
        assert not a.spa.training and fa.shape == x.shape
        assert torch.equal(fa, fb) and torch.equal(fa, mem)
        # the teacher travels unchanged inside the FERS checkpoint
        assert torch.equal(a.spe(x), teacher.spe(x))
    with pytest.raises(ModelError, match="takes 50 bands but the metadata says 12"):
        spafen_from_state(ck["spa_fen"], dict(meta, bands=12), str(out))
    broken = {k: v for k, v in ck["spa_fen"].items() if "running_var" not in k}
    with pytest.raises(ModelError, match="missing"):
        spafen_from_state(broken, meta, str(out))


def test_stage2_cancel_then_resume_equals_uninterrupted_run(trained, tmp_path):
    out, _ = trained
    resumed = tmp_path / "resumed.pt"
    # 2 progress reports while loading the 2 training scenes, then one per step: cancel in epoch 2
    with pytest.raises(Cancelled, match="resume with the same command"):
        train_spatial(SOURCES, str(resumed), TEACHER, epochs=EPOCHS, feedback=CancelAfter(2 + 4 + 2), **SMALL)
    state = torch.load(str(resumed) + ".resume.pt", weights_only=True)["module"]
    # frozen conv weights stay out of the resume file, the adapting BatchNorm statistics do not
    assert "spa.backbone.bn1.running_mean" in state and "spa.backbone.layer3.5.bn2.running_var" in state
    assert "spa.backbone.conv1.weight" not in state and "spa.backbone.bn1.weight" not in state
    train_spatial(SOURCES, str(resumed), TEACHER, epochs=EPOCHS, **SMALL)
    a, b = read_checkpoint(str(out))["spa_fen"], read_checkpoint(str(resumed))["spa_fen"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_stage2_band_and_patch_errors(tmp_path):
    with pytest.raises(InputError, match="trained on 50 bands, but 12 are asked for"):
        train_spatial(SOURCES, str(tmp_path / "x.pt"), TEACHER, bands=12, **SMALL)
    with pytest.raises(InputError, match="at least 16 px"):
        train_spatial(SOURCES, str(tmp_path / "x.pt"), TEACHER, **dict(SMALL, patch=8))
    with pytest.raises(ModelError, match="not found"):
        train_spatial(SOURCES, str(tmp_path / "x.pt"), str(tmp_path / "missing.pt"), **SMALL)


def test_stage2_collapsed_spafen_is_refused(tmp_path, monkeypatch):
    # a healthy short run's F_spa spreads far above the collapse threshold; with the threshold raised
    # above any real spread every epoch counts as collapsed, and no model is written
    import fers.train.stage2 as stage2

    monkeypatch.setattr(stage2, "COLLAPSE_SPREAD", float("inf"))
    out = tmp_path / "collapsed.pt"
    with pytest.raises(ModelError, match=r"every epoch gave a degenerate model \(the Spa-FEN collapsed: F_spa is "
                                         r"constant on every validation patch \(largest channel std [0-9.e-]+\)\)"):
        train_spatial(SOURCES, str(out), TEACHER, epochs=1, **SMALL)
    assert not out.exists()


def test_stage2_from_a_fers_teacher_keeps_the_spefen_training_record(tmp_path):
    # retraining the Spa-FEN of a complete model: the new card must describe the Spe-FEN's stage-1 training,
    # not the replaced Spa-FEN's (the bundled model's "training" is its stage 2, "teacher_training" its stage 1)
    bundled = read_checkpoint(load_model("fers-aviris-100").source)["meta"]
    assert bundled["stage"] == 2 and bundled["teacher_training"] != bundled["training"]
    out = tmp_path / "retrained.pt"
    train_spatial(SOURCES, str(out), "fers-aviris-100", epochs=1, **SMALL)
    meta = read_checkpoint(str(out))["meta"]
    assert meta["teacher_training"] == bundled["teacher_training"]
    assert meta["teacher_losses"] == bundled["teacher_losses"]
    assert meta["training"]["epochs"] == 1 and meta["training"]["steps_per_epoch"] == SMALL["steps_per_epoch"]
