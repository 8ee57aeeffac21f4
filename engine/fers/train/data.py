"""Background patches for training (SPEC §1: 64×64 patches from anomaly-free scenes).

Each background scene is read once, band-selected and scaled on its own (SPEC §0,
exactly as at inference). Known anomalies (a ground truth shipped with the scene)
are masked with a safety margin and filled from their nearest background pixel,
so that windows near them remain usable without teaching the network the anomaly.
True nodata is never filled: windows must be nodata-free. No data is the file's own plus any
values the caller names (an untagged zero fill around a flight line, a QGIS layer's additional
no-data values), so that such fill neither shapes the scaling nor is learnt as background.

Scenes smaller than a patch are reflect-padded up to it: mirrored background is
still background, and the small AVIRIS scenes here (50×50, 50×90) would otherwise
be lost.

Band stretch (``band_stretch``, off by default, a change beyond the paper): a scene
with slightly fewer bands than a first-N-bands model asks for (at most
``band_stretch`` × its count short) is resampled linearly along the band axis onto N
positions instead of being skipped. The paper's protocol takes bands by position
across sensors whose band sets differ (AVIRIS Classic scenes come with 188 to 224
bands once water bands are dropped), so "band k" already means slightly different
wavelengths from scene to scene; a stretched scene is one more such case, and it
lets the few AVIRIS scenes with 188–198 bands train a 200-band model.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Union

import numpy as np
from scipy import ndimage

from ..errors import InputError, TooFewBandsError
from ..feedback import Feedback
from ..io import open_source
from ..io.source import describe_nodata, nodata_ranges, require_valid
from ..io.research import had100_scenes
from ..preprocess import SCALE_HALF_RANGE, BandList, scale_cube, select_bands

RASTER_EXTENSIONS = (".tif", ".tiff", ".mat", ".npy", ".dat", ".img", ".bsq", ".bil", ".bip", ".hdr", ".vrt")


@dataclass
class BackgroundScene:
    name: str
    cube: np.ndarray  # (B, H, W) float32, scaled to [-0.1, 0.1]
    usable: np.ndarray  # (H, W) bool: nodata-free after anomaly filling
    masked_anomalies: int
    stretched_from: int = 0  # the scene's own band count when band-stretched onto the model's, else 0


def check_training_bands(bands) -> None:
    """Training fixes the model's bands by position (SPEC §0.1): the same band numbers in every scene. A band
    list by wavelength would pick other positions in each scene, so it selects bands at detection only."""
    if isinstance(bands, BandList):
        raise InputError(f"training takes band numbers (e.g. --bands 100 or --band-list 1-100), not wavelengths "
                         f"('{bands.text}'): a model's bands are positions, the same in every scene")


def check_training_run(sources, output: str, val_sources=(), teacher=None, backbone_weights=None, epochs=1,
                       batch=1, lr=0.005, betas=(0.5, 0.999), seed=0, patch=64, steps_per_epoch=0,
                       micro_batches=1, band_stretch=0.0, val_patches=16, spectral_jitter=0.0, nodata=()) -> tuple:
    """A training run's numbers and files, checked before anything is read or written: every number finite
    and in its range (``fers.params``), and neither the checkpoint nor its resume file and log
    (``OUTPUT.resume.pt``, ``OUTPUT.log.jsonl``) one of the files the run reads (background and validation
    scenes, folders of them, the teacher, a backbone weights file), or one another, by any spelling
    (``fers.io.paths``). Returns (output, nodata ranges)."""
    from ..io.paths import check_outputs
    from ..memory import limit_mb
    from ..params import number

    limit_mb()

    for name, value, lo in (("epochs (EPOCHS / --epochs)", epochs, 1), ("the batch size (BATCH / --batch)", batch, 1),
                            ("the seed (SEED / --seed)", seed, 0), ("the patch size (PATCH / --patch)", patch, 1),
                            ("the steps per epoch (STEPS / --steps)", steps_per_epoch, 0),
                            ("--micro-batches", micro_batches, 1), ("the validation patches", val_patches, 1)):
        number(value, name, lo, integer=True)
    number(lr, "the learning rate (LR / --lr)", 0.0, lo_open=True)
    betas = tuple(betas)
    if len(betas) != 2:
        raise InputError(f"Adam's betas are two numbers, got {len(betas)}")
    for b in betas:
        number(b, "Adam's betas (--betas)", 0.0, 1.0, hi_open=True)
    number(band_stretch, "the band stretch (BAND_STRETCH / --band-stretch)", 0.0, 1.0, hi_open=True)
    number(spectral_jitter, "the spectral jitter", 0.0)
    nodata = nodata_ranges(nodata)
    weights = None
    if isinstance(backbone_weights, str) and backbone_weights not in ("imagenet", "random"):
        weights = backbone_weights[len("partial:"):] if backbone_weights.startswith("partial:") else backbone_weights
    # folders as the rasters the run takes from them (other files there, a checkpoint of an earlier run, are
    # not read)
    inputs = ([("the background raster", p) for p in expand_sources(_as_list(sources))]
              + [("the validation raster", p) for p in (expand_sources(_as_list(val_sources)) if val_sources else [])]
              + [("the teacher", teacher if isinstance(teacher, str) else None), ("the backbone weights", weights)])
    output, _, _ = check_outputs(inputs, [("the checkpoint", output), ("its resume file", f"{output}.resume.pt"),
                                          ("its training log", f"{output}.log.jsonl")])
    return output, nodata


def _as_list(items) -> list:
    if items is None:
        return []
    return [items] if isinstance(items, (str, os.PathLike)) else list(items)


def expand_sources(items: Sequence[str]) -> List[str]:
    """Files as given; folders expand to the rasters they contain (sorted, for reproducibility)."""
    out = []
    for item in items:
        if os.path.isdir(item):
            found = sorted(p for p in glob.glob(os.path.join(item, "*"))
                           if p.lower().endswith(RASTER_EXTENSIONS) and not p.lower().endswith(".hdr"))
            if not found:
                raise InputError(f"no rasters found in the folder {item}")
            out.extend(found)
        else:
            out.append(item)
    if not out:
        raise InputError("no background scenes given")
    return out


def had100_training_sources(root: str, sensor: str = "aviris_ng") -> List[str]:
    """The HAD100 layout's anomaly-free training cubes: train/<sensor>/*.npy."""
    return [p for _, p, _ in had100_scenes(root, sensor=sensor, split="train")]


