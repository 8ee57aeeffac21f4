"""`fers` command line: the same engine functions, with the same parameter names, as the QGIS algorithms."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

from . import __version__
from .errors import Cancelled, FersError, one_line


def _bands_arg(args):
    if getattr(args, "band_list", None):
        from .preprocess import parse_band_list

        return parse_band_list(args.band_list)
    return args.bands


def _trim_arg(text):
    """--rx-trim: a fraction, or 'auto' (None)."""
    if text == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.01, or auto; got '{text}'")


def cmd_detect(args, fb):
    from .pipeline import detect, detector_label

    res = detect(args.input, args.output, bands=_bands_arg(args), strategy=args.strategy, detector=args.detector,
                 model=args.model, device=args.device, variable=args.variable, feedback=fb, band_match=args.band_match,
                 tile_size=args.tile_size, memory_mb=args.memory_mb, rx_trim=args.rx_trim,
                 nodata=_nodata_arg(args), file_nodata=not args.ignore_file_nodata, extent=args.extent,
                 local_mean=args.local_mean, window=args.window,
                 mask=args.mask, objects=args.objects, threshold_percentile=args.threshold_percentile,
                 false_alarm_rate=args.false_alarm_rate, min_pixels=args.min_pixels)
    fb.info(f"wrote {res.output} ({len(res.bands)} bands, {detector_label(res.detector, res.info)}, "
            f"{res.seconds:.2f} s on {res.device})")
    extra = {}
    obj = res.products
    if obj is not None:
        extra = {"threshold": obj.threshold.value, "threshold_rule": obj.threshold.rule,
                 "anomalous_pixels": obj.anomalous_pixels, "objects": len(obj.table),
                 "mask_path": obj.mask_path, "objects_path": obj.objects_path}
    if args.json:
        print(json.dumps({"output": res.output, "seconds": res.seconds, "bands": len(res.bands), **res.info, **extra}))
    else:
        print(res.output)


def cmd_batch(args, fb):
    from .batch import run_batch

    detect_kw = dict(bands=_bands_arg(args), strategy=args.strategy, detector=args.detector, rx_trim=args.rx_trim,
                     device=args.device, variable=args.variable, band_match=args.band_match,
                     tile_size=args.tile_size, memory_mb=args.memory_mb, nodata=_nodata_arg(args),
                     file_nodata=not args.ignore_file_nodata, extent=args.extent, local_mean=args.local_mean,
                     window=args.window)
    products = dict(threshold_percentile=args.threshold_percentile, false_alarm_rate=args.false_alarm_rate,
                    min_pixels=args.min_pixels)
    res = run_batch(args.scenes, args.out, detect_kw, model=args.model, mask=args.mask, objects=args.objects,
                    products=products, objects_crs=args.objects_crs, workers=args.workers, scheduler=args.scheduler,
                    retries=args.retries, force=args.force, feedback=fb)
    c = res.counts
    fb.info(f"{c['done']} done, {c['skipped']} skipped, {c['failed']} failed in {res.seconds:.1f} s"
            + (f" ({60 * c['done'] / res.seconds:.1f} scenes/min)" if c["done"] else ""))
    print(res.results)
    if res.objects:
        print(res.objects)
    if c["failed"]:
        first = next(r for r in res.rows if r["status"] == "failed")
        print(f"fers: {c['failed']} of {len(res.rows)} scene(s) failed, e.g. {first['scene']}: {first['error']} "
              f"(every reason: {res.results})", file=sys.stderr)
        raise SystemExit(1)  # the batch ran: not a usage error (2), but not every scene is done


def cmd_evaluate(args, fb):
    from .pipeline import evaluate

    res = evaluate(args.score, args.gt, roc=args.roc, gt_variable=args.gt_variable, feedback=fb)
    if args.json:
        # strict JSON: AUC_SNPR is infinite when every background pixel scores the minimum (a binary map)
        areas = {k: (v if math.isfinite(v) else None) for k, v in res.roc3d.items()}
        print(json.dumps(dict(res.__dict__, roc3d=areas), allow_nan=False))
    else:
        print(f"{res.auc:.6f}")


def _training_sources(args):
    if args.had100:
        from .train.data import had100_training_sources

        return had100_training_sources(args.had100, args.sensor)
    return args.sources


def cmd_train_spectral(args, fb):
    from .train.stage1 import train_spectral

    res = train_spectral(_training_sources(args), args.output, bands=_bands_arg(args), trunk=args.trunk,
                         backbone_weights=args.backbone_weights, epochs=args.epochs, batch=args.batch, lr=args.lr,
                         betas=tuple(args.betas), seed=args.seed, patch=args.patch, steps_per_epoch=args.steps,
                         device=args.device, val_sources=args.val, resume=not args.restart, feedback=fb,
                         micro_batches=args.micro_batches, band_stretch=args.band_stretch,
                         nodata=_nodata_arg(args))
    h = res["history"]
    fb.info(f"best epoch {h['best_epoch']} (validation loss {h['best_val']:.5f}); log {res['log']}")
    print(res["output"])


def cmd_train_spatial(args, fb):
    from .train.stage2 import train_spatial

    bands = _bands_arg(args) or None  # None: the teacher's bands
    res = train_spatial(_training_sources(args), args.output, teacher=args.teacher, bands=bands,
                        backbone_weights=args.backbone_weights, adapt_bn=not args.frozen_bn, epochs=args.epochs,
                        batch=args.batch, lr=args.lr, betas=tuple(args.betas), seed=args.seed, patch=args.patch,
                        steps_per_epoch=args.steps, device=args.device, val_sources=args.val,
                        resume=not args.restart, feedback=fb, micro_batches=args.micro_batches,
                        band_stretch=args.band_stretch, nodata=_nodata_arg(args))
    h = res["history"]
    fb.info(f"best epoch {h['best_epoch']} (validation loss {h['best_val']:.5f}); log {res['log']}")
    print(res["output"])


def cmd_enhance(args, fb):
    from .enhance import enhance

    res = enhance(args.input, args.output, args.model, bands=_bands_arg(args), branches=args.branches,
                  device=args.device, variable=args.variable, feedback=fb, nodata=_nodata_arg(args),
                  file_nodata=not args.ignore_file_nodata, extent=args.extent)
    fb.info(f"wrote {res['cube']} ({res['bands']} bands, {res['seconds']:.2f} s on {res['device']})")
    print(res["output"])


def cmd_ensemble(args, fb):
    from .checkpoint import ensemble, load_model

    out = ensemble(args.models, args.output)
    fb.info(f"wrote {load_model(out).describe()}")
    print(out)


def cmd_prune(args, fb):
    from .checkpoint import prune

    print(prune(args.checkpoint, args.output))


def cmd_benchmark(args, fb):
    from .benchmark import run_benchmark

    if not args.scenes and not args.had100:
        from .errors import InputError

        raise InputError("give scenes (.mat files, rasters with SCENE_gt beside them, SCENE=TRUTH pairs, folders) "
                         "or --had100 DIR")
    res = run_benchmark(args.scenes, args.out, bands=args.bands, strategies=args.strategies,
                        detectors=args.detectors, models=args.model, device=args.device, had100=args.had100,
                        sensor=args.sensor, plots=not args.no_plots, html=args.html, feedback=fb,
                        rx_trim=args.rx_trim)
    print(res.markdown)
    print(f"results: {res.out_dir} (results.csv, results.md, results.json" + (", roc/, gallery_*.png" if
          res.files.get("roc") else "") + ")" + (f"; report: {res.files['html']}" if res.files.get("html") else ""))


def cmd_models(args, fb):
    from .bundled import list_models, models_dir

    models = list_models()
    if args.json:
        print(json.dumps([{"name": m.name, "path": m.path, "card": m.card, "summary": m.summary()} for m in models]))
        return
    if not models:
        fb.info(f"no bundled models in {models_dir()}")
    for m in models:
        print(f"{m.name}\t{m.summary()}\t{m.path}")


def cmd_info(args, fb):
    from .io import open_source
    from .io.raster import raster_extent
    from .preprocess import band_ranges

    src = open_source(args.input, args.variable)
    wl = src.wavelengths
    extent = raster_extent(src.georef, src.width, src.height)
    d = {"path": src.path, "width": src.width, "height": src.height, "bands": src.band_count,
         "crs": bool(src.georef.crs_wkt), "geotransform": src.georef.geotransform, "nodata": src.nodata,
         "wavelengths": src.wavelengths is not None, "ground_truth": src.ground_truth() is not None,
         # bands whose values are stored × scale + offset (GDAL metadata), read as QGIS shows them
         "scaled_bands": sum(so is not None for so in src.scale_offset),
         # what --extent and a --band-list by wavelength can refer to
         "extent": list(extent) if extent is not None else None,
         "wavelength_range_nm": [round(min(wl), 3), round(max(wl), 3)] if wl is not None else None,
         "bad_bands": band_ranges(sorted(src.bad_bands or ()))}
    print(json.dumps(d, indent=1))


def _nodata_arg(args):
    from .io.source import parse_nodata

    return parse_nodata(args.nodata or [])


NODATA_HELP = ("values (or LO:HI ranges) that are no data too, beyond the file's own nodata, e.g. 0 for the zero "
               "fill around a flight line: pixels with such a value in any selected band leave every statistic")
EXTENT_HELP = ("only the pixels this extent (in the raster's CRS) touches are read, processed and written, on "
               "the raster's grid; the background statistics and the scaling are then the extent's")
IGNORE_FILE_NODATA_HELP = ("read the value the file declares as nodata as data, where that tag is wrong for this "
                           "file (QGIS: the layer's 'No data value' unticked in Properties > Transparency)")


def add_detect_options(d: argparse.ArgumentParser) -> None:
    """The options of `fers detect` that choose how a scene is scored (bands, strategy, detector, model, nodata,
    thresholds of the mask/objects): `fers batch` takes the same ones, with the same meaning."""
    from .device import DEVICES
    from .pipeline import DETECTORS, STRATEGIES

    g = d.add_mutually_exclusive_group()
    g.add_argument("--bands", type=int, default=0, help="use the first N bands (0 = all; the paper's protocol)")
    g.add_argument("--band-list", help="explicit 1-based bands, e.g. 1-100,120,130-140, or wavelengths: "
                                       "400-1340nm,1460-1790nm (band centres in range), 2.2um (nearest band)")
    d.add_argument("--strategy", choices=STRATEGIES, default="none",
                   help="fusion strategy (SPEC §3); default none = plain RX, the paper's baseline (fers:detect "
                        "in QGIS defaults to auto); auto = A up to 50 bands, else B, with the bundled model that "
                        "matches the raster unless --model is given; with the bundled models, multiplicative (A) "
                        "scores best on objects of several pixels at 100 bands, additive (B) or spectral on "
                        "one-pixel targets")
    d.add_argument("--detector", choices=DETECTORS, default="rx",
                   help="rx: the SPEC's global RX (ENVI's RXD); ae: per-scene autoencoder; autoad: Auto-AD (a "
                        "per-scene convolutional autoencoder from noise, adaptive weights, loss-based stop; "
                        "minutes on a CPU); utd, rxd-utd: ENVI's "
                        "uniform target detector and RXD-UTD (on the cube scaled to [0, 1]); rx-dual: local "
                        "dual-window RX, mean and covariance from a ring around each pixel (--window)")
    d.add_argument("--local-mean", type=int, default=0, metavar="N",
                   help="rx, utd, rxd-utd: the background mean from an N×N window around each pixel (odd; ENVI's "
                        "local mean), the covariance still the scene's; 0 = the scene's mean")
    d.add_argument("--window", type=int, nargs=2, default=None, metavar=("INNER", "OUTER"),
                   help="rx-dual: the guard window and the background window, odd sizes in pixels (default 3 15; "
                        "the ring needs more pixels than bands)")
    d.add_argument("--rx-trim", type=_trim_arg, default=None, metavar="F",
                   help="RX: leave the top F of the first pass's scores out of the background mean and covariance "
                        "(default auto: 0.01 with a model's strategy, 0 = the SPEC's plain RX for --strategy none)")
    d.add_argument("--model", help="model checkpoint file or the authors' checkpoint folder")
    d.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)}")
    d.add_argument("--variable", help=".mat only: name of the data variable (auto-detected otherwise)")
    d.add_argument("--nodata", nargs="+", metavar="V", help=NODATA_HELP)
    d.add_argument("--ignore-file-nodata", action="store_true", help=IGNORE_FILE_NODATA_HELP)
    d.add_argument("--extent", type=float, nargs=4, metavar=("XMIN", "YMIN", "XMAX", "YMAX"), help=EXTENT_HELP)
    d.add_argument("--band-match", default="auto", choices=("auto", "nearest", "resample", "index"),
                   help="with a model: match bands by wavelength (auto: nearest centre, or resampling when the "
                        "sensor differs), or by position (index)")
    d.add_argument("--tile-size", type=int, default=0, metavar="PX",
                   help="side of the spectral-branch tiles (0 = from --memory-mb; the map does not depend on it)")
    d.add_argument("--memory-mb", type=float, default=0, metavar="MB",
                   help="working memory for one network tile (default 1024; the cube and one enhanced copy come on "
                        "top: about 2× the selected bands' size)")
    d.add_argument("--min-pixels", type=int, default=1, metavar="N",
                   help="mask/objects: drop objects of fewer than N pixels (isolated noisy pixels); "
                        "default 1 = keep all")
    th = d.add_mutually_exclusive_group()
    th.add_argument("--threshold-percentile", type=float, metavar="P",
                    help="mask/objects: anomalous = score above the P-th percentile of valid scores "
                         "(default 98.5, chosen on the selection groups: docs/REPRODUCING.md)")
    th.add_argument("--false-alarm-rate", type=float, metavar="F",
                    help="mask/objects: threshold so that at most this fraction of valid pixels is above it")


def build_parser() -> argparse.ArgumentParser:
    from .pipeline import DETECTORS, STRATEGIES

    p = argparse.ArgumentParser(prog="fers", description="FERS hyperspectral anomaly detection")
    p.add_argument("--version", action="version", version=f"fers {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="only print results, warnings and errors")
    p.add_argument("-q", "--quiet", action="store_true", help="only print results, warnings and errors")
    network_help = ("let inputs be read over the network (/vsicurl/, /vsis3/, http://, and such paths inside a "
                    "VRT); off by default: a file never makes FERS fetch anything")
    common.add_argument("--allow-network", action="store_true", default=argparse.SUPPRESS, help=network_help)
    p.add_argument("--allow-network", action="store_true", help=network_help)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("detect", parents=[common], help="anomaly map of a raster (GeoTIFF out, same grid and CRS)")
    d.add_argument("input", help="GDAL raster (GeoTIFF, ENVI, ...), .mat or .npy (rows × cols × bands)")
    d.add_argument("output", help="output GeoTIFF (.tif)")
    add_detect_options(d)
    d.add_argument("--json", action="store_true", help="print a JSON summary instead of the path")
    d.add_argument("--mask", help="also write a binary anomaly mask (Byte GeoTIFF: 1 anomaly, 0 not, 255 nodata)")
    d.add_argument("--objects", help="also write anomaly objects (.gpkg, .geojson or .fgb): one polygon per "
                                     "8-connected group of anomalous pixels, with area, peak and mean score")
    d.set_defaults(func=cmd_detect)

    b = sub.add_parser("batch", parents=[common],
                       help="fers detect over many scenes on a Dask cluster: resumable, one results table, "
                            "one merged objects layer (needs fers[distributed])")
    b.add_argument("scenes", nargs="+", help="rasters, folders of them, glob patterns ('maps/*.tif'), or lists "
                                             "(.txt: one path a line; .csv: a path/scene/input column)")
    b.add_argument("-o", "--out", required=True, help="output folder (created if missing): <scene>_anomaly.tif "
                   "per scene, results.csv, anomaly_objects.gpkg with --objects")
    add_detect_options(b)
    b.add_argument("--mask", action="store_true", help="also write <scene>_mask.tif per scene")
    b.add_argument("--objects", action="store_true",
                   help="also write <scene>_objects.gpkg per scene and one anomaly_objects.gpkg of them all")
    b.add_argument("--objects-crs", metavar="CRS",
                   help="CRS of the merged objects layer (EPSG:4326, WKT, ...; default: the first scene's)")
    cl = b.add_mutually_exclusive_group()
    cl.add_argument("--workers", type=int, metavar="N",
                    help="worker processes of the local cluster (default: one per core, at most one per scene)")
    cl.add_argument("--scheduler", metavar="ADDRESS",
                    help="run on an existing Dask cluster: tcp://HOST:PORT, or its scheduler file (JSON)")
    b.add_argument("--retries", type=int, default=2,
                   help="times Dask retries a scene whose task raised an unexpected error (a lost worker's scenes "
                        "are rescheduled regardless)")
    b.add_argument("--force", action="store_true",
                   help="redo every scene, even those done already with the same parameters and model")
    b.set_defaults(func=cmd_batch)

    e = sub.add_parser("evaluate", parents=[common], help="ROC AUC of a score map against a ground-truth mask")
    e.add_argument("score", help="score raster (one band) or .npy")
    e.add_argument("gt", help="ground truth: raster, .png (HAD100), .mat or .npy; > 0 = anomaly")
    e.add_argument("--roc", help="write the ROC curve to this .png or .html")
    e.add_argument("--gt-variable", help=".mat only: name of the ground-truth variable")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    def training_parser(name, help_text, func, default_bands, backbone_help):
        t = sub.add_parser(name, parents=[common], help=help_text)
        t.add_argument("sources", nargs="*", help="background rasters or folders of them (anomaly-free scenes)")
        t.add_argument("--had100", help="a HAD100 folder: train on its train/<sensor>/*.npy")
        t.add_argument("--sensor", default="aviris_ng", help="HAD100 sensor folder (aviris_ng or aviris)")
        t.add_argument("-o", "--output", required=True, help="checkpoint file to write (.pt)")
        g = t.add_mutually_exclusive_group()
        g.add_argument("--bands", type=int, default=default_bands, help="the first N bands (the model's band count)")
        g.add_argument("--band-list", help="explicit 1-based bands, e.g. 1-100")
        t.add_argument("--backbone-weights", default="imagenet", help=backbone_help)
        t.add_argument("--epochs", type=int, default=60)
        t.add_argument("--batch", type=int, default=16)
        t.add_argument("--lr", type=float, default=0.005)
        t.add_argument("--betas", type=float, nargs=2, default=(0.5, 0.999), help="Adam betas (paper: 0.9 0.95)")
        t.add_argument("--seed", type=int, default=10)
        t.add_argument("--patch", type=int, default=64, help="patch size in pixels (multiple of 8)")
        t.add_argument("--steps", type=int, default=0, help="steps per epoch (0: one pass over the scenes' pixels)")
        t.add_argument("--val", nargs="*", help="held-out background scenes for validation (default: the last source)")
        t.add_argument("--band-stretch", type=float, default=0.0, metavar="F",
                       help="also train on scenes up to F×(their band count) short of --bands N, resampled onto N "
                            "bands along the band axis (e.g. 0.1: a 188-band scene serves a 200-band model; "
                            "0 = skip them)")
        t.add_argument("--nodata", nargs="+", metavar="V",
                       help="values (or LO:HI ranges) that are no data in every background raster besides its own "
                            "nodata, e.g. 0 for an untagged zero fill: never sampled, never in the scaling")
        t.add_argument("--device", default="auto")
        t.add_argument("--restart", action="store_true", help="ignore an existing resume file and start over")
        t.add_argument("--micro-batches", type=int, default=1,
                       help="split each batch into this many slices and accumulate gradients (less memory); under "
                            "torchrun each process takes batch/N patches, so N processes = --micro-batches N")
        t.set_defaults(func=func)
        return t

    t = training_parser("train-spectral", "stage 1: train FERD / Spe-FEN on background scenes", cmd_train_spectral,
                        100, "imagenet (torchvision file via torch.hub), a local .pth file, partial:FILE "
                             "(stages missing from FILE stay random), or random")
    t.add_argument("--trunk", default="wide_resnet50_2", choices=("wide_resnet101_2", "wide_resnet50_2"),
                   help="frozen encoder trunk (the paper: wide_resnet101_2; 50_2 has the same layer1, lighter)")
    t = training_parser("train-spatial", "stage 2: train the rebellious student (Spa-FEN) against a frozen Spe-FEN",
                        cmd_train_spatial, 0, "ResNet-34 weights: imagenet, a local .pth file, or random")
    t.add_argument("--teacher", required=True,
                   help="the frozen spectral teacher: a stage-1 checkpoint or the authors' checkpoint folder")
    t.add_argument("--frozen-bn", action="store_true",
                   help="keep ResNet-34 BatchNorm statistics fixed (the reference lets them adapt)")

    en = sub.add_parser("enhance", parents=[common], help="write the enhanced cube H + F_spe (+ F_spa) as a raster")
    en.add_argument("input")
    en.add_argument("output", help="output GeoTIFF (.tif), one band per model band")
    en.add_argument("--model", required=True, help="model checkpoint file or the authors' checkpoint folder")
    g = en.add_mutually_exclusive_group()
    g.add_argument("--bands", type=int, default=0, help="the first N bands (0 = the model's band count)")
    g.add_argument("--band-list", help="explicit 1-based bands, or wavelengths (400-1340nm, 2.2um)")
    en.add_argument("--branches", choices=("both", "spectral", "spatial"), default="both")
    en.add_argument("--device", default="auto")
    en.add_argument("--variable", help=".mat only: name of the data variable")
    en.add_argument("--nodata", nargs="+", metavar="V", help=NODATA_HELP)
    en.add_argument("--ignore-file-nodata", action="store_true", help=IGNORE_FILE_NODATA_HELP)
    en.add_argument("--extent", type=float, nargs=4, metavar=("XMIN", "YMIN", "XMAX", "YMAX"), help=EXTENT_HELP)
    en.set_defaults(func=cmd_enhance)

    pr = sub.add_parser("prune", parents=[common], help="cut the inference network out of a training checkpoint")
    pr.add_argument("checkpoint")
    pr.add_argument("output")
    pr.set_defaults(func=cmd_prune)

    es = sub.add_parser("ensemble", parents=[common],
                        help="one Spe-FEN that averages the F_spe of several (seed) Spe-FENs: a model or a teacher")
    es.add_argument("models", nargs="+", help="two or more checkpoints with single Spe-FENs of the same bands")
    es.add_argument("-o", "--output", required=True, help="the ensemble checkpoint to write")
    es.set_defaults(func=cmd_ensemble)

    bm = sub.add_parser("benchmark", parents=[common],
                        help="the paper's protocol over many scenes: AUC and seconds per scene × bands × strategy")
    bm.add_argument("scenes", nargs="*", help=".mat files, rasters with SCENE_gt.tif beside them, SCENE=TRUTH pairs "
                    "(e.g. RCRD__dataPavia.mat=RCRD__maskPavia.mat), folders of them, or a HAD100 root")
    bm.add_argument("--bands", nargs="+", default=["100"], help="band counts (the first N bands), e.g. 50 100 200")
    bm.add_argument("--strategies", default="none", help=f"comma-separated, from {','.join(STRATEGIES)}; NAME@MODEL binds a strategy to a model "
                                         "(path or bundled name), so several models of one band count compare in one run")
    bm.add_argument("--detectors", "--detector", default="rx", help=f"comma-separated, from {','.join(DETECTORS)}")
    bm.add_argument("--rx-trim", type=_trim_arg, default=0.0, metavar="F",
                    help="RX trim of every strategy (default 0: the paper's plain RX, as its tables; 'auto': what "
                         "fers detect does, 0.01 for the strategies with a model)")
    bm.add_argument("--model", action="append", default=[],
                    help="checkpoint or authors' folder; repeat for one model per band count")
    bm.add_argument("--had100", help="a HAD100 root: benchmark its test/<sensor>/*.npy")
    bm.add_argument("--sensor", default="aviris_ng", help="HAD100 sensor folder (aviris_ng or aviris)")
    bm.add_argument("-o", "--out", required=True, help="results folder (created if missing)")
    bm.add_argument("--device", default="auto")
    bm.add_argument("--html", help="also write a self-contained HTML report to this file")
    bm.add_argument("--no-plots", action="store_true", help="skip the ROC and gallery PNGs")
    bm.set_defaults(func=cmd_benchmark)

    ms = sub.add_parser("models", parents=[common], help="list the bundled models (usable by bare name as --model)")
    ms.add_argument("--json", action="store_true")
    ms.set_defaults(func=cmd_models)

    i = sub.add_parser("info", parents=[common], help="describe a raster or research file")
    i.add_argument("input")
    i.add_argument("--variable")
    i.set_defaults(func=cmd_info)
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: ended like Ctrl-C, so every temporary file is removed on the way out."""

    def __init__(self, signum: int):
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _terminate(signum, frame):
    import signal

    for name in ("SIGTERM", "SIGHUP"):  # a second signal must not cut the clean-up short
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    raise Terminated(signum)


