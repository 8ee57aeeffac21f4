"""Benchmark scenes: which files are scenes, where each one's ground truth is (beside it, inside it, a
``DATA=TRUTH`` pair, a HAD100 root), and reading that truth. Knows nothing of models or outputs."""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import FersError, InputError
from ..feedback import Feedback
from ..io import had100_scenes, load_ground_truth, open_source


SCENE_EXTENSIONS = (".mat", ".npy", ".tif", ".tiff", ".img", ".dat", ".bsq", ".bil", ".bip", ".vrt", ".hdf", ".h5",
                    ".nc", ".jp2")
TRUTH_EXTENSIONS = (".tif", ".tiff", ".png", ".mat", ".npy", ".img", ".dat", ".vrt")
TRUTH_SUFFIXES = ("_gt", "-gt", "_mask", "-mask", "_groundtruth", "_truth")


@dataclass
class BenchScene:
    name: str
    path: str
    truth: Optional[str] = None  # separate ground-truth file; None = the one inside the data file
    origin: str = ""  # "file", "pair", "folder", "had100"


def truth_beside(path: str) -> Optional[str]:
    """The ground-truth file that sits beside a scene by naming convention, or None."""
    folder, base = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(base)
    stems = [stem + s for s in TRUTH_SUFFIXES]
    m = re.match(r"^(.*?)(data|Data|DATA)(.+)$", stem)  # RCRD__dataPavia → RCRD__maskPavia
    if m:
        mask = {"data": "mask", "Data": "Mask", "DATA": "MASK"}[m.group(2)]
        stems += [m.group(1) + mask + m.group(3), m.group(1) + "gt" + m.group(3)]
    exts = [ext] + [e for e in TRUTH_EXTENSIONS if e != ext.lower()]
    for s in stems:
        for e in exts:
            p = os.path.join(folder, s + e)
            if os.path.isfile(p):
                return p
    split_dir, sensor = os.path.split(folder)  # one HAD100 cube: ROOT/test/<sensor>/NAME.npy
    if os.path.basename(split_dir) == "test":
        p = os.path.join(os.path.dirname(split_dir), "ground_truth", sensor, stem + ".png")
        if os.path.isfile(p):
            return p
    return None


def _looks_like_truth(path: str) -> bool:
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    return stem.endswith(TRUTH_SUFFIXES) or bool(re.match(r"^.*?mask[A-Z0-9]", os.path.basename(path)))


def _has_embedded_truth(path: str) -> bool:
    try:
        return open_source(path).ground_truth() is not None
    except FersError:
        return False


def _is_had100_root(folder: str) -> bool:
    return os.path.isdir(os.path.join(folder, "test")) and os.path.isdir(os.path.join(folder, "ground_truth"))


def collect_scenes(items: Sequence[str] = (), had100: Optional[str] = None, sensor: str = "aviris_ng",
                   feedback: Optional[Feedback] = None) -> tuple:
    """``(scenes, skipped)``: what to benchmark, and what a folder held that cannot be (with the reason).

    A file given explicitly without a ground truth is an error; inside a folder it is skipped.
    """
    feedback = feedback or Feedback()
    scenes: List[BenchScene] = []
    skipped: List[dict] = []

    def add_file(path: str, origin: str, truth: Optional[str] = None):
        path = os.path.abspath(path)
        if truth is None:
            truth = truth_beside(path)
        if truth is None and not (path.lower().endswith(".mat") and _has_embedded_truth(path)):
            reason = (f"no ground truth found for {os.path.basename(path)}: give it as SCENE=TRUTH, or put "
                      f"{os.path.splitext(os.path.basename(path))[0]}_gt.tif beside it")
            if origin == "file":
                raise InputError(reason)
            skipped.append({"scene": os.path.basename(path), "path": path, "reason": "no ground truth"})
            return
        scenes.append(BenchScene(os.path.splitext(os.path.basename(path))[0], path,
                                 os.path.abspath(truth) if truth else None, origin))

    def add_had100(root: str):
        for name, cube, gt in had100_scenes(root, sensor=sensor, split="test"):
            if gt is None:
                skipped.append({"scene": name, "path": cube, "reason": f"no ground_truth/{sensor}/{name}.png"})
            else:
                scenes.append(BenchScene(name, os.path.abspath(cube), os.path.abspath(gt), "had100"))

    items = [os.fspath(i) for i in items]
    # a ground-truth layer given next to its scene (QGIS layer lists) is not a scene
    given_truths = {os.path.abspath(t) for t in (truth_beside(i) for i in items if os.path.isfile(i)) if t}
    for item in items:
        if os.path.isfile(item) and os.path.abspath(item) in given_truths:
            feedback.info(f"{os.path.basename(item)} is the ground truth of another scene; not benchmarked itself")
            continue
        if "=" in item and not os.path.exists(item):
            data, truth = item.split("=", 1)
            for p, what in ((data, "scene"), (truth, "ground truth")):
                if not os.path.isfile(p):
                    raise InputError(f"{what} not found: {p} (in '{item}')")
            add_file(data, "pair", truth)
        elif os.path.isdir(item):
            if _is_had100_root(item):
                add_had100(item)
                continue
            files = sorted(p for p in glob.glob(os.path.join(item, "*"))
                           if os.path.isfile(p) and p.lower().endswith(SCENE_EXTENSIONS))
            truths = {os.path.abspath(t) for t in (truth_beside(p) for p in files) if t}
            data = [p for p in files if os.path.abspath(p) not in truths and not _looks_like_truth(p)]
            if not data:
                raise InputError(f"no scenes found in the folder {item} (.mat files with a ground-truth variable, "
                                 "rasters with a SCENE_gt raster beside them, or a HAD100 root)")
            for p in data:
                add_file(p, "folder")
        elif os.path.isfile(item):
            add_file(item, "file")
        else:
            raise InputError(f"scene not found: {item}")
    if had100:
        if not os.path.isdir(had100):
            raise InputError(f"HAD100 folder not found: {had100}")
        add_had100(had100)
    truths = {s.truth for s in scenes if s.truth}
    dropped = [s for s in scenes if s.path in truths]
    scenes = [s for s in scenes if s.path not in truths]
    for s in dropped:
        feedback.info(f"{os.path.basename(s.path)} is the ground truth of another scene; not benchmarked itself")
    # unique, file-name-safe scene names
    seen: Dict[str, int] = {}
    for s in scenes:
        base = re.sub(r"[^A-Za-z0-9._+-]+", "_", s.name) or "scene"
        k = seen.get(base, 0)
        seen[base] = k + 1
        s.name = base if k == 0 else f"{base}_{k + 1}"
    if not scenes:
        raise InputError("no scene with a ground truth to benchmark" +
                         (f" ({len(skipped)} skipped: {skipped[0]['reason']})" if skipped else ""))
    return scenes, skipped


def read_truth(scene: BenchScene, src) -> tuple:
    """(anomaly mask, valid) of a scene, checked against its size. Used for the AUC only."""
    if scene.truth:
        gt, gt_valid = load_ground_truth(scene.truth)
    else:
        raw = src.ground_truth()
        if raw is None:
            raise InputError(f"{scene.path} holds no ground-truth variable")
        raw = np.asarray(raw)
        gt = raw > 0
        gt_valid = np.isfinite(raw) if raw.dtype.kind == "f" else np.ones(raw.shape, bool)
    if gt.shape != (src.height, src.width):
        raise InputError(f"the ground truth of {scene.name} is {gt.shape[1]}×{gt.shape[0]} px but the scene is "
                         f"{src.width}×{src.height} px")
    return gt, gt_valid


# ---------------------------------------------------------------- models
