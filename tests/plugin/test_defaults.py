"""What an analyst gets who only picks a raster and clicks Run: FERS (the bundled model that matches the raster,
STRATEGY=auto), said in the log; plain RX only when asked for (STRATEGY=none)."""
import json
import os

import pytest

from conftest import REPO, numpy_rx, pairwise_auc, qgis_process, read_geotiff

SAMPLE = os.path.join(REPO, "resources", "sample", "abu-airport-2.tif")
TRUTH = os.path.join(REPO, "resources", "sample", "abu-airport-2_gt.tif")


def test_detect_with_only_input_and_output_runs_fers_and_says_which(tmp_path):
    out = tmp_path / "map.tif"
    r = qgis_process("run", "fers:detect", "--", f"INPUT={SAMPLE}", f"OUTPUT={out}")
    assert r.returncode == 0, r.stdout + r.stderr
    log = r.stdout + r.stderr
    # the sample has 205 bands and no wavelengths: the largest bundled model its bands can feed, by position
    assert ("no model given: using the bundled model fers-aviris-200 (200 bands): the bundled model with the most "
            "bands that matches this raster of 205 bands (by position, as the raster carries no wavelengths)") in log
    assert "strategy auto → fusion B (additive): the model fers-aviris-200.pt (Spe-FEN + Spa-FEN, 200 bands) has " \
           "both branches, and with 200 bands (> 50) the paper's rule picks B" in log
    assert "map by fusion B (additive) with the model fers-aviris-200.pt" in log
    # the trimmed RX's second pass is named as such, not a repeat of the first
    assert "RX, second pass without the top 1% of the first: scores" in log
    scores = read_geotiff(out)[0][0]
    auc = pairwise_auc(scores, read_geotiff(TRUTH)[0][0])
    assert auc >= 0.96, auc  # plain RX on all 205 bands: 0.840 (below)
    from osgeo import gdal

    ds = gdal.Open(str(out))
    assert ds.GetMetadataItem("FERS_STRATEGY") == "additive"
    assert ds.GetMetadataItem("FERS_MODEL").endswith("fers-aviris-200.pt")
    assert ds.GetMetadataItem("FERS_BANDS") == "1-200"