def stretch_target(band_count: int, bands, band_stretch: float) -> int:
    """N when a scene of ``band_count`` bands is band-stretched onto a first-N-bands model, else 0: it is short
    of N, by at most ``band_stretch`` × its own count."""
    if band_stretch > 0 and isinstance(bands, (int, np.integer)) and 1 < band_count < int(bands) <= \
            band_count * (1 + band_stretch):
        return int(bands)
    return 0


def stretch_bands(cube: np.ndarray, n: int) -> np.ndarray:
    """(B, H, W) → (n, H, W): linear interpolation along the band axis, first and last bands kept."""
    b = cube.shape[0]
    pos = np.arange(n, dtype=np.float64) * (b - 1) / (n - 1)
    lo = np.minimum(np.floor(pos).astype(np.int64), b - 2)
    w = (pos - lo).astype(np.float32)[:, None, None]
    return cube[lo] * (1 - w) + cube[lo + 1] * w


def load_background(path: str, bands: Union[int, Sequence[int]], patch: int, margin: int = 3,
                    band_stretch: float = 0.0, nodata=()) -> BackgroundScene:
    """``nodata``: values or (lo, hi) ranges that are no data too, beyond the file's own (as in
    ``fers.pipeline.detect``): an untagged zero fill would otherwise shape the scaling and be sampled as
    background, teaching the networks that a flat zero spectrum is normal."""
    src = open_source(path, nodata=nodata)
    stretch_to = stretch_target(src.band_count, bands, band_stretch)
    if stretch_to:
        bands = 0  # every band of the scene, resampled below
    idx = select_bands(src.band_count, bands)
    cube, valid = src.read(idx)
    try:
        require_valid(src, idx, valid)
    except InputError as e:
        raise InputError(f"background {path}: {e}") from None
    cube, _ = scale_cube(cube, valid)
    if stretch_to:
        cube = stretch_bands(cube, stretch_to)
    gt = src.ground_truth()
    n_anom = 0
    if gt is not None and (gt > 0).any():
        anomalies = ndimage.binary_dilation(gt > 0, iterations=margin) if margin else gt > 0
        n_anom = int((gt > 0).sum())
        fill_from = valid & ~anomalies
        if not fill_from.any():
            raise InputError(f"{path}: no background left after masking its anomalies")
        # nearest background pixel for every masked one
        _, (ri, ci) = ndimage.distance_transform_edt(~fill_from, return_indices=True)
        hole = anomalies & valid
        cube[:, hole] = cube[:, ri[hole], ci[hole]]
    h, w = valid.shape
    if h < patch or w < patch:
        ph, pw = max(0, patch - h), max(0, patch - w)
        if ph > h - 1 or pw > w - 1:
            raise InputError(f"{path} is {w}×{h} px: too small to mirror up to {patch}×{patch} patches")
        cube = np.pad(cube, ((0, 0), (0, ph), (0, pw)), mode="reflect")
        valid = np.pad(valid, ((0, ph), (0, pw)), mode="reflect")
    return BackgroundScene(os.path.basename(path), np.ascontiguousarray(cube), valid, n_anom,
                           src.band_count if stretch_to else 0)


