"""Band wavelengths: reading them, matching a raster's bands to a model's, writing them.

Reading (``read_spectral_info``): band centres and FWHM in nanometres and the bad-band
list, from what GDAL exposes of GeoTIFF and ENVI files:

* band metadata ``wavelength`` / ``fwhm`` / ``bbl`` with ``wavelength_units`` (what the
  ENVI driver sets per band, and what GDAL copies into GeoTIFFs);
* the ENVI header lists (``wavelength = {…}``, ``fwhm = {…}``, ``bbl = {…}``; 1 = good,
  0 = bad) in the ``ENVI`` metadata domain;
* only where neither gives them, the IMAGERY domain (``CENTRAL_WAVELENGTH_UM``, ``FWHM_UM``;
  GDAL ≥ 3.10's standard names, which its ENVI driver fills from the header rounded to 1 nm).

Units: Micrometers/um/µm and Nanometers/nm are honoured; without a unit, values below
100 are taken as micrometres.

Matching (``plan_bands``), when a model is used:

* ``auto`` — if both the raster and the model card (``meta["wavelengths"]``) give
  wavelengths: nearest centre when every model band has a raster band within tolerance,
  else linear-interpolation resampling (the sensor differs); otherwise the bands the
  model was trained on, by position (``meta["band_indices"]``, the first N by default).
* ``nearest`` — each model wavelength takes the nearest good raster band.
* ``resample`` — each model wavelength is linearly interpolated between the two good
  raster bands around it (per pixel: ``np.interp`` of the spectrum).
* ``index`` — positions only; wavelengths ignored.

Tolerance of a match: a quarter of the model's band spacing at that band, or half the raster
band's FWHM when larger, at least 1 nm (a raster band farther away than that does not measure
the model's wavelength: in ``auto`` the spectra are then resampled). Every mismatch is a warning naming the bands and the
offset, never silent.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .errors import InputError, ModelError

MATCH_MODES = ("auto", "nearest", "resample", "index")


@dataclass
class SpectralInfo:
    wavelengths: Optional[list] = None  # nm, one per band
    fwhm: Optional[list] = None  # nm, one per band
    bad_bands: list = field(default_factory=list)  # 0-based indices flagged bad (bbl = 0)


def parse_envi_list(text: Optional[str]) -> Optional[list]:
    """'{ 0.4, 0.41 }' → ['0.4', '0.41'] (None if absent)."""
    if text is None:
        return None
    items = [t.strip() for t in re.split(r"[,\s]+", str(text).strip().strip("{}").strip()) if t.strip()]
    return items or None


def _unit_factor(units: str, sample: float) -> float:
    u = (units or "").strip().lower()
    if u.startswith("micro") or u in ("um", "µm", "μm", "microns"):
        return 1000.0
    if u.startswith("nano") or u == "nm":
        return 1.0
    if u.startswith("milli") or u == "mm":
        return 1e6
    return 1000.0 if sample < 100 else 1.0  # 'Unknown' or none: a heuristic on the magnitude


def _floats(items, n) -> Optional[list]:
    if items is None or len(items) != n:
        return None
    try:
        return [float(v) for v in items]
    except ValueError:
        return None


def _number(raw) -> Optional[float]:
    """'0.4096' or '0.4096 Micrometers' → 0.4096; None if absent or not a number."""
    if raw is None:
        return None
    try:
        return float(str(raw).split()[0])
    except (ValueError, IndexError):
        return None


def _band_numbers(bands, key: str, domain: str = "") -> Optional[list]:
    """The item ``key`` of every band as a float (the lower- or upper-case name), or None unless all have one."""
    vals = [_number(b.GetMetadataItem(key, domain) or b.GetMetadataItem(key.upper(), domain)) for b in bands]
    return vals if vals and all(v is not None for v in vals) else None


def read_spectral_info(ds) -> SpectralInfo:
    """Wavelengths, FWHM (nm) and bad bands of an open GDAL dataset.

    The file's own values come first: band metadata ``wavelength``/``fwhm`` with their units, then the
    ENVI header lists. The IMAGERY domain (``CENTRAL_WAVELENGTH_UM``, ``FWHM_UM``) is read only where
    neither exists: GDAL ≥ 3.10's ENVI driver fills it from the same header, formatted with three
    decimals in µm (0.4096 µm → "0.410"), so on ENVI files it is a rounded copy of the header, up to
    0.5 nm off, enough to move band centres, wavelength band lists, model matching and resampling.
    """
    n = ds.RasterCount
    envi = ds.GetMetadata("ENVI") or {}
    ds_units = ds.GetMetadataItem("wavelength_units") or envi.get("wavelength_units") or ""
    bands = [ds.GetRasterBand(i) for i in range(1, n + 1)]

    wl = factors = None  # factors: the unit → nm factor of each band, which its FWHM shares
    per = _band_numbers(bands, "wavelength")
    if per is not None:
        factors = [_unit_factor(b.GetMetadataItem("wavelength_units") or ds_units, v) for b, v in zip(bands, per)]
        wl = [v * f for v, f in zip(per, factors)]
    else:
        raw = _floats(parse_envi_list(envi.get("wavelength")), n)
        if raw:
            fac = _unit_factor(ds_units, raw[0])
            wl, factors = [v * fac for v in raw], [fac] * n
        else:
            um = _band_numbers(bands, "CENTRAL_WAVELENGTH_UM", "IMAGERY")
            if um is not None:
                wl, factors = [v * 1000.0 for v in um], [1000.0] * n

    fwhm = None
    if wl is not None:
        per = _band_numbers(bands, "fwhm")
        raw = per if per is not None else _floats(parse_envi_list(envi.get("fwhm")), n)
        if raw:
            fwhm = [v * f for v, f in zip(raw, factors)]
        else:
            um = _band_numbers(bands, "FWHM_UM", "IMAGERY")
            fwhm = [v * 1000.0 for v in um] if um is not None else None

    bbl = _floats(parse_envi_list(envi.get("bbl")), n)
    if bbl is None:
        per = [b.GetMetadataItem("bbl") for b in bands]
        bbl = _floats(per, n) if all(v is not None for v in per) else None
    bad = [i for i, v in enumerate(bbl) if v == 0] if bbl else []
    return SpectralInfo(wl, fwhm, bad)


def band_metadata(wavelengths: Optional[Sequence[float]], fwhm: Optional[Sequence[float]] = None) -> list:
    """Per-band metadata dicts (for ``write_raster(band_metadata=…)``) that GDAL, ENVI tools and
    ``read_spectral_info`` read back: ``wavelength``/``fwhm`` in nanometres."""
    if not wavelengths:
        return []
    out = []
    for i, w in enumerate(wavelengths):
        d = {"wavelength": f"{float(w):.4f}", "wavelength_units": "Nanometers"}
        if fwhm is not None and i < len(fwhm) and fwhm[i] is not None:
            d["fwhm"] = f"{float(fwhm[i]):.4f}"
        out.append(d)
    return out


# ---------------------------------------------------------------- matching

def tolerances(model_wl: Sequence[float], raster_fwhm: Optional[Sequence[float]] = None,
               matched: Optional[Sequence[int]] = None) -> np.ndarray:
    """Per model band: a quarter of its spacing to the nearest model band, or half the matched raster
    band's FWHM if larger, at least 1 nm."""
    m = np.asarray(model_wl, dtype=np.float64)
    if m.size > 1:
        order = np.argsort(m)
        gaps = np.diff(m[order])
        spacing = np.empty_like(m)
        left = np.concatenate([[np.inf], gaps])
        right = np.concatenate([gaps, [np.inf]])
        spacing[order] = np.minimum(left, right)
        tol = spacing / 4.0
    else:
        tol = np.full(m.shape, 5.0)
    if raster_fwhm is not None and matched is not None:
        tol = np.maximum(tol, 0.5 * np.asarray([raster_fwhm[i] for i in matched], dtype=np.float64))
    return np.maximum(tol, 1.0)


