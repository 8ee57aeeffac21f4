"""Stage 1 (spectral branch): network shapes, losses, backbone naming, the authors' checkpoints, safe loading."""
import math
import os
import shutil
from types import SimpleNamespace
from urllib.error import URLError

import numpy as np
import pytest
import torch

from conftest import RAW, WEIGHTS, pairwise_auc
from fers import backbones
from fers.detect.rx import rx
from fers.errors import InputError, ModelError
from fers.io import open_source
from fers.metrics import roc_auc
from fers.preprocess import scale_cube
from fers.spectral import FERDNet, SpeFEN, ferd_loss, load_reference_spefen, loss_mse, loss_sim, loss_z

REFERENCE = os.path.join(WEIGHTS, "fers-reference")

# ../shared/data/README.md, right-hand column: RX(H + F_spe) with the authors' checkpoints
PUBLISHED_FERD = [
    ("abu-airport-1", 200, "aviris-200bands", 0.9489), ("abu-airport-2", 200, "aviris-200bands", 0.9871),
    ("abu-airport-3", 200, "aviris-200bands", 0.9738), ("abu-urban-4", 200, "aviris-200bands", 0.9754),
    ("abu-urban-5", 200, "aviris-200bands", 0.9697), ("abu-airport-1", 100, "aviris_ng-100bands", 0.9372),
    ("abu-airport-4", 100, "aviris_ng-100bands", 0.9752), ("abu-urban-3", 100, "aviris_ng-100bands", 0.9737),
]


# ------------------------------------------------------------------ (a) network shapes

@pytest.fixture(scope="module")
def ferd():
    torch.manual_seed(0)
    return FERDNet(12, trunk="wide_resnet50_2")


def test_ferd_shapes_and_frozen_trunk(ferd):
    ferd.train()
    assert not ferd.encoder.training and ferd.mffm.training and ferd.decoder.training
    assert not any(p.requires_grad for p in ferd.encoder.parameters())
    x = torch.randn(1, 12, 16, 16) * 0.05
    out = ferd(x)
    # 16 + 2·4 = 24 is already a multiple of 8
    assert [tuple(t.shape) for t in out.f_E] == [(1, 256, 24, 24), (1, 512, 12, 12), (1, 1024, 6, 6)]
    assert [t.shape for t in out.g_D] == [t.shape for t in out.f_E]
    assert out.recon.shape == x.shape and out.f_spe.shape == x.shape
    assert tuple(out.zcl_logits.shape) == (1, 1, 16, 16)
    assert (out.f_spe >= 0).all()
    total, parts = ferd_loss(out, x)
    assert set(parts) == {"sim", "mse", "z"} and math.isfinite(float(total.detach()))
    total.backward()
    # the CWL learns through the frozen trunk; the trunk itself gets no gradient
    assert ferd.cwl.convh.weight.grad is not None and ferd.cwl.convh.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in ferd.encoder.parameters())
    assert ferd.zcl.conv3.weight.grad is not None
    ferd.zero_grad(set_to_none=True)


def test_spefen_is_cut_from_ferd_without_copies(ferd):
    spe = SpeFEN.from_ferd(ferd)
    assert spe.cwl is ferd.cwl and spe.layer1 is ferd.encoder.layer1 and spe.fpl is ferd.fpl
    ferd_params = {id(p) for p in ferd.parameters()}
    assert all(id(p) in ferd_params for p in spe.parameters())
    assert spe.state_dict()["cwl.convh.weight"].data_ptr() == ferd.cwl.convh.weight.data_ptr()
    # the checkpoint holds CWL, layer1 and FPL only (SPEC §1), never the ZCL
    assert {k.split(".")[0] for k in spe.state_dict()} == {"cwl", "layer1", "fpl"}
    # 13×17 makes the training net pad extra bottom/right rows; layer1's radius 3 < 4 keeps F_spe unchanged
    ferd.eval()
    x = torch.randn(2, 12, 13, 17) * 0.05
    with torch.inference_mode():
        f = spe(x)
        assert f.shape == x.shape
        torch.testing.assert_close(f, ferd(x).f_spe, rtol=1e-5, atol=1e-6)