def install_signal_handlers() -> None:
    """SIGTERM (kill, systemd, a batch scheduler, a container stopping) and SIGHUP (the terminal closed) end a
    run as Ctrl-C does: Python's default for them ends the process on the spot, leaving the hidden temporary
    file of the output being written. Signals left ignored by whoever started us (nohup) stay ignored."""
    import signal

    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _terminate)


# the commands that never load torch (the others do, and load it before their signal handlers are set)
NO_TORCH_COMMANDS = frozenset({"evaluate", "info"})


def _load_torch_before_handlers() -> None:
    """Some torch builds take SIGHUP when torch is loaded: Debian's links UCX, which claims SIGHUP (its
    ``UCX_DEBUG_SIGNO``) for itself at load, so a run killed by a closed terminal kept running and wrote its
    output. torch is loaded here, once, and our handlers are set again after it; a missing torch is left to the
    command's own one-line message."""
    try:
        import torch  # noqa: F401  (loaded for its side effect on the signal handlers)
    except ImportError:
        return
    install_signal_handlers()


def main(argv=None) -> int:
    from .errors import DISK_FULL, disk_full_message

    from .feedback import ConsoleFeedback

    install_signal_handlers()
    try:
        args = build_parser().parse_args(argv)
        if args.command not in NO_TORCH_COMMANDS:
            _load_torch_before_handlers()
        # under torchrun only rank 0 reports (every rank runs the same command)
        fb = ConsoleFeedback(quiet=args.quiet or int(os.environ.get("RANK", "0")) > 0)
        from .io.guard import set_network_allowed

        set_network_allowed(args.allow_network)
        args.func(args, fb)
        return 0
    except Cancelled as e:
        print(f"fers: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt as e:
        why = f" ({e.args[0]})" if isinstance(e, Terminated) else ""
        print(f"fers: interrupted{why}; no output was written", file=sys.stderr)
        return 130
    except FersError as e:
        print(f"fers: error: {e}", file=sys.stderr)
        return 2
    except MemoryError:
        print("fers: error: out of memory; use fewer bands or a smaller extent", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in DISK_FULL or os.environ.get("FERS_DEBUG"):
            return _internal(e)
        print(f"fers: error: {disk_full_message(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug of ours: one line for the analyst, the traceback on request
        return _internal(e)


def _internal(e: Exception) -> int:
    if os.environ.get("FERS_DEBUG"):
        raise e
    print("fers: internal error (" + one_line(f"{type(e).__name__}: {e}") + "); no output was written. Please "
          "report it, with the traceback that FERS_DEBUG=1 prints", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
