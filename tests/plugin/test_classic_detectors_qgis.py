"""The classic detectors through real qgis_process: DETECTOR, LOCAL_MEAN and the rx-dual windows reach the
engine, the map equals the engine's own, and the layer is named after the detector."""
import numpy as np

from conftest import mat_scene, qgis_process, read_geotiff, write_geotiff
from fers.detect.classic import dual_window_scores, global_scores


def test_qgis_process_runs_utd_local_mean_and_dual_window(tmp_path):
    hwb, _ = mat_scene("abu-urban-1")
    crop = hwb[10:40, 20:50, :12].astype(np.float32)
    src = tmp_path / "crop.tif"
    write_geotiff(str(src), crop)
    cube = np.ascontiguousarray(crop.transpose(2, 0, 1))
    valid = np.ones(cube.shape[1:], bool)
    cases = ((["DETECTOR=utd", "LOCAL_MEAN=5"], global_scores(cube, valid, "utd", 5)[0], "utd local mean 5"),
             (["DETECTOR=rxd-utd"], global_scores(cube, valid, "rxd-utd")[0], "rxd-utd"),
             (["DETECTOR=rx", "LOCAL_MEAN=7"], global_scores(cube, valid, "rx", 7)[0], "rx local mean 7"),
             (["DETECTOR=rx-dual", "WINDOW_INNER=3", "WINDOW_OUTER=9"], dual_window_scores(cube, valid, (3, 9)),
              "rx-dual 3/9"))
    for params, ref, label in cases:
        out = tmp_path / f"{params[0][9:]}_{len(params)}.tif"
        r = qgis_process("run", "fers:detect", "--", f"INPUT={src}", "STRATEGY=none", "DEVICE=cpu", *params,
                         f"OUTPUT={out}")
        assert r.returncode == 0, r.stdout + r.stderr
        got = read_geotiff(out)[0][0]
        # the engine scores the cube after SPEC §0 scaling in float32; UTD crosses zero: an absolute tolerance too
        np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max(), err_msg=label)
        assert label in r.stdout + r.stderr