def test_spefen_rejects_tiny_inputs_and_wrong_band_counts():
    spe = SpeFEN(12).eval()
    with torch.inference_mode():
        assert spe(torch.zeros(1, 12, 5, 5)).shape == (1, 12, 5, 5)
        with pytest.raises(InputError, match="5×5"):
            spe(torch.zeros(1, 12, 4, 30))
        with pytest.raises(ModelError, match="12 bands"):
            spe(torch.zeros(1, 13, 8, 8))


# ------------------------------------------------------------------ (b) losses against hand computation

def test_loss_sim_hand_computed():
    # scale 1: sample 0 orthogonal (cos 0), sample 1 parallel (cos 1) → mean(1, 0) = 0.5
    a1 = torch.tensor([[1.0, 0.0], [1.0, 1.0]]).reshape(2, 2, 1, 1)
    b1 = torch.tensor([[0.0, 1.0], [2.0, 2.0]]).reshape(2, 2, 1, 1)
    # scale 2 (maps flattened per sample over channels and pixels): cos((3,4),(4,3)) = 24/25, cos((1,0),(-1,0)) = -1
    a2 = torch.tensor([[3.0, 4.0], [1.0, 0.0]]).reshape(2, 1, 1, 2)
    b2 = torch.tensor([[4.0, 3.0], [-1.0, 0.0]]).reshape(2, 1, 1, 2)
    expected = 0.5 + ((1 - 24 / 25) + 2.0) / 2
    assert float(loss_sim([a1, a2], [b1, b2])) == pytest.approx(expected, abs=1e-6)
    # and on random maps against a plain numpy cosine
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 4, 5, 5)), rng.normal(size=(3, 4, 5, 5))
    fa, fb = a.reshape(3, -1), b.reshape(3, -1)
    ref = np.mean(1 - (fa * fb).sum(1) / np.linalg.norm(fa, axis=1) / np.linalg.norm(fb, axis=1))
    got = loss_sim([torch.tensor(a, dtype=torch.float64)], [torch.tensor(b, dtype=torch.float64)])
    assert float(got) == pytest.approx(ref, rel=1e-12)


def test_loss_mse_and_z_hand_computed():
    h = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    assert float(loss_mse(h, torch.ones_like(h))) == pytest.approx((0 + 1 + 4 + 9) / 4)
    # sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4
    o = torch.tensor([0.0, math.log(3), -math.log(3)]).reshape(1, 1, 1, 3)
    expected = -(math.log(1 - 0.5) + math.log(1 - 0.75) + math.log(1 - 0.25)) / 3
    assert float(loss_z(o)) == pytest.approx(expected, rel=1e-6)
    # saturated logits stay finite: −log(1 − sigmoid(50)) = log(1 + e^50) ≈ 50
    assert float(loss_z(torch.full((1, 1, 1, 1), 50.0))) == pytest.approx(50.0, rel=1e-6)


def test_ferd_loss_weights():
    a = torch.tensor([[1.0, 0.0]]).reshape(1, 2, 1, 1)
    b = torch.tensor([[0.0, 1.0]]).reshape(1, 2, 1, 1)
    h = torch.zeros(1, 1, 1, 2)
    out = SimpleNamespace(f_E=[a, a, a], g_D=[b, a, a], recon=torch.tensor([[[[1.0, 3.0]]]]),
                          zcl_logits=torch.zeros(1, 1, 1, 1), f_spe=None)
    total, parts = ferd_loss(out, h)
    sim, mse, z = 1.0, (1 + 9) / 2, math.log(2)
    assert parts == pytest.approx({"sim": sim, "mse": mse, "z": z}, rel=1e-6)
    assert float(total) == pytest.approx(sim + 0.1 * mse + 0.1 * z, rel=1e-6)
    total2, _ = ferd_loss(out, h, w_mse=1.0, w_z=0.0)
    assert float(total2) == pytest.approx(sim + mse, rel=1e-6)


# ------------------------------------------------------------------ (c) backbones: torchvision names

def _bn(prefix):
    return [f"{prefix}.{s}" for s in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]