def spectral_gain(rng: np.random.Generator, bands: int, sigma: float) -> np.ndarray:
    """A smooth random gain curve over the bands: exp(σ·s), s a sum of three random cosines (periods of
    2, 1 and 2/3 the band range) with unit variance, so that neighbouring bands move together."""
    b = np.linspace(0.0, np.pi, bands)
    k = np.arange(1, 4)[:, None]
    s = (rng.standard_normal((3, 1)) * np.cos(k * b + rng.uniform(0, 2 * np.pi, (3, 1)))).sum(0) * np.sqrt(2 / 3)
    return np.exp(sigma * s).astype(np.float32)


class PatchSampler:
    """Random nodata-free patches with flips and 90° rotations, from a seeded generator.

    ``spectral_jitter`` σ > 0 (beyond the paper, off by default) multiplies each patch's spectra by a
    smooth random gain curve (``spectral_gain``), applied to the scaled values shifted to start at 0
    (x + 0.1, proportional to the radiance above the scene's minimum): scenes from other flights differ
    from the few training scenes by such illumination, atmosphere and calibration shapes.
    """

    def __init__(self, scenes: List[BackgroundScene], patch: int, seed: int, augment: bool = True,
                 spectral_jitter: float = 0.0):
        if spectral_jitter < 0:
            raise InputError(f"spectral jitter must be ≥ 0 (0 = off), got {spectral_jitter}")
        self.scenes, self.patch, self.augment, self.jitter = scenes, patch, augment, float(spectral_jitter)
        self.rng = np.random.default_rng(seed)
        self.windows = []  # per scene: top-left corners of fully usable windows
        for s in scenes:
            # a window is usable iff its sum of unusable pixels is 0 (integral image)
            bad = np.pad((~s.usable).astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
            p = patch
            counts = bad[p:, p:] - bad[:-p, p:] - bad[p:, :-p] + bad[:-p, :-p]
            r, c = np.nonzero(counts == 0)
            self.windows.append(np.stack([r, c], 1))
        empty = [s.name for s, wnd in zip(scenes, self.windows) if len(wnd) == 0]
        if empty:
            raise InputError(f"no nodata-free {patch}×{patch} window in: {', '.join(empty)}")
        # scenes are drawn in proportion to their area, so every pixel is about equally likely
        area = np.array([s.usable.sum() for s in scenes], dtype=np.float64)
        self.p_scene = area / area.sum()

    @property
    def bands(self) -> int:
        return self.scenes[0].cube.shape[0]

    def epoch_steps(self, batch: int) -> int:
        """Steps in one 'epoch': as many patch pixels as the scenes hold pixels."""
        pixels = sum(int(s.usable.sum()) for s in self.scenes)
        return max(1, int(np.ceil(pixels / (self.patch * self.patch * batch))))

    def batch(self, n: int) -> np.ndarray:
        out = np.empty((n, self.bands, self.patch, self.patch), np.float32)
        for i in range(n):
            k = self.rng.choice(len(self.scenes), p=self.p_scene)
            r, c = self.windows[k][self.rng.integers(len(self.windows[k]))]
            x = self.scenes[k].cube[:, r:r + self.patch, c:c + self.patch]
            if self.augment:
                x = np.rot90(x, int(self.rng.integers(4)), axes=(1, 2))
                if self.rng.integers(2):
                    x = x[:, :, ::-1]
            out[i] = x
            if self.augment and self.jitter:
                gain = spectral_gain(self.rng, self.bands, self.jitter)[:, None, None]
                out[i] = (out[i] + SCALE_HALF_RANGE) * gain - SCALE_HALF_RANGE
        return out

    def get_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def fixed_patches(scenes: List[BackgroundScene], patch: int, count: int, seed: int) -> np.ndarray:
    """A deterministic validation set: the same patches every epoch, no augmentation."""
    return PatchSampler(scenes, patch, seed, augment=False).batch(count)


@dataclass
class BackgroundData:
    train: PatchSampler
    val: np.ndarray  # (n, B, p, p)
    train_names: List[str]
    val_names: List[str]
    summary: dict
    # what a resume file is checked against (train.loop): each scene's path, size and modification time
    fingerprint: list = field(default_factory=list)


def fingerprint(paths: Sequence[str]) -> list:
    """[path, bytes, mtime ns] of each file: the same files, unchanged, or not (a content hash would read
    every scene twice; a copy with another time stamp then counts as changed, which --restart settles)."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append([os.path.realpath(p), int(st.st_size), int(st.st_mtime_ns)])
        except OSError:
            out.append([str(p), None, None])
    return out


def prepare_background(sources: Sequence[str], bands, patch: int, seed: int, val_sources: Optional[Sequence[str]] = None,
                       val_patches: int = 16, feedback: Optional[Feedback] = None,
                       band_stretch: float = 0.0, spectral_jitter: float = 0.0, nodata=(),
                       source_nodata: Optional[dict] = None) -> BackgroundData:
    """Load every background scene; hold out validation scenes (never test scenes).

    ``nodata`` (values or (lo, hi) ranges) is no data in every scene; ``source_nodata`` maps a source
    path to more ranges for that file alone (a QGIS layer's own additional no-data values).

    With ``val_sources`` given those scenes validate; otherwise, with 3 or more
    scenes, the last one (in sorted order) is held out; with fewer, validation uses
    fixed patches of the training scenes (weaker, and said so in the log).
    """
    feedback = feedback or Feedback()
    paths = expand_sources(sources)
    val_paths = expand_sources(val_sources) if val_sources else []
    if not val_paths and len(paths) >= 3:
        val_paths = [paths[-1]]
        paths = paths[:-1]
    nodata = nodata_ranges(nodata)
    source_nodata = {os.path.abspath(k): nodata_ranges(v) for k, v in (source_nodata or {}).items()}

    def load(p):
        extra = tuple(dict.fromkeys(nodata + source_nodata.get(os.path.abspath(p), ())))
        if extra:
            feedback.info(f"{os.path.basename(p)}: no data also where a band reads {describe_nodata(extra)}")
        return load_background(p, bands, patch, band_stretch=band_stretch, nodata=extra)

    scenes, skipped = [], []
    for i, p in enumerate(paths):
        feedback.check()
        try:
            scenes.append(load(p))
        except TooFewBandsError as e:
            # a scene with too few bands cannot serve a first-N-bands model; others still can
            skipped.append(os.path.basename(p))
            feedback.warn(f"skipping {os.path.basename(p)}: {e}")
        feedback.progress((i + 1) / (len(paths) + len(val_paths)), f"loaded {os.path.basename(p)}")
    if not scenes:
        raise InputError(f"none of the background scenes has the {bands} bands asked for")
    bcount = {s.cube.shape[0] for s in scenes}
    if len(bcount) != 1:
        raise InputError(f"background scenes give different band counts {sorted(bcount)}; set --bands")
    val_scenes = [load(p) for p in val_paths]
    for s in scenes + val_scenes:
        if s.stretched_from:
            feedback.info(f"{s.name}: {s.stretched_from} bands resampled onto {bands} (band stretch)")
    held_out = bool(val_scenes)
    if not held_out:
        feedback.warn("fewer than 3 background scenes: validation uses fixed patches of the training scenes")
        val_scenes = scenes
    train = PatchSampler(scenes, patch, seed, spectral_jitter=spectral_jitter)
    val = fixed_patches(val_scenes, patch, val_patches, seed + 1)
    summary = {
        "train_scenes": [s.name for s in scenes], "val_scenes": [s.name for s in val_scenes] if held_out else [],
        "train_pixels": int(sum(s.usable.sum() for s in scenes)),
        "masked_anomaly_pixels": int(sum(s.masked_anomalies for s in scenes)),
        "patch": patch, "val_patches": int(len(val)), "val_held_out": held_out, "skipped_scenes": skipped,
        "band_stretch": float(band_stretch), "spectral_jitter": float(spectral_jitter),
        "stretched_scenes": {s.name: s.stretched_from for s in scenes + val_scenes if s.stretched_from},
        "nodata": [list(r) for r in nodata],
        "source_nodata": {os.path.basename(k): [list(r) for r in v] for k, v in source_nodata.items() if v},
    }
    return BackgroundData(train, val, summary["train_scenes"], summary["val_scenes"], summary,
                          fingerprint(paths) + [["validation"]] + fingerprint(val_paths))