def match_nearest(raster_wl: Sequence[float], model_wl: Sequence[float], bad: Sequence[int] = ()) -> tuple:
    """(indices into the raster, offsets in nm): the nearest good raster band to each model wavelength."""
    r = np.asarray(raster_wl, dtype=np.float64)
    good = np.array([i for i in range(r.size) if i not in set(bad)], dtype=int)
    if good.size == 0:
        raise InputError("every band of the raster is flagged bad (bbl): nothing to match")
    m = np.asarray(model_wl, dtype=np.float64)
    d = np.abs(r[good][None, :] - m[:, None])
    pick = good[np.argmin(d, axis=1)]
    return [int(i) for i in pick], (r[pick] - m)


def resampling_matrix(raster_wl: Sequence[float], model_wl: Sequence[float], bad: Sequence[int] = ()) -> tuple:
    """(W (model bands × raster bands), clamped model band indices): row j holds the linear-interpolation
    weights of model wavelength j between the two good raster bands around it, so ``W @ spectrum`` equals
    ``np.interp(model_wl, raster_wl[good], spectrum[good])``; beyond the raster's range the edge band is taken."""
    r = np.asarray(raster_wl, dtype=np.float64)
    badset = set(int(b) for b in bad)
    good = np.array([i for i in np.argsort(r, kind="stable") if i not in badset], dtype=int)
    if good.size == 0:
        raise InputError("every band of the raster is flagged bad (bbl): nothing to resample")
    rg = r[good]
    m = np.asarray(model_wl, dtype=np.float64)
    w = np.zeros((m.size, r.size), dtype=np.float64)
    clamped = []
    for j, x in enumerate(m):
        if x <= rg[0] or x >= rg[-1] or good.size == 1:
            k = 0 if (x <= rg[0] or good.size == 1) else good.size - 1
            w[j, good[k]] = 1.0
            if x < rg[0] or x > rg[-1]:
                clamped.append(j)
            continue
        k = int(np.searchsorted(rg, x, side="right"))  # rg[k-1] ≤ x < rg[k]
        a, b = rg[k - 1], rg[k]
        t = (x - a) / (b - a) if b > a else 0.0
        w[j, good[k - 1]] += 1.0 - t
        w[j, good[k]] += t
    return w, clamped


