"""The per-scene AE through real qgis_process (issue 21): DETECTOR=ae reaches the engine and its map equals the
engine's own run of the same seed on the same real crop. (Auto-AD at its published width runs minutes even on a
40×40 crop: too slow for this suite; tests/engine/test_autoad.py checks it in process at a narrow width.)"""
import numpy as np

from conftest import mat_scene, qgis_process, read_geotiff, write_geotiff
from fers.detect.ae import ae_scores


def test_qgis_process_runs_ae_as_the_engine_does(tmp_path):
    hwb, gt = mat_scene("abu-urban-1")
    r, c = np.argwhere(gt > 0)[0]  # a window around the first labelled anomaly
    r0, c0 = max(0, min(r - 20, hwb.shape[0] - 40)), max(0, min(c - 20, hwb.shape[1] - 40))
    crop = hwb[r0:r0 + 40, c0:c0 + 40, :12].astype(np.float32)
    src = tmp_path / "crop.tif"
    write_geotiff(str(src), crop)
    cube = np.ascontiguousarray(crop.transpose(2, 0, 1))
    valid = np.ones(cube.shape[1:], bool)
    lo, hi = cube.min(), cube.max()
    scaled = (((cube - lo) / (hi - lo) * 2 - 1) * 0.1).astype(np.float32)  # SPEC §0, as the engine reads it
    for detector, ref in (("ae", ae_scores(scaled, valid, seed=0)),):
        out = tmp_path / f"{detector}.tif"
        res = qgis_process("run", "fers:detect", "--", f"INPUT={src}", "STRATEGY=none", "DEVICE=cpu",
                           f"DETECTOR={detector}", f"OUTPUT={out}")
        assert res.returncode == 0, res.stdout + res.stderr
        got = read_geotiff(out)[0][0]
        # another process, maybe another summation order: the training may drift by float rounding, not more
        np.testing.assert_allclose(got, ref, rtol=2e-2, atol=2e-2 * np.abs(ref).max(), err_msg=detector)
        assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.999, detector
        assert f"({detector})" in res.stdout + res.stderr or detector in res.stdout, detector
