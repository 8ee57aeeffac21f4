"""`make demo` end to end, and the map it writes opened by QGIS itself."""
import os
import re
import sys

from conftest import REPO, run

LOAD_IN_QGIS = """
import sys
from qgis.core import QgsApplication, QgsRasterLayer
app = QgsApplication([], False); app.initQgis()
layer = QgsRasterLayer(sys.argv[1], "map")
stats = layer.dataProvider().bandStatistics(1)
print(layer.isValid(), layer.crs().authid(), layer.width(), layer.height(), stats.minimumValue >= 0, stats.maximumValue > 0)
"""


def test_make_demo_writes_a_map_qgis_opens_with_the_right_crs():
    r = run(["make", "-s", "-C", REPO, "demo"], env={"CI": "true"})
    assert r.returncode == 0, r.stdout + r.stderr
    path = re.search(r"anomaly map written to: (\S+)", r.stdout).group(1)
    auc = float(re.search(r"AUC:\s+([0-9.]+)", r.stdout).group(1))
    assert abs(auc - 0.8433) <= 1e-4  # airport-2, first 200 bands, README's RX figure
    q = run(["/usr/bin/python3", "-c", LOAD_IN_QGIS, path], env={"QT_QPA_PLATFORM": "offscreen"})
    assert q.returncode == 0, q.stderr
    assert q.stdout.split() == ["True", "EPSG:32611", "100", "100", "True", "True"]
