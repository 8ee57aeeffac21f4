"""The enhanced cube H + F_spe (+ F_spa) as a multi-band raster, for other tools (EnMAP-Box, SNAP, ...).

Values are in the scaled units of SPEC §0 (the selected bands mapped to [-0.1, 0.1] by the
scene's global min/max, recorded in the metadata) plus the learned features: the cube the
detectors see, not radiance or reflectance.
"""
from __future__ import annotations

import os
import time
from typing import Optional, Sequence, Union

import numpy as np

from . import __version__
from .device import resolve_device
from .errors import ModelError
from .feedback import Feedback
from .io import check_output_path, open_source, write_raster
from .io.paths import check_outputs
from .io.source import nodata_ranges
from .pipeline import DEFAULT_NODATA, check_run_numbers, enhanced_cube, output_nodata, read_scene, resolve_band_list, resolve_model
from .preprocess import scale_cube, select_bands
from .wavelengths import BandPlan

BRANCHES = ("both", "spectral", "spatial")


def enhance(input: str, output: str, model: str, bands: Union[int, Sequence[int], None] = 0, branches: str = "both",
            device: str = "auto", variable: Optional[str] = None, feedback: Optional[Feedback] = None,
            nodata=None, file_nodata: bool = True, extent=None) -> dict:
    """Write the enhanced cube of ``input`` (all bands the model takes) as a GeoTIFF; ``extent`` and the no-data
    arguments as in ``fers.pipeline.detect``."""
    feedback = feedback or Feedback()
    t0 = time.perf_counter()
    if branches not in BRANCHES:
        raise ModelError(f"unknown branches '{branches}' (choose one of: {', '.join(BRANCHES)})")
    _, _, extent = check_run_numbers(extent=extent)
    nodata = nodata_ranges(nodata)
    output, = check_outputs([("the input raster", input), ("the model", model if isinstance(model, str) else None)],
                            [("the enhanced cube", output)])
    output = check_output_path(output)
    dev = resolve_device(device, feedback)
    src = open_source(input, variable, nodata, file_nodata)  # as in fers.pipeline.detect
    bands = resolve_band_list(bands, src, feedback)
    mdl = resolve_model(model, dev, feedback)
    if mdl is None:
        raise ModelError("enhancement needs a model (MODEL / --model)")
    need_spe, need_spa = branches in ("both", "spectral"), branches in ("both", "spatial")
    if need_spa and mdl.spa is None:
        if branches == "spatial":
            raise ModelError(f"{mdl.describe()} has no spatial branch (Spa-FEN); use branches 'spectral'")
        need_spa = False
        feedback.warn(f"{mdl.describe()} has no spatial branch: writing H + F_spe only")
    if isinstance(bands, (int, np.integer)) and int(bands) == 0:
        bands = mdl.bands
    idx = select_bands(src.band_count, bands)
    if len(idx) != mdl.bands:
        raise ModelError(f"the model {mdl.describe()} was trained on {mdl.bands} bands, but {len(idx)} are selected")
    cube, valid, georef = read_scene(src, BandPlan(idx), extent, "enhance", feedback)
    feedback.progress(0.1, "read")
    cube, (lo, hi) = scale_cube(cube, valid)
    feedback.check()
    import torch

    with torch.inference_mode():
        out = enhanced_cube(torch.from_numpy(cube).to(dev), mdl, need_spe, need_spa,
                            feedback=feedback.sub(0.1, 0.8)).cpu().numpy()
    feedback.progress(0.8, "features")
    del cube
    nodata = output_nodata(src.nodata) if src.nodata is not None else DEFAULT_NODATA
    out[:, ~valid] = nodata
    formula = "H" + (" + F_spe" if need_spe else "") + (" + F_spa" if need_spa else "")
    names = [f"band {b + 1}: {formula}" for b in idx]
    band_meta = None
    if src.wavelengths is not None:
        band_meta = [{"wavelength": f"{src.wavelengths[b]:.4f}", "wavelength_units": "Nanometers"} for b in idx]
    meta = {"FERS_VERSION": __version__, "FERS_CUBE": formula, "FERS_SCALE_MIN": lo, "FERS_SCALE_MAX": hi,
            "FERS_MODEL": mdl.source, "FERS_SOURCE": os.path.basename(input)}
    write_raster(output, list(out), georef, nodata, names, meta, band_metadata=band_meta, feedback=feedback)
    feedback.progress(1.0, "done")
    return {"output": output, "bands": len(idx), "cube": formula, "seconds": time.perf_counter() - t0, "device": dev}