def _torchvision_keys(blocks, convs, stem):
    """torchvision's state-dict key names, written out independently of fers.backbones."""
    keys = (["conv1.weight"] + _bn("bn1")) if stem else []
    for i, n in enumerate(blocks):
        for j in range(n):
            p = f"layer{i + 1}.{j}"
            for c in range(1, convs + 1):
                keys += [f"{p}.conv{c}.weight"] + _bn(f"{p}.bn{c}")
            if j == 0 and (i > 0 or convs == 3):
                keys += [f"{p}.downsample.0.weight"] + _bn(f"{p}.downsample.1")
    return keys


def test_wide_resnet101_layer1_matches_authors_enc_pt():
    enc = torch.load(os.path.join(REFERENCE, "aviris-200bands", "enc.pt"), map_location="cpu",
                     weights_only=True)["state_dict"]
    trunk = backbones.wide_resnet101_2(stem=False, depth=1)
    own = trunk.state_dict()
    assert list(own) == list(enc)
    assert {k: tuple(v.shape) for k, v in own.items()} == {k: tuple(v.shape) for k, v in enc.items()}
    assert sorted(own) == sorted(_torchvision_keys([3], 3, stem=False))


def test_resnet34_and_wide50_use_torchvision_names():
    r34 = backbones.resnet34(stem=True, depth=3)
    sd = r34.state_dict()
    assert sorted(sd) == sorted(_torchvision_keys([3, 4, 6], 2, stem=True))
    assert tuple(sd["conv1.weight"].shape) == (64, 3, 7, 7)
    assert tuple(sd["layer1.0.conv1.weight"].shape) == (64, 64, 3, 3)
    assert tuple(sd["layer2.0.downsample.0.weight"].shape) == (128, 64, 1, 1)
    assert tuple(sd["layer3.5.conv2.weight"].shape) == (256, 256, 3, 3)
    assert r34(torch.zeros(1, 3, 64, 64))[-1].shape == (1, 256, 4, 4)  # H/16, SPEC §2
    w50 = backbones.wide_resnet50_2(stem=False, depth=3).state_dict()
    assert sorted(w50) == sorted(_torchvision_keys([3, 4, 6], 3, stem=False))
    assert tuple(w50["layer3.0.conv2.weight"].shape) == (512, 512, 3, 3)  # wide: 2× bottleneck width


def test_backbone_weights_from_file_random_and_errors(tmp_path):
    # a "full torchvision network" file: stem + 4 stages + fc; the trunk takes only what it has
    torch.manual_seed(3)
    full = backbones.resnet34(stem=True, depth=4).state_dict()
    full["fc.weight"], full["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    path = tmp_path / "r34.pth"
    torch.save(full, path)
    trunk = backbones.resnet34(stem=True, depth=3)
    assert backbones.load_backbone_weights(trunk, "resnet34", str(path)) == f"file:{path}"
    torch.testing.assert_close(trunk.layer3[5].conv2.weight, full["layer3.5.conv2.weight"])
    before = trunk.conv1.weight.clone()
    assert backbones.load_backbone_weights(trunk, "resnet34", "random") == "random"
    torch.testing.assert_close(trunk.conv1.weight, before)
    # the authors' layer1-only enc.pt cannot fill a 3-stage trunk: the missing keys are named
    with pytest.raises(ModelError, match="missing .*layer2"):
        backbones.load_backbone_weights(backbones.wide_resnet101_2(stem=False, depth=3), "wide_resnet101_2",
                                        os.path.join(REFERENCE, "aviris-200bands", "enc.pt"))
    with pytest.raises(ModelError, match="not found"):
        backbones.load_backbone_weights(trunk, "resnet34", str(tmp_path / "nope.pth"))


def test_imagenet_offline_gives_actionable_error(monkeypatch, tmp_path):
    def offline(url, *a, **k):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelError) as e:
        backbones.load_backbone_weights(backbones.wide_resnet101_2(stem=False, depth=1), "wide_resnet101_2",
                                        "imagenet")
    msg = str(e.value)
    assert "offline" in msg and backbones.IMAGENET_URLS["wide_resnet101_2"] in msg
    assert os.path.join(str(tmp_path), "hub", "checkpoints", "wide_resnet101_2-32ee1156.pth") in msg
    assert "--backbone-weights PATH" in msg and "--backbone-weights random" in msg