def _fmt(v: float) -> str:
    return f"{v:.1f} nm"


@dataclass
class BandPlan:
    """What to read from the source and how to turn it into the model's bands.

    ``indices``: the 0-based source bands to read; ``matrix``: None (use them as read) or
    (out bands × len(indices)) weights applied per pixel (spectral resampling).
    """

    indices: list
    matrix: Optional[np.ndarray] = None
    mode: str = "index"
    wavelengths: Optional[list] = None  # nm of the output bands, where known
    notes: list = field(default_factory=list)

    @property
    def band_count(self) -> int:
        return len(self.indices) if self.matrix is None else int(self.matrix.shape[0])

    def read(self, src, window=None):
        cube, valid = src.read(self.indices, window)
        if self.matrix is None:
            return cube, valid
        out = np.tensordot(self.matrix.astype(np.float32), cube, axes=(1, 0)).astype(np.float32)
        out[:, ~valid] = 0.0
        return out, valid


def _positional(src, bands, model) -> list:
    from .preprocess import select_bands

    if model is not None and isinstance(bands, (int, np.integer)) and int(bands) == 0:
        idx = model.meta.get("band_indices") or list(range(model.bands))
        idx = [int(i) for i in idx]
        if len(idx) != model.bands:
            idx = list(range(model.bands))
        if max(idx) >= src.band_count:
            raise ModelError(f"the model {model.describe()} uses bands up to {max(idx) + 1}, but the raster has "
                             f"only {src.band_count}: a raster of the model's sensor is needed, or BANDS/BAND_LIST")
        return idx
    return select_bands(src.band_count, bands)


def _ranges(idx: Sequence[int]) -> str:
    from .preprocess import band_ranges

    return band_ranges(sorted(idx))


