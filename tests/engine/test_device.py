"""Device choice and the full-fp32 guard that detection runs under (TF32 off, flags restored)."""
import pytest
import torch

from fers.device import full_fp32, resolve_device
from fers.errors import DeviceError


def test_full_fp32_turns_tf32_off_inside_and_restores_the_flags():
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        seen = []

        @full_fp32
        def inside(fail=False):
            seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
            if fail:
                raise ValueError("boom")
            return 7

        assert inside() == 7 and seen[-1] == (False, False)
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (True, True)
        with pytest.raises(ValueError, match="boom"):
            inside(fail=True)
        assert seen[-1] == (False, False)
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (True, True)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def test_detection_entry_points_run_in_full_fp32():
    from fers.batched import score_batch
    from fers.pipeline import enhance_features, enhanced_cube, score_scene

    for fn in (score_scene, enhanced_cube, enhance_features, score_batch):
        assert fn.__wrapped__ is not None and fn.__qualname__ == fn.__wrapped__.__qualname__


def test_resolve_device_errors():
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="sees no CUDA GPU"):
            resolve_device("cuda")


def test_a_run_on_the_reference_blas_says_so():
    """Debian's numpy (and Debian's torch) link the libblas.so.3 alternative; without libopenblas0 (only a
    recommendation of python3-numpy) that is the reference BLAS. The loader is pointed at it here the way the
    alternative would point it, with LD_LIBRARY_PATH, and the run log must warn; with the optimised BLAS it stays quiet."""
    import glob
    import os
    import tempfile

    from conftest import REPO, fers

    ref = glob.glob("/usr/lib/*/blas/libblas.so.3")
    if not ref or not glob.glob("/usr/lib/*/lapack/liblapack.so.3"):
        pytest.skip("the reference BLAS (Debian's libblas3, liblapack3) is not installed")
    folders = os.path.dirname(ref[0]) + ":" + os.path.dirname(ref[0]).replace("/blas", "/lapack")
    sample = os.path.join(REPO, "resources", "sample", "abu-airport-2.tif")
    args = ("--strategy", "none", "--bands", "20", "--device", "cpu")
    with tempfile.TemporaryDirectory() as d:
        slow = fers("detect", sample, os.path.join(d, "a.tif"), *args, env={"LD_LIBRARY_PATH": folders})
        fast = fers("detect", sample, os.path.join(d, "b.tif"), *args)
    assert slow.returncode == 0 and fast.returncode == 0, slow.stderr + fast.stderr
    assert "reference BLAS" in slow.stderr and "apt install libopenblas0" in slow.stderr, slow.stderr
    assert "reference BLAS" not in fast.stderr, fast.stderr
