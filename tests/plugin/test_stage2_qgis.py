"""Stage 2 and the enhanced cube through real qgis_process, and the graphical-modeler file run headless."""
import os

import numpy as np
import pytest

from conftest import PAPER_SET, REPO, WEIGHTS, fers, mat_scene, pairwise_auc, qgis_process, read_geotiff, write_geotiff
from test_qgis_process import _results

MODEL3 = os.path.join(REPO, "resources", "modeler", "detect_and_evaluate.model3")
SAMPLE = os.path.join(REPO, "resources", "sample")


def test_modeler_file_runs_detect_then_evaluate_headless(tmp_path):
    out = tmp_path / "map.tif"
    r = qgis_process("run", MODEL3, "--", f"raster={SAMPLE}/abu-airport-2.tif",
                     f"ground_truth={SAMPLE}/abu-airport-2_gt.tif", "bands=200", "strategy=none", f"detect:map={out}")
    assert r.returncode == 0, r.stdout + r.stderr
    res = _results(r.stdout)
    assert abs(float(res["evaluate:AUC"]) - 0.8433) <= 1e-4  # ../shared/data/README.md: RX, airport-2, 200 bands
    scores, wkt, _, _ = read_geotiff(out)
    assert scores.shape == (1, 100, 100) and "UTM zone 11N" in wkt


def test_train_spatial_then_enhance_and_fuse(tmp_path):
    folder = tmp_path / "background"
    folder.mkdir()
    for n in ("abu-urban-1", "abu-beach-3", "abu-urban-2"):
        write_geotiff(folder / f"{n}.tif", mat_scene(n)[0][:48, :48, :100])
    teacher = os.path.join(WEIGHTS, "fers-reference", "aviris_ng-100bands")
    ckpt = tmp_path / "fers.pt"
    r = qgis_process("run", "fers:train_spatial", "--", f"TEACHER={teacher}", f"SOURCE_FOLDER={folder}", "EPOCHS=1",
                     "BATCH=2", "PATCH=32", "STEPS=2", "BACKBONE_WEIGHTS=random", "DEVICE=cpu", f"OUTPUT={ckpt}")
    assert r.returncode == 0, r.stdout + r.stderr
    res = _results(r.stdout)
    assert res["OUTPUT"] == str(ckpt) and os.path.exists(res["LOG"])

    scene = write_geotiff(tmp_path / "airport4.tif", mat_scene("abu-airport-4")[0])
    cube_q, cube_c = tmp_path / "enh_q.tif", tmp_path / "enh_c.tif"
    r = qgis_process("run", "fers:enhance", "--", f"INPUT={scene}", f"MODEL={ckpt}", "BRANCHES=both", "DEVICE=cpu",
                     f"OUTPUT={cube_q}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert fers("-q", "enhance", scene, cube_c, "--model", ckpt, "--device", "cpu").returncode == 0
    a, wkt, gt, _ = read_geotiff(cube_q)
    b = read_geotiff(cube_c)[0]
    assert a.shape == (100, 100, 100)
    # the same engine call from both front ends (QGIS runs torch with its own thread setup: float sums may
    # associate differently, hence a tolerance of float32 rounding, not bit identity)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert "UTM zone 11N" in wkt and gt[1] == 7.1
    for strategy in ("multiplicative", "additive", "auto"):
        out = tmp_path / f"{strategy}.tif"
        r = qgis_process("run", "fers:detect", "--", f"INPUT={scene}", f"STRATEGY={strategy}", f"MODEL={ckpt}",
                         "DEVICE=cpu", f"OUTPUT={out}")
        assert r.returncode == 0, r.stdout + r.stderr
        s, wkt, _, _ = read_geotiff(out)
        assert s.shape == (1, 100, 100) and np.isfinite(s).all() and "UTM zone 11N" in wkt


STRATEGIES = ("none", "spectral", "spatial", "multiplicative", "additive", "auto")


# one test per scene, so that a parallel run (make test: pytest -n 2) spreads these 42 qgis_process starts
@pytest.mark.parametrize("name", PAPER_SET)
def test_all_six_strategies_on_the_paper_set_through_qgis_process(paper_set_tifs, tmp_path, name):
    """The bundled stage-2 model (trained on the background split only) through fers:detect, every strategy,
    every paper-set scene: a georeferenced map each, with the AUC the CLI gives for the same run."""
    tif, gt = paper_set_tifs[name]
    for strategy in STRATEGIES:
        out = tmp_path / f"{name}_{strategy}.tif"
        r = qgis_process("run", "fers:detect", "--", f"INPUT={tif}", "BANDS=100", f"STRATEGY={strategy}",
                         "DEVICE=cpu", f"OUTPUT={out}")
        assert r.returncode == 0, (name, strategy, r.stdout + r.stderr)
        if strategy != "none":
            assert "using the bundled model fers-aviris-100" in r.stdout + r.stderr
        s, wkt, geo, nodata = read_geotiff(out)
        assert "UTM zone 11N" in wkt and geo[1] == 7.1 and np.isfinite(s).all() and (s[s != nodata] >= 0).all()
    # the CLI on the same input and strategy gives the same AUC (scored here by brute-force pair counting, not
    # by the engine's rank formula that `fers evaluate` uses, which tests/engine/test_metrics.py checks)
    cli = tmp_path / f"{name}_cli.tif"
    assert fers("-q", "detect", tif, cli, "--bands", 100, "--strategy", "auto", "--device", "cpu").returncode == 0
    truth = read_geotiff(gt)[0][0] > 0
    aucs = []
    for path in (out, cli):
        s, _, _, nodata = read_geotiff(path)
        keep = s[0] != nodata
        aucs.append(pairwise_auc(s[0][keep], truth[keep]))
    assert abs(aucs[0] - aucs[1]) <= 1e-4, (name, aucs)