def plan_bands(src, model=None, bands=0, match: str = "auto", feedback=None) -> BandPlan:
    """Which source bands feed the detector (see the module docstring); warnings go to ``feedback``."""
    from .feedback import Feedback

    fb = feedback or Feedback()
    match = (match or "auto").lower()
    if match not in MATCH_MODES:
        raise InputError(f"unknown band matching '{match}' (choose one of: {', '.join(MATCH_MODES)})")
    r_wl = getattr(src, "wavelengths", None)
    r_fwhm = getattr(src, "fwhm", None)
    bad = list(getattr(src, "bad_bands", None) or [])
    meta = model.meta if model is not None else {}
    m_wl = meta.get("wavelengths")
    explicit = not (isinstance(bands, (int, np.integer)) and int(bands) == 0)
    name = model.describe() if model is not None else ""

    expected = meta.get("input_band_count")
    if model is not None and expected and int(expected) != src.band_count:
        fb.warn(f"the model card of {name} expects rasters with {int(expected)} bands (its sensor); this raster "
                f"has {src.band_count}: check that the sensor matches")

    if model is not None and m_wl is not None and len(m_wl) != model.bands:
        fb.warn(f"the model card of {name} lists {len(m_wl)} wavelengths for {model.bands} bands; ignoring them")
        m_wl = None

    if match in ("nearest", "resample") and (m_wl is None or r_wl is None):
        missing = " and ".join(w for w, v in (("the raster", r_wl), ("the model card", m_wl)) if v is None)
        raise InputError(f"band matching '{match}' needs wavelengths, but {missing} gives none; "
                         "use band matching 'auto' or 'index'")

    if model is None or m_wl is None or r_wl is None or match == "index" or (explicit and match == "auto"):
        idx = _positional(src, bands, model)
        plan = BandPlan(idx, mode="index", wavelengths=[r_wl[i] for i in idx] if r_wl else None)
        if model is not None and m_wl is not None and r_wl is None:
            fb.warn(f"the model {name} was trained on given wavelengths ({_fmt(min(m_wl))}–{_fmt(max(m_wl))}), "
                    f"but {src.describe().split(':')[0]} carries no wavelength metadata: bands are taken by position "
                    f"({_ranges(idx)}); check they are the same wavelengths")
        elif model is not None and m_wl is not None and r_wl is not None:
            off = np.asarray([r_wl[i] for i in idx]) - np.asarray(m_wl, dtype=np.float64)
            tol = tolerances(m_wl, r_fwhm, idx)
            worst = int(np.argmax(np.abs(off) - tol))
            if abs(off[worst]) > tol[worst]:
                fb.warn(f"the chosen bands do not match the model card's wavelengths: band {idx[worst] + 1} is at "
                        f"{_fmt(r_wl[idx[worst]])}, the model's band {worst + 1} at {_fmt(m_wl[worst])} (offset "
                        f"{abs(off[worst]):.1f} nm); leave BANDS at 0 to match by wavelength")
        _warn_bad(fb, idx, bad)
        return plan

    # both sides know their wavelengths and the bands were not forced: match by wavelength
    idx, off = match_nearest(r_wl, m_wl, bad)
    tol = tolerances(m_wl, r_fwhm, idx)
    far = np.abs(off) > tol
    if match == "nearest" or (match == "auto" and not far.any()):
        plan = BandPlan(idx, mode="nearest", wavelengths=[r_wl[i] for i in idx])
        if len(set(idx)) < len(idx):
            fb.warn(f"{len(idx) - len(set(idx))} model band(s) share their nearest raster band: the raster is "
                    "coarser than the model's sensor; band matching 'resample' interpolates instead")
        if far.any():
            j = int(np.argmax(np.abs(off) - tol))
            fb.warn(f"{int(far.sum())} of {len(m_wl)} model bands have no raster band within tolerance (worst: model "
                    f"{_fmt(m_wl[j])} ← raster band {idx[j] + 1} at {_fmt(r_wl[idx[j]])}); the raster's wavelengths "
                    "do not match the model card")
        fb.info(f"bands matched by wavelength (nearest centre): {len(idx)} raster bands ({_ranges(set(idx))}), "
                f"largest offset {float(np.max(np.abs(off))):.1f} nm")
        return plan
    w, clamped = resampling_matrix(r_wl, m_wl, bad)
    if 2 * len(clamped) > len(m_wl):
        # copying an edge band into most of the model's bands gives a map, but a meaningless one
        raise ModelError(f"the raster's wavelengths ({_fmt(min(r_wl))}–{_fmt(max(r_wl))}) do not cover the model's "
                         f"({_fmt(min(m_wl))}–{_fmt(max(m_wl))}): {len(clamped)} of {len(m_wl)} model bands lie outside "
                         "the raster's range; use a model trained for this sensor")
    used = sorted(set(np.nonzero(w.any(axis=0))[0].tolist()))
    plan = BandPlan(used, w[:, used], mode="resample", wavelengths=[float(v) for v in m_wl])
    if match == "auto":
        j = int(np.argmax(np.abs(off) - tol))
        fb.warn(f"the raster's wavelengths do not match the model card ({int(far.sum())} of {len(m_wl)} model bands "
                f"have no raster band within tolerance; worst: model {_fmt(m_wl[j])}, nearest raster band "
                f"{_fmt(r_wl[idx[j]])}): resampling the spectra to the model's wavelengths by linear interpolation")
    if clamped:
        fb.warn(f"{len(clamped)} model wavelength(s) lie outside the raster's range "
                f"({_fmt(min(r_wl))}–{_fmt(max(r_wl))}); the edge band stands in for them")
    fb.info(f"spectra resampled to the model's {len(m_wl)} wavelengths from {len(used)} raster bands")
    return plan


def _warn_bad(fb, idx, bad) -> None:
    hit = sorted(set(idx) & set(bad))
    if hit:
        fb.warn(f"band(s) {_ranges(hit)} are flagged bad in the raster's metadata (ENVI bbl) but are used; "
                "an explicit band list (BAND_LIST / --band-list) can leave them out")