def test_plain_rx_is_an_explicit_choice(tmp_path):
    out = tmp_path / "rx.tif"
    r = qgis_process("run", "fers:detect", "--", f"INPUT={SAMPLE}", "STRATEGY=none", f"OUTPUT={out}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "bundled model" not in r.stdout + r.stderr
    assert "map by RX (none) on the raw bands, no model" in r.stdout
    scores = read_geotiff(out)[0][0]
    cube = read_geotiff(SAMPLE)[0]
    truth = read_geotiff(TRUTH)[0][0]
    expected = numpy_rx(cube.reshape(cube.shape[0], -1).T).reshape(scores.shape)
    assert pairwise_auc(scores, truth) == pytest.approx(pairwise_auc(expected, truth), abs=1e-4)
    assert pairwise_auc(scores, truth) == pytest.approx(0.840, abs=5e-4)


def test_no_bundled_model_fits_a_small_raster_and_the_error_says_what_to_do(tmp_path):
    from conftest import mat_scene, write_geotiff

    tif = write_geotiff(tmp_path / "sixty.tif", mat_scene("abu-airport-2")[0][:, :, :60])
    out = tmp_path / "map.tif"
    r = qgis_process("run", "fers:detect", "--", f"INPUT={tif}", f"OUTPUT={out}")
    assert r.returncode != 0 and not out.exists()
    assert "no bundled model for this raster (bundled: 100 bands (fers-aviris-100), 200 bands (fers-aviris-200)): " \
           "it has 60 bands and no wavelengths; choose strategy 'none' (plain RX, no model)" in r.stdout + r.stderr


def test_the_dialog_defaults_are_the_documented_ones():
    r = qgis_process("--json", "help", "fers:detect")
    assert r.returncode == 0, r.stderr
    params = json.loads(r.stdout)["parameters"]
    from fers.objects import DEFAULT_PERCENTILE

    assert params["STRATEGY"]["default_value"] == "auto"
    assert params["THRESHOLD_PERCENTILE"]["default_value"] == DEFAULT_PERCENTILE == 98.5
    assert not params["BUNDLED_MODEL"]["default_value"] and not params["MODEL"]["default_value"]
    assert params["BANDS"]["default_value"] == 0


MODEL3 = os.path.join(REPO, "resources", "modeler", "detect_and_evaluate.model3")
MODEL3_ORDER = """
import sys
from qgis.core import QgsApplication, QgsProcessingModelAlgorithm
app = QgsApplication([], False); app.initQgis()
m = QgsProcessingModelAlgorithm()
assert m.fromFile(sys.argv[1])
print([p.name() for p in m.parameterDefinitions()])
print(m.parameterDefinition("strategy").defaultValue(), m.parameterDefinition("bundled_model").options())
"""


def test_the_shipped_model_asks_in_analyst_order_and_offers_the_bundled_models(tmp_path):
    from conftest import run

    r = run(["/usr/bin/python3", "-c", MODEL3_ORDER, MODEL3],
            env={"QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": "/usr/share/qgis/python"})
    assert r.returncode == 0, r.stderr
    order, defaults = r.stdout.strip().splitlines()[-2:]
    assert order == "['raster', 'ground_truth', 'strategy', 'bundled_model', 'model', 'bands']"
    assert defaults == "auto ['fers-aviris-100', 'fers-aviris-200']"
    out = tmp_path / "map.tif"
    r = qgis_process("run", MODEL3, "--", f"raster={SAMPLE}", f"ground_truth={TRUTH}", "bundled_model=fers-aviris-100",
                     f"detect:map={out}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "strategy auto → fusion B (additive): the model fers-aviris-100.pt" in r.stdout + r.stderr
    auc = pairwise_auc(read_geotiff(out)[0][0], read_geotiff(TRUTH)[0][0])
    from test_qgis_process import _results

    assert float(_results(r.stdout)["evaluate:AUC"]) == pytest.approx(auc, abs=1e-6)
    assert auc == pytest.approx(0.973993, abs=1e-4)  # fusion B with the 100-band model on the sample (fers CLI)


DIALOG_FACTS = """
import json, sys
sys.path[:0] = sys.argv[1:]
from qgis.core import QgsApplication
app = QgsApplication([], False); app.initQgis()
from fers_qgis.provider import FersProvider
provider = FersProvider(); QgsApplication.processingRegistry().addProvider(provider)
out = {"provider": [provider.name(), provider.longName()], "algs": {}}
for alg in provider.algorithms():
    labels = [d.description() + (" [optional]" if d.flags() & d.FlagOptional else "")
              for d in alg.parameterDefinitions() if not d.flags() & d.FlagHidden]
    out["algs"][alg.name()] = {"display": alg.displayName(), "html": alg.hasHtmlOutputs(), "labels": labels,
                               "outputs": {o.name(): o.type() for o in alg.outputDefinitions()}}
print(json.dumps(out))
"""


def test_dialog_texts_fit_and_no_png_is_announced_as_html():
    """What `make screens` showed cut at the default sizes, kept from coming back: the toolbox (about 28
    characters beside an algorithm's icon) and the dialog's parameter panel (about 55, " [optional]" included,
    before QGIS scrolls it sideways and hides the file buttons); QGIS's "HTML output has been generated" for
    Evaluate's PNG and Benchmark's report (QgsProcessingAlgorithm.hasHtmlOutputs)."""
    from conftest import run
    from test_analyst_features import QGIS_PYTHON_PATH

    r = run(["/usr/bin/python3", "-c", DIALOG_FACTS, *QGIS_PYTHON_PATH], env={"QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, r.stderr
    facts = json.loads(r.stdout.strip().splitlines()[-1])
    assert facts["provider"] == ["FERS", "FERS hyperspectral anomaly detection"]
    for name, alg in facts["algs"].items():
        assert len(alg["display"]) <= 28, alg["display"]
        assert not alg["html"], name
        long = [label for label in alg["labels"] if len(label) > 50]
        assert not long, (name, long)
    assert facts["algs"]["evaluate"]["outputs"]["ROC"] == "outputFile"
    assert facts["algs"]["benchmark"]["outputs"]["OUTPUT_HTML"] == "outputFile"
