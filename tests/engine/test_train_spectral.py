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


def test_band_stretch_resamples_short_scenes_onto_the_model_bands():
    """A 188-band scene serves a 200-band model only when asked (band_stretch), by linear resampling along the
    band axis: checked against np.interp on the scene's own scaled bands."""
    path = os.path.join(RAW, "abu-beach-3.mat")  # 188 bands, 100×100, anomalies masked
    with pytest.raises(InputError, match="asks for the first 200 bands"):
        load_background(path, 200, 64)
    with pytest.raises(InputError, match="asks for the first 200 bands"):
        load_background(path, 200, 64, band_stretch=0.05)  # 188 × 1.05 < 200: too far to stretch
    s = load_background(path, 200, 64, band_stretch=0.1)
    ref = load_background(path, 188, 64)  # the same scene, its own bands, same scaling and filling
    assert s.cube.shape == (200, 100, 100) and s.stretched_from == 188 and ref.stretched_from == 0
    assert s.masked_anomalies == ref.masked_anomalies and (s.usable == ref.usable).all()
    rng = np.random.default_rng(0)
    for r, c in rng.integers(0, 100, size=(5, 2)):
        expect = np.interp(np.linspace(0, 187, 200), np.arange(188), ref.cube[:, r, c].astype(np.float64))
        np.testing.assert_allclose(s.cube[:, r, c], expect, rtol=0, atol=2e-7)
    np.testing.assert_array_equal(s.cube[0], ref.cube[0])
    np.testing.assert_array_equal(s.cube[-1], ref.cube[-1])
    # a scene with enough bands is never resampled; the training summary says which scenes were
    assert load_background(os.path.join(RAW, "abu-urban-1.mat"), 200, 64, band_stretch=0.1).stretched_from == 0
    data = prepare_background([os.path.join(RAW, "abu-urban-1.mat"), os.path.join(RAW, "Moffet.mat"), path],
                              200, 64, 0, band_stretch=0.1)
    assert data.summary["stretched_scenes"] == {"abu-beach-3.mat": 188} and data.val_names == ["abu-beach-3.mat"]
    assert data.summary["skipped_scenes"] == ["Moffet.mat"]  # 159 bands: beyond a 10 % stretch


def test_spectral_jitter_is_a_smooth_per_band_gain_on_the_shifted_spectra():
    """Each jittered patch is the plain patch (same seed, same window) times one gain per band on x + 0.1,
    the gain smooth along the bands, of log-spread σ over many draws; 0 leaves patches untouched."""
    from fers.train.data import PatchSampler, spectral_gain

    scene = load_background(os.path.join(RAW, "abu-urban-1.mat"), 100, 32)
    plain = PatchSampler([scene], 32, seed=5).batch(1)[0].astype(np.float64)
    jittered = PatchSampler([scene], 32, seed=5, spectral_jitter=0.1).batch(1)[0].astype(np.float64)
    ratio = (jittered + 0.1) / (plain + 0.1)  # (bands, rows, cols)
    per_band = np.median(ratio, axis=(1, 2))
    np.testing.assert_allclose(ratio, np.broadcast_to(per_band[:, None, None], ratio.shape), rtol=1e-4)
    assert np.abs(np.log(per_band)).max() > 0.01  # a real change
    assert np.abs(np.diff(np.log(per_band))).max() < 0.02  # neighbours move together
    logs = np.log([spectral_gain(np.random.default_rng(i), 100, 0.1) for i in range(400)])
    assert abs(logs.std() - 0.1) < 0.01 and abs(logs.mean()) < 0.01
    assert np.array_equal(PatchSampler([scene], 32, seed=5, spectral_jitter=0.0).batch(1)[0], plain.astype(np.float32))
    with pytest.raises(InputError, match="spectral jitter must be ≥ 0"):
        PatchSampler([scene], 32, seed=5, spectral_jitter=-0.1)
    data = prepare_background([os.path.join(RAW, n) for n in ("abu-urban-1.mat", "abu-beach-3.mat")], 100, 32, 0,
                              spectral_jitter=0.1)
    assert data.summary["spectral_jitter"] == 0.1 and data.train.jitter == 0.1


def _bordered(tmp_path, tag):
    """abu-urban-1 (16 bands, int16) with a zero fill on its top 10 rows and left 6 columns, as around a flight
    line, with or without a nodata tag."""
    from conftest import mat_scene, write_geotiff

    cube = mat_scene("abu-urban-1")[0][:, :, :16].astype(np.int16)
    cube[:10] = 0
    cube[:, :6] = 0
    return write_geotiff(tmp_path / f"bg-{tag}.tif", cube, nodata=0 if tag == "tagged" else None)


def test_extra_no_data_is_never_background(tmp_path):
    """nodata=0 on an untagged zero fill trains on what the same raster tagged nodata=0 gives (same usable
    pixels, same scaled values); without it the fill is sampled as background and shifts the scaling."""
    untagged, tagged = _bordered(tmp_path, "untagged"), _bordered(tmp_path, "tagged")
    ref = load_background(tagged, 12, 32)
    assert ref.usable.sum() == (100 - 10) * (100 - 6)
    got = load_background(untagged, 12, 32, nodata=[0])
    np.testing.assert_array_equal(got.usable, ref.usable)
    np.testing.assert_array_equal(got.cube[:, ref.usable], ref.cube[:, ref.usable])
    plain = load_background(untagged, 12, 32)
    assert plain.usable.all() and np.abs(plain.cube[:, ref.usable] - ref.cube[:, ref.usable]).max() > 1e-3
    # for every scene (nodata) or for one file (source_nodata, a QGIS layer's own values): the same pixels
    clean = os.path.join(RAW, "abu-beach-3.mat")
    for kw in ({"nodata": [0]}, {"source_nodata": {untagged: [(-0.5, 0.5)]}}):
        data = prepare_background([untagged, clean], 12, 32, 0, **kw)
        assert data.summary["train_pixels"] == 90 * 94 + 100 * 100
    assert data.summary["source_nodata"] == {"bg-untagged.tif": [[-0.5, 0.5]]} and data.summary["nodata"] == []
    assert prepare_background([untagged, clean], 12, 32, 0).summary["train_pixels"] == 2 * 100 * 100
