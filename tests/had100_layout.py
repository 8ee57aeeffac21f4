"""A small folder in the public HAD100 layout, built from real scenes (for the benchmark tests).

    test/aviris_ng/<name>.npy            64×64×B float32 crops WITH anomalies, from evaluation scenes
    ground_truth/aviris_ng/<name>.png    RGB PNG, anomaly mask in the second colour channel (255), others 0
    train/aviris_ng/<name>.npy           64×64×B background crops from the training sources

Written with numpy and GDAL's PNG driver only, independently of the engine's readers.
"""
import os

import numpy as np

from conftest import mat_scene

TEST_SOURCES = ("abu-airport-1", "abu-airport-2", "abu-urban-3")  # evaluation scenes (README split)
TRAIN_SOURCES = ("abu-urban-1", "abu-beach-3")  # background training sources (README split)
SIZE = 64


def _window(gt, most_anomalies=True):
    """Top-left corner of the 64×64 window with the most (or fewest) anomaly pixels, on a 4-px grid."""
    best = None
    for r in range(0, gt.shape[0] - SIZE + 1, 4):
        for c in range(0, gt.shape[1] - SIZE + 1, 4):
            n = int((gt[r:r + SIZE, c:c + SIZE] > 0).sum())
            key = -n if most_anomalies else n
            if best is None or key < best[0]:
                best = (key, r, c)
    return best[1], best[2]


def write_png_mask(path, mask):
    from osgeo import gdal

    gdal.UseExceptions()
    h, w = mask.shape
    mem = gdal.GetDriverByName("MEM").Create("", w, h, 3, gdal.GDT_Byte)
    for b in range(3):
        mem.GetRasterBand(b + 1).WriteArray(np.where(mask, 255, 0).astype(np.uint8) if b == 1
                                            else np.zeros((h, w), np.uint8))
    gdal.GetDriverByName("PNG").CreateCopy(str(path), mem)
    mem = None


def build_had100(root, bands=120, sensor="aviris_ng"):
    """Write the layout under ``root``; returns {name: (cube H×W×B float32, mask H×W bool)} of the test split."""
    for sub in ("test", "ground_truth", "train"):
        os.makedirs(os.path.join(root, sub, sensor), exist_ok=True)
    scenes = {}
    for name in TEST_SOURCES:
        cube, gt = mat_scene(name)
        r, c = _window(gt)
        crop = np.ascontiguousarray(cube[r:r + SIZE, c:c + SIZE, :bands], dtype=np.float32)
        mask = gt[r:r + SIZE, c:c + SIZE] > 0
        assert mask.any()
        np.save(os.path.join(root, "test", sensor, name + ".npy"), crop)
        write_png_mask(os.path.join(root, "ground_truth", sensor, name + ".png"), mask)
        scenes[name] = (crop, mask)
    for name in TRAIN_SOURCES:
        cube, gt = mat_scene(name)
        r, c = _window(gt, most_anomalies=False)
        np.save(os.path.join(root, "train", sensor, name + ".npy"),
                np.ascontiguousarray(cube[r:r + SIZE, c:c + SIZE, :bands], dtype=np.float32))
    return scenes
