"""fers:benchmark through real qgis_process, headless: a HAD100-layout folder, and raster layers with _gt truths."""
import csv
import json
import os

import numpy as np

from conftest import WEIGHTS, mat_scene, numpy_rx, numpy_trimmed_rx, pairwise_auc, qgis_process, write_geotiff
from had100_layout import _window, build_had100
from test_qgis_process import _results


def test_benchmark_on_a_had100_folder(tmp_path):
    root = tmp_path / "had100"
    scenes = build_had100(str(root))
    out, page = tmp_path / "results", tmp_path / "report.html"
    r = qgis_process("run", "fers:benchmark", "--", f"SCENE_FOLDER={root}", "BANDS=100,200",
                     "STRATEGIES=none,spectral", f"MODEL={os.path.join(WEIGHTS, 'fers-reference', 'aviris_ng-100bands')}",
                     "DEVICE=cpu", f"OUTPUT_FOLDER={out}", f"OUTPUT_HTML={page}")
    assert r.returncode == 0, r.stdout + r.stderr
    res = _results(r.stdout)
    assert res["OUTPUT_FOLDER"] == str(out) and res["OUTPUT_HTML"] == str(page)
    assert res["RUNS"] == "6" and res["NOT_RUN"] == "6"  # 200 bands: the crops have 120
    ref = np.mean([pairwise_auc(numpy_rx(c[:, :, :100].reshape(-1, 100)), m) for c, m in scenes.values()])
    assert abs(float(res["MEAN_AUC_NONE"]) - ref) < 2e-5  # float32 preprocessing, see tests/engine/test_benchmark.py
    assert 0.5 < float(res["MEAN_AUC_SPECTRAL"]) <= 1.0 and "spectral@100=" in res["MEAN_AUC"]
    with open(res["RESULTS_CSV"]) as fh:
        rows = list(csv.DictReader(fh))
    assert {x["scene"] for x in rows} == set(scenes) and len(rows) == 12
    for f in ("results.md", "results.json", "gallery_100.png", "roc/abu-airport-1_100.png"):
        assert os.path.getsize(out / f) > 500, f
    html = page.read_text()
    assert html.count("data:image/png;base64,") == 4 and "abu-urban-3" in html and "only 120 bands" in html
    assert "Traceback" not in r.stdout + r.stderr


def test_benchmark_on_raster_layers_with_gt_beside_them(tmp_path):
    layers = []
    for name in ("abu-airport-2", "abu-airport-4"):
        cube, gt = mat_scene(name)
        r, c = _window(gt)
        write_geotiff(tmp_path / f"{name}.tif", cube[r:r + 64, c:c + 64, :40])
        write_geotiff(tmp_path / f"{name}_gt.tif", gt[r:r + 64, c:c + 64].astype(np.uint8), epsg=None)
        layers.append((tmp_path / f"{name}.tif", cube[r:r + 64, c:c + 64, :40], gt[r:r + 64, c:c + 64]))
    # a ground-truth layer in the selection is recognised as such, not benchmarked
    args = [f"SCENES={p}" for p, _, _ in layers] + [f"SCENES={tmp_path / 'abu-airport-4_gt.tif'}"]
    r = qgis_process("run", "fers:benchmark", "--", *args, "BANDS=40", "STRATEGIES=none", "DEVICE=cpu",
                     f"OUTPUT_FOLDER={tmp_path / 'out'}", f"OUTPUT_HTML={tmp_path / 'r.html'}")
    assert r.returncode == 0, r.stdout + r.stderr
    res = _results(r.stdout)
    assert res["RUNS"] == "2" and res["NOT_RUN"] == "0"
    ref = np.mean([pairwise_auc(numpy_rx(c.reshape(-1, 40)), g) for _, c, g in layers])
    assert abs(float(res["MEAN_AUC_NONE"]) - ref) < 2e-5
    assert json.load(open(tmp_path / "out" / "results.json"))["meta"]["rx_trim"] == 0.0  # the paper's RX by default
    # RX_TRIM reaches the detector: the trimmed RX of the same layers, against the NumPy one
    r = qgis_process("run", "fers:benchmark", "--", *args, "BANDS=40", "STRATEGIES=none", "DEVICE=cpu", "RX_TRIM=0.05",
                     f"OUTPUT_FOLDER={tmp_path / 'trim'}", f"OUTPUT_HTML={tmp_path / 't.html'}")
    assert r.returncode == 0, r.stdout + r.stderr
    ref = np.mean([pairwise_auc(numpy_trimmed_rx(c.reshape(-1, 40), 0.05)[0], g) for _, c, g in layers])
    assert abs(float(_results(r.stdout)["MEAN_AUC_NONE"]) - ref) < 2e-5
    assert json.load(open(tmp_path / "trim" / "results.json"))["meta"]["rx_trim"] == 0.05
