"""What analysts expect of the plugin, through real QGIS: qgis_process runs, the modeler file, anomaly objects
checked against an independent computation, a rendered screenshot of the styled output, bundled models and
wavelength matching, a missing torch, and the installable ZIP."""
import json
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from scipy import ndimage

from analyst_helpers import sample_cube, tiny_checkpoint, write_envi
from conftest import REPO, VENV_BIN, qgis_process, read_geotiff, run
from test_qgis_process import _results

SAMPLE = os.path.join(REPO, "resources", "sample", "abu-airport-2.tif")
SAMPLE_GT = os.path.join(REPO, "resources", "sample", "abu-airport-2_gt.tif")
MODEL3 = os.path.join(REPO, "resources", "modeler", "detect_and_evaluate.model3")
QGIS_PYTHON_PATH = ["/usr/share/qgis/python/plugins", REPO, os.path.join(REPO, "engine")]


def venv_site():
    return subprocess.run([os.path.join(VENV_BIN, "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def bare_qgis_process(args, profile, plugin_path, pythonpath, **kw):
    """/usr/bin/qgis_process.bin itself (not Debian's wrapper), in the given profile and plugin folder."""
    env = {"QT_QPA_PLATFORM": "offscreen", "QGIS_CUSTOM_CONFIG_PATH": str(profile), "QGIS_PLUGINPATH": str(plugin_path),
           "PYTHONPATH": os.pathsep.join(map(str, pythonpath)), "PYTHONWARNINGS": "ignore::DeprecationWarning",
           "XDG_RUNTIME_DIR": os.environ.get("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")}
    return run(["/usr/bin/qgis_process.bin", *map(str, args)], env=env, **kw)


def enabled_profile(folder):
    ini = folder / "profiles" / "default" / "QGIS"
    ini.mkdir(parents=True)
    (ini / "QGIS3.ini").write_text("[PythonPlugins]\nfers_qgis=true\n")
    return folder


def test_detect_objects_and_mask_match_an_independent_computation(tmp_path):
    out, mask, objects = tmp_path / "score.tif", tmp_path / "mask.tif", tmp_path / "objects.gpkg"
    r = qgis_process("run", "fers:detect", "--", f"INPUT={SAMPLE}", "BANDS=200", "STRATEGY=none", "DEVICE=auto",
                     "THRESHOLD_PERCENTILE=99", f"OUTPUT={out}", f"MASK={mask}", f"OBJECTS={objects}")
    assert r.returncode == 0, r.stdout + r.stderr
    res = _results(r.stdout)
    log = r.stdout + r.stderr
    assert re.search(r"device: cpu \(.*\) \(DEVICE=auto\)", log) and re.search(r"Detect anomalies: [0-9.]+ s", log)
    # independent: the written score map, numpy's percentile, scipy's 8-connected labels, numpy statistics
    scores, _, gt, nodata = read_geotiff(out)
    s = scores[0]
    valid = s != nodata
    t = np.percentile(s[valid], 99.0)
    anomalous = valid & (s > t)
    labels, n = ndimage.label(anomalous, structure=np.ones((3, 3)))
    assert float(res["THRESHOLD"]) == pytest.approx(t, rel=1e-12)
    assert int(res["ANOMALOUS_PIXELS"]) == anomalous.sum() == 100 and int(res["OBJECT_COUNT"]) == n
    np.testing.assert_array_equal(read_geotiff(mask)[0][0], anomalous.astype(float))

    from osgeo import ogr

    ds = ogr.Open(str(objects))  # keep the dataset alive while its layer is read
    lyr = ds.GetLayer(0)
    feats = {f["id"]: (f.items(), f.GetGeometryRef().Clone()) for f in lyr}
    assert len(feats) == lyr.GetFeatureCount() == n > 5  # one feature per connected anomaly
    for k in range(1, n + 1):
        rows, cols = np.nonzero(labels == k)
        a, geom = feats[k]
        vals = s[rows, cols].astype(np.float64)
        assert a["pixels"] == rows.size and a["area"] == pytest.approx(rows.size * 7.1 * 7.1, rel=1e-12)
        assert a["peak_score"] == pytest.approx(vals.max(), rel=1e-6)
        assert a["mean_score"] == pytest.approx(vals.mean(), rel=1e-6)
        assert a["centroid_x"] == pytest.approx(gt[0] + 7.1 * (cols + 0.5).mean(), abs=1e-6)
        assert a["centroid_y"] == pytest.approx(gt[3] - 7.1 * (rows + 0.5).mean(), abs=1e-6)
        assert geom.GetArea() == pytest.approx(rows.size * 7.1 * 7.1, rel=1e-9)


def test_modeler_file_detect_then_evaluate(tmp_path):
    out = tmp_path / "map.tif"
    r = qgis_process("run", MODEL3, "--", f"raster={SAMPLE}", f"ground_truth={SAMPLE_GT}", "bands=200",
                     "strategy=none", f"detect:map={out}")
    assert r.returncode == 0, r.stdout + r.stderr
    res = _results(r.stdout)
    assert abs(float(res["evaluate:AUC"]) - 0.8433) <= 1e-4
    assert res["detect:map"] == str(out) and read_geotiff(out)[0].shape == (1, 100, 100)


def test_bundled_model_chooser_and_wavelength_matching(tmp_path):
    wl = [400.0 + 9.6 * i for i in range(30)]
    envi = write_envi(tmp_path / "scene.img", sample_cube(30), wl)
    models = tmp_path / "models"
    models.mkdir()
    tiny_checkpoint(models / "aviris-tiny.pt", 12, [wl[i] + 1.0 for i in range(0, 24, 2)])
    (models / "aviris-tiny.md").write_text("# AVIRIS tiny test model\n\nTrained on nothing: random weights.\n")
    env = {"FERS_MODELS_DIR": str(models)}
    r = qgis_process("help", "fers:detect", env=env)
    assert r.returncode == 0 and "BUNDLED_MODEL" in r.stdout and "aviris-tiny" in r.stdout
    assert "AVIRIS tiny test model" in r.stdout and "random weights" in r.stdout  # the card, in the help
    out = tmp_path / "s.tif"
    r = qgis_process("run", "fers:detect", "--", f"INPUT={envi}", "STRATEGY=spectral", "BUNDLED_MODEL=aviris-tiny",
                     "DEVICE=cpu", f"OUTPUT={out}", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "bands matched by wavelength (nearest centre): 12 raster bands (1,3,5,7,9,11,13,15,17,19,21,23)" in r.stdout + r.stderr
    r = qgis_process("run", "fers:detect", "--", f"INPUT={envi}", "STRATEGY=spectral", "BUNDLED_MODEL=aviris-tiny",
                     f"MODEL={models / 'aviris-tiny.pt'}", f"OUTPUT={tmp_path / 't.tif'}", env=env)
    assert r.returncode != 0 and "either MODEL" in r.stdout + r.stderr


HELP_AND_MODEL = """
import json, sys
sys.path[:0] = %r
from qgis.core import QgsApplication, QgsProcessingModelAlgorithm, QgsProcessingParameterDefinition
app = QgsApplication([], False); app.initQgis()
from processing.core.Processing import Processing
Processing.initialize()
from fers_qgis.provider import FersProvider
provider = FersProvider(); QgsApplication.processingRegistry().addProvider(provider)
missing = []
for alg in provider.algorithms():
    if not alg.shortHelpString().strip():
        missing.append(alg.id())
    for p in alg.parameterDefinitions():
        if not (p.flags() & QgsProcessingParameterDefinition.FlagHidden) and not p.help().strip():
            missing.append(alg.id() + ":" + p.name())
m = QgsProcessingModelAlgorithm()
loaded = m.fromFile(sys.argv[1])
print(json.dumps({"missing": missing, "algorithms": [a.id() for a in provider.algorithms()],
                  "model": [loaded, m.validate()[0], [p.name() for p in m.parameterDefinitions()]]}))
"""


def test_every_algorithm_and_parameter_has_help_and_the_model_validates():
    r = run(["/usr/bin/python3", "-c", HELP_AND_MODEL % QGIS_PYTHON_PATH, MODEL3], env={"QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"fers:detect", "fers:evaluate", "fers:train_spectral"} <= set(out["algorithms"])
    assert out["missing"] == []
    assert out["model"][:2] == [True, True]
    assert {"raster", "ground_truth", "bands", "strategy"} <= set(out["model"][2])


SCREENSHOT = """
import json, sys
sys.path[:0] = %r
from qgis.core import (QgsApplication, QgsMapRendererParallelJob, QgsMapSettings, QgsProject, QgsRasterLayer,
                       QgsVectorLayer)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor
app = QgsApplication([], False); app.initQgis()
from processing.core.Processing import Processing
Processing.initialize()
import processing
from fers_qgis.provider import FersProvider
provider = FersProvider(); QgsApplication.processingRegistry().addProvider(provider)
sample, out = sys.argv[1], sys.argv[2]
# as the Processing dialog does: run, load the outputs into the project, call the layer post-processors
# with the defaults an analyst gets (STRATEGY=auto, the bundled model that matches the raster)
processing.runAndLoadResults("fers:detect", {"INPUT": sample, "DEVICE": "cpu", "THRESHOLD_PERCENTILE": 99,
                                             "OUTPUT": out + "/score.tif", "OBJECTS": out + "/objects.gpkg"})
layers = list(QgsProject.instance().mapLayers().values())
score = next(l for l in layers if isinstance(l, QgsRasterLayer))
objects = next(l for l in layers if isinstance(l, QgsVectorLayer))
r = score.renderer()
items = r.shader().rasterShaderFunction().colorRampItemList()
settings = QgsMapSettings()
settings.setLayers([objects, score])
settings.setDestinationCrs(score.crs())
settings.setExtent(score.extent())
settings.setOutputSize(QSize(400, 400))
settings.setBackgroundColor(QColor(255, 255, 255))
job = QgsMapRendererParallelJob(settings)
job.start(); job.waitForFinished()
job.renderedImage().save(out + "/map.png", "PNG")
print(json.dumps({"names": sorted(l.name() for l in layers), "renderer": r.type(), "min": r.classificationMin(),
                  "max": r.classificationMax(), "ramp_items": len(items), "objects": objects.featureCount(),
                  "labels": objects.labelsEnabled()}))
"""


def test_screenshot_of_the_styled_output(tmp_path):
    r = run([os.path.join(VENV_BIN, "python"), "-c", SCREENSHOT % QGIS_PYTHON_PATH, SAMPLE, str(tmp_path)],
            env={"QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, r.stdout + r.stderr
    info = json.loads(r.stdout.strip().splitlines()[-1])
    # the README's words for what ran: fusion B (STRATEGY=auto with the 200-band model)
    assert info["names"] == ["abu-airport-2 — anomaly (fusion B)", "abu-airport-2 — anomaly objects (fusion B)"]
    assert info["renderer"] == "singlebandpseudocolor" and info["ramp_items"] > 2 and info["labels"]
    scores, _, _, nodata = read_geotiff(tmp_path / "score.tif")
    lo, hi = np.percentile(scores[0][scores[0] != nodata], [2, 98])
    assert (info["min"], info["max"]) == (pytest.approx(lo, rel=1e-9), pytest.approx(hi, rel=1e-9))
    import matplotlib.image

    png = matplotlib.image.imread(str(tmp_path / "map.png"))
    assert png.shape[:2] == (400, 400)
    rgb = np.round(png[:, :, :3] * 255).astype(np.uint8).reshape(-1, 3)
    colours, counts = np.unique(rgb, axis=0, return_counts=True)
    assert len(colours) >= 50 and counts.max() < 0.5 * len(rgb)  # a stretched map, not a blank or flat image
    dark = (rgb.sum(1) < 150).mean()  # magma's low end
    bright = (rgb.min(1) > 150).mean()  # its high end
    reddish = ((rgb[:, 0] > 180) & (rgb[:, 1] < 80) & (rgb[:, 2] < 80)).mean()  # object outlines
    assert dark > 0.05 and bright > 0.005 and reddish > 0.001, (dark, bright, reddish)


def test_missing_torch_loads_the_plugin_and_explains(tmp_path):
    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text("raise ImportError('No module named torch (simulated)')\n")
    profile = enabled_profile(tmp_path / "profile")
    path = [fake, venv_site(), os.path.join(REPO, "engine")]  # the fake torch first
    r = bare_qgis_process(["list"], profile, os.path.join(VENV_BIN, "..", "qgis-plugins"), path)
    assert r.returncode == 0 and "fers:detect" in r.stdout and "fers:evaluate" in r.stdout, r.stderr
    out = tmp_path / "o.tif"
    r = bare_qgis_process(["run", "fers:detect", "--", f"INPUT={SAMPLE}", f"OUTPUT={out}"], profile,
                          os.path.join(VENV_BIN, "..", "qgis-plugins"), path)
    text = r.stdout + r.stderr
    assert r.returncode != 0 and not out.exists() and "Traceback" not in text
    msgs = {line.replace("ERROR:\t", "") for line in text.splitlines() if "FERS cannot run" in line}
    assert len(msgs) == 1, msgs  # one message (qgis_process echoes it)
    msg = msgs.pop()
    # a torch that is there but does not import (a wheel for another Python, a DLL that does not load) is named with
    # its error, and the same install route is offered: the managed folder comes first on sys.path
    assert "torch does not load (ImportError: No module named torch (simulated))" in msg, msg
    assert "Plugins ▸ FERS ▸ Install dependencies…" in msg
    assert re.search(r"python3(\.\d+)? -m pip install --target \S+fers-deps\S+ .*torch", msg), msg


def test_make_package_installs_in_a_clean_profile(tmp_path):
    r = run(["make", "-s", "-C", REPO, "package"])
    assert r.returncode == 0, r.stdout + r.stderr
    version = re.search(r"^version=(\S+)", open(os.path.join(REPO, "metadata.txt")).read(), re.M).group(1)
    zpath = os.path.join(REPO, "dist", f"fers_qgis-{version}.zip")
    with zipfile.ZipFile(zpath) as z:
        names = z.namelist()
        assert {n.split("/")[0] for n in names} == {"fers_qgis"}
        for required in ("fers_qgis/metadata.txt", "fers_qgis/icon.svg", "fers_qgis/engine/fers/pipeline.py",
                         "fers_qgis/resources/styles/anomaly_mask.qml",
                         "fers_qgis/resources/modeler/detect_and_evaluate.model3"):
            assert required in names
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        assert z.read("fers_qgis/metadata.txt").startswith(b"[general]")  # the file, not a link
        z.extractall(tmp_path / "plugins")
    profile = tmp_path / "profile"
    profile.mkdir()  # a fresh QGIS profile
    plugins = tmp_path / "plugins"
    r = bare_qgis_process(["plugins", "enable", "fers_qgis"], profile, plugins, [])
    assert r.returncode == 0, r.stdout + r.stderr
    r = bare_qgis_process(["list"], profile, plugins, [])
    assert r.returncode == 0 and "fers:detect" in r.stdout and "fers:train_spectral" in r.stdout, r.stderr
    # with torch & co. importable (but not the checkout's engine), the ZIP's own engine runs
    out = tmp_path / "o.tif"
    r = bare_qgis_process(["run", "fers:detect", "--", f"INPUT={SAMPLE}", "BANDS=200", f"OUTPUT={out}"], profile,
                          plugins, [venv_site()])
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"({plugins / 'fers_qgis' / 'engine' / 'fers'})" in r.stdout + r.stderr
    assert out.exists()


# a PyQGIS session with the FERS provider, run as `python -c SCRIPT % QGIS_PYTHON_PATH args...`
PYQGIS = """
import json, sys
sys.path[:0] = %r
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsRasterRange
app = QgsApplication([], False); app.initQgis()
from processing.core.Processing import Processing
Processing.initialize()
import processing
from fers_qgis.provider import FersProvider
provider = FersProvider(); QgsApplication.processingRegistry().addProvider(provider)  # kept: a dropped provider is unregistered
"""

LAYER_NODATA = PYQGIS + """path, out = sys.argv[1], sys.argv[2]
layer = QgsRasterLayer(path, "flight line")
# what an analyst sets in Properties > Transparency > Additional no data value
for b in range(1, layer.bandCount() + 1):
    layer.dataProvider().setUserNoDataValue(b, [QgsRasterRange(0, 0)])
QgsProject.instance().addMapLayer(layer)
processing.run("fers:detect", {"INPUT": layer, "STRATEGY": "none", "DEVICE": "cpu", "OUTPUT": out})
print(json.dumps({"done": True}))
"""


def _zero_border(path, tagged):
    from conftest import mat_scene, write_geotiff

    cube = mat_scene("abu-airport-2")[0][:48, :40, :30].astype(np.int16)
    cube[:5] = 0
    cube[:, -3:] = 0
    return write_geotiff(path, cube, nodata=0 if tagged else None)


def _same_map(a, ref):
    np.testing.assert_array_equal(a == -9999, ref == -9999)
    np.testing.assert_allclose(a, ref, rtol=1e-6)  # the desktop run may use other BLAS threads: 1-ulp differences


def test_no_data_set_on_the_layer_or_given_as_nodata_counts_as_the_files_own(tmp_path):
    """A zero-filled border with no nodata tag: QGIS's additional no-data value on the layer, or NODATA=0,
    gives the map of the same raster tagged nodata=0 (the border left out of the statistics)."""
    untagged = _zero_border(tmp_path / "untagged.tif", False)
    tagged = _zero_border(tmp_path / "tagged.tif", True)
    r = qgis_process("run", "fers:detect", "--", f"INPUT={tagged}", "STRATEGY=none", f"OUTPUT={tmp_path / 'ref.tif'}")
    assert r.returncode == 0, r.stdout + r.stderr
    ref = read_geotiff(tmp_path / "ref.tif")[0][0]
    assert (ref == -9999).sum() == 48 * 40 - 43 * 37
    r = qgis_process("run", "fers:detect", "--", f"INPUT={untagged}", "STRATEGY=none", "NODATA=0",
                     f"OUTPUT={tmp_path / 'param.tif'}")
    assert r.returncode == 0, r.stdout + r.stderr
    _same_map(read_geotiff(tmp_path / "param.tif")[0][0], ref)
    r = run([os.path.join(VENV_BIN, "python"), "-c", LAYER_NODATA % QGIS_PYTHON_PATH, untagged,
             str(tmp_path / "layer.tif")], env={"QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, r.stdout + r.stderr
    _same_map(read_geotiff(tmp_path / "layer.tif")[0][0], ref)
    r = qgis_process("run", "fers:detect", "--", f"INPUT={untagged}", "STRATEGY=none", f"OUTPUT={tmp_path / 'no.tif'}")
    assert r.returncode == 0 and (read_geotiff(tmp_path / "no.tif")[0][0] == -9999).sum() == 0  # the border scored


SOURCE_NODATA_OFF = PYQGIS + """path, out = sys.argv[1], sys.argv[2]
layer = QgsRasterLayer(path, "wrongly tagged")
for b in range(1, layer.bandCount() + 1):  # Properties > Transparency > "No data value" unticked
    layer.dataProvider().setUseSourceNoDataValue(b, False)
QgsProject.instance().addMapLayer(layer)
processing.run("fers:detect", {"INPUT": layer, "STRATEGY": "none", "DEVICE": "cpu", "OUTPUT": out})
print(json.dumps({"done": True}))
"""


def test_a_file_nodata_shown_as_data_in_qgis_is_data_for_fers_too(tmp_path):
    """nodata=0 on a raster whose zeros are real: IGNORE_FILE_NODATA, or the layer's 'No data value' unticked,
    gives the map of the same raster untagged (every pixel scored)."""
    from conftest import mat_scene, write_geotiff

    cube = mat_scene("abu-airport-2")[0][:40, :40, :30].astype(np.int16)
    cube[10:12, 20:25, 3] = 0
    tagged = write_geotiff(tmp_path / "tagged.tif", cube, nodata=0)
    plain = write_geotiff(tmp_path / "plain.tif", cube)
    r = qgis_process("run", "fers:detect", "--", f"INPUT={plain}", "STRATEGY=none", f"OUTPUT={tmp_path / 'ref.tif'}")
    assert r.returncode == 0, r.stdout + r.stderr
    ref = read_geotiff(tmp_path / "ref.tif")[0][0]
    assert not (ref == -9999).any()
    r = qgis_process("run", "fers:detect", "--", f"INPUT={tagged}", "STRATEGY=none", "IGNORE_FILE_NODATA=true",
                     f"OUTPUT={tmp_path / 'param.tif'}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the file's nodata value 0 read as data" in r.stdout + r.stderr
    _same_map(read_geotiff(tmp_path / "param.tif")[0][0], ref)
    r = run([os.path.join(VENV_BIN, "python"), "-c", SOURCE_NODATA_OFF % QGIS_PYTHON_PATH, tagged,
             str(tmp_path / "layer.tif")], env={"QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, r.stdout + r.stderr
    _same_map(read_geotiff(tmp_path / "layer.tif")[0][0], ref)


LAYER_NODATA_TRAINING = PYQGIS + """bordered, clean, out = sys.argv[1], sys.argv[2], sys.argv[3]
layer = QgsRasterLayer(bordered, "flight line")
for b in range(1, layer.bandCount() + 1):  # Properties > Transparency > Additional no data value, on this layer only
    layer.dataProvider().setUserNoDataValue(b, [QgsRasterRange(0, 0)])
other = QgsRasterLayer(clean, "clean")
for lyr in (layer, other):
    QgsProject.instance().addMapLayer(lyr)
processing.run("fers:train_spectral", {"SOURCES": [layer, other], "BANDS": 12, "EPOCHS": 1, "BATCH": 2, "PATCH": 32,
               "STEPS": 1, "BACKBONE_WEIGHTS": "random", "DEVICE": "cpu", "OUTPUT": out})
print(json.dumps({"done": True}))
"""


def _training_data(ckpt):
    from fers.checkpoint import read_checkpoint

    return read_checkpoint(str(ckpt))["meta"]["training"]["data"]


def test_training_leaves_the_layers_and_the_given_no_data_out(tmp_path):
    """fers:train_spectral samples no patch from a zero fill the analyst marked as no data: NODATA=0 for every
    raster, or the layer's own additional no-data value; without either the fill counts as background."""
    from conftest import mat_scene, write_geotiff

    cube = mat_scene("abu-urban-1")[0][:, :, :16].astype(np.int16)
    cube[:10] = 0
    bordered = write_geotiff(tmp_path / "bordered.tif", cube)
    clean = write_geotiff(tmp_path / "clean.tif", mat_scene("abu-beach-3")[0][:, :, :16])
    common = ["BANDS=12", "EPOCHS=1", "BATCH=2", "PATCH=32", "STEPS=1", "BACKBONE_WEIGHTS=random", "DEVICE=cpu"]
    # (without either, 2 × 100 × 100 pixels: tests/engine/test_train_spectral.py, which runs no QGIS)
    r = qgis_process("run", "fers:train_spectral", "--", f"SOURCES={bordered}", f"SOURCES={clean}", *common,
                     "NODATA=0", f"OUTPUT={tmp_path / 'param.pt'}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "bordered.tif: no data also where a band reads 0" in r.stdout + r.stderr
    data = _training_data(tmp_path / "param.pt")
    assert data["train_pixels"] == 90 * 100 + 100 * 100 and data["nodata"] == [[0.0, 0.0]]
    r = run([os.path.join(VENV_BIN, "python"), "-c", LAYER_NODATA_TRAINING % QGIS_PYTHON_PATH, bordered, clean,
             str(tmp_path / "layer.pt")], env={"QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, r.stdout + r.stderr
    data = _training_data(tmp_path / "layer.pt")
    assert data["train_pixels"] == 90 * 100 + 100 * 100
    assert data["source_nodata"] == {"bordered.tif": [[0.0, 0.0]]} and data["nodata"] == []


def test_enhance_leaves_the_extra_no_data_out_too(tmp_path):
    from conftest import mat_scene, write_geotiff

    cube = mat_scene("abu-airport-2")[0][:40, :40, :100].astype(np.int16)
    cube[:5] = 0
    scene = write_geotiff(tmp_path / "border.tif", cube)
    r = qgis_process("run", "fers:enhance", "--", f"INPUT={scene}", "MODEL=fers-aviris-100", "NODATA=0", "DEVICE=cpu",
                     f"OUTPUT={tmp_path / 'enh.tif'}")
    assert r.returncode == 0, r.stdout + r.stderr
    enh, _, _, nodata = read_geotiff(tmp_path / "enh.tif")
    assert enh.shape == (100, 40, 40)
    assert (enh[:, :5] == nodata).all() and not (enh[:, 5:] == nodata).any()


def test_enhance_in_an_extent_is_the_enhanced_cube_of_that_window(tmp_path):
    """fers:enhance with EXTENT writes what enhancing the same window, cut out with NumPy, writes."""
    from conftest import mat_scene, write_geotiff
    from fers.enhance import enhance

    cube = mat_scene("abu-airport-2")[0][:50, :60, :100]
    scene = write_geotiff(tmp_path / "scene.tif", cube)
    window = write_geotiff(tmp_path / "window.tif", cube[5:35, 10:40],
                           geotransform=(380000 + 10 * 7.1, 7.1, 0.0, 3760000 - 5 * 7.1, 0.0, -7.1))
    enhance(window, str(tmp_path / "ref.tif"), "fers-aviris-100", device="cpu")
    xmin, xmax, ymin, ymax = 380000 + 10 * 7.1, 380000 + 40 * 7.1, 3760000 - 35 * 7.1, 3760000 - 5 * 7.1
    r = qgis_process("run", "fers:enhance", "--", f"INPUT={scene}", "MODEL=fers-aviris-100", "DEVICE=cpu",
                     f"EXTENT={xmin},{xmax},{ymin},{ymax} [EPSG:32611]", f"OUTPUT={tmp_path / 'enh.tif'}")
    assert r.returncode == 0, r.stdout + r.stderr
    got, ref = read_geotiff(tmp_path / "enh.tif"), read_geotiff(tmp_path / "ref.tif")
    assert got[0].shape == (100, 30, 30)
    # another process may use other BLAS threads: last-digit differences on values ~0.05
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-5, atol=2e-5)
    assert got[2] == pytest.approx(ref[2]) and got[1] == ref[1]


def test_a_research_file_runs_through_qgis_process_as_the_help_says(tmp_path):
    """fers:detect's INPUT takes a .mat path (QGIS alone would refuse it: it is not a layer it can load)."""
    from conftest import RAW, fers

    mat = os.path.join(RAW, "abu-airport-2.mat")
    r = qgis_process("run", "fers:detect", "--", f"INPUT={mat}", "BANDS=100", "STRATEGY=none",
                     f"OUTPUT={tmp_path / 'qgis.tif'}")
    assert r.returncode == 0, r.stdout + r.stderr
    c = fers("detect", mat, tmp_path / "cli.tif", "--bands", "100", "--strategy", "none")
    assert c.returncode == 0, c.stderr
    _same_map(read_geotiff(tmp_path / "qgis.tif")[0][0], read_geotiff(tmp_path / "cli.tif")[0][0])
    r = qgis_process("run", "fers:detect", "--", f"INPUT={tmp_path / 'gone.mat'}", f"OUTPUT={tmp_path / 'x.tif'}")
    assert r.returncode != 0 and f"INPUT: {tmp_path / 'gone.mat'} not found" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr and not (tmp_path / "x.tif").exists()


TEMPORARY = """
import json, os, sys
sys.path[:0] = %r
from qgis.core import (QgsApplication, QgsProcessing, QgsProcessingContext, QgsProcessingFeedback,
                       QgsProcessingOutputLayerDefinition, QgsProject)
app = QgsApplication([], False); app.initQgis()
from processing.core.Processing import Processing
Processing.initialize()
import processing
from fers_qgis.provider import FersProvider
provider = FersProvider(); QgsApplication.processingRegistry().addProvider(provider)
context = QgsProcessingContext(); context.setProject(QgsProject.instance())
# what the Detect dialog hands the algorithm when the analyst leaves the outputs at [Create temporary layer]
params = {"INPUT": sys.argv[1], "STRATEGY": "none", "DEVICE": "cpu",
          "OUTPUT": QgsProcessingOutputLayerDefinition(QgsProcessing.TEMPORARY_OUTPUT, QgsProject.instance()),
          "MASK": QgsProcessingOutputLayerDefinition(QgsProcessing.TEMPORARY_OUTPUT, QgsProject.instance())}
res = processing.run("fers:detect", params, context=context, feedback=QgsProcessingFeedback())
queued = list(context.layersToLoadOnCompletion().keys())
print(json.dumps({"queued": queued, "exist": [os.path.exists(p) for p in queued],
                  "outputs": [res["OUTPUT"], res["MASK"]]}))
"""


def test_temporary_outputs_are_the_files_written_and_nothing_else_is_queued(tmp_path):
    """The Detect dialog ended with "The following layers were not correctly generated" in red: the overwrite check
    asked QGIS for each output's path, which for a temporary output draws a new name and queues it for loading."""
    r = run([os.path.join(VENV_BIN, "python"), "-c", TEMPORARY % QGIS_PYTHON_PATH, SAMPLE],
            env={"QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, r.stdout + r.stderr
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert sorted(info["queued"]) == sorted(info["outputs"]) and all(info["exist"]), info