# ------------------------------------------------------------------ (d) the authors' checkpoints

_models = {}


def _reference(name):
    if name not in _models:
        _models[name] = load_reference_spefen(os.path.join(REFERENCE, name))
    return _models[name]


def _ferd_scores(scene, bands, checkpoint):
    src = open_source(os.path.join(RAW, scene + ".mat"))
    cube, valid = src.read(list(range(bands)))
    h, _ = scale_cube(cube, valid)
    with torch.inference_mode():
        f_spe = _reference(checkpoint)(torch.from_numpy(h)[None])[0].numpy()
    return rx(h + f_spe, valid)[0], src.ground_truth() > 0, valid


@pytest.mark.parametrize("scene,bands,checkpoint,published", PUBLISHED_FERD)
def test_authors_checkpoints_reproduce_published_auc(scene, bands, checkpoint, published):
    scores, gt, valid = _ferd_scores(scene, bands, checkpoint)
    assert _reference(checkpoint).bands == bands
    assert abs(roc_auc(scores, gt, valid) - published) <= 0.0005


def test_auc_independent_of_engine_metric():
    scores, gt, valid = _ferd_scores("abu-airport-1", 200, "aviris-200bands")
    assert valid.all()
    independent = pairwise_auc(scores, gt)
    assert independent == pytest.approx(roc_auc(scores, gt, valid), abs=1e-12)
    assert abs(independent - 0.9489) <= 0.0005


def test_reference_hidden_width_follows_band_count():
    for name, bands, hidden in [("aviris_ng-50bands", 50, 128), ("aviris_ng-200bands", 200, 256)]:
        spe = _reference(name)
        assert (spe.bands, spe.hidden) == (bands, hidden)
        assert not spe.layer1.training


# ------------------------------------------------------------------ (e) unsafe and broken checkpoints

class _Payload:
    """Unpickling this runs a shell command: the loader must never do it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Custom:
    pass


def _copy_reference(tmp_path, name="aviris-200bands"):
    folder = tmp_path / name
    shutil.copytree(os.path.join(REFERENCE, name), folder)
    return folder


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    folder = _copy_reference(tmp_path)
    marker = tmp_path / "PAYLOAD_RAN"
    torch.save({"state_dict": {"convh.weight": _Payload(marker)}}, folder / "convh.pt")
    with pytest.raises(ModelError, match="refused for safety"):
        load_reference_spefen(folder)
    assert not marker.exists()
    torch.save({"state_dict": {"conv1.weight": _Custom()}}, folder / "pc.pt")
    with pytest.raises(ModelError, match="refused for safety"):
        load_reference_spefen(folder)


def test_broken_checkpoints_give_model_errors(tmp_path):
    folder = _copy_reference(tmp_path)
    data = (folder / "convh.pt").read_bytes()
    (folder / "convh.pt").write_bytes(data[:100])
    with pytest.raises(ModelError, match="truncated"):
        load_reference_spefen(folder)
    (folder / "convh.pt").write_bytes(data)
    torch.save(torch.zeros(3), folder / "enc.pt")  # a tensor, not a state dict
    with pytest.raises(ModelError, match="not a state dict"):
        load_reference_spefen(folder)
    shutil.copy(os.path.join(REFERENCE, "aviris-200bands", "enc.pt"), folder / "enc.pt")
    shutil.copy(os.path.join(REFERENCE, "aviris_ng-100bands", "pc.pt"), folder / "pc.pt")  # FPL for 100 bands
    with pytest.raises(ModelError, match="shape mismatch"):
        load_reference_spefen(folder)
    os.remove(folder / "pc.pt")
    with pytest.raises(ModelError, match="not found"):
        load_reference_spefen(folder)
    with pytest.raises(ModelError, match="not found"):
        load_reference_spefen(tmp_path / "no-such-folder")
