"""fers:detect — anomaly map of a hyperspectral raster, and optionally its anomaly mask and objects."""
import html
import os

from qgis.core import (QgsCoordinateReferenceSystem, QgsProcessing, QgsProcessingException,
                       QgsProcessingOutputNumber, QgsProcessingParameterBoolean, QgsProcessingParameterDefinition,
                       QgsProcessingParameterEnum, QgsProcessingParameterExtent, QgsProcessingParameterFile,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination,
                       QgsProcessingParameterRasterLayer, QgsProcessingParameterString,
                       QgsProcessingParameterVectorDestination)

from ..paths import bundled_models
from .base import FersAlgorithm, research_path

STRATEGIES = ("none", "spectral", "spatial", "multiplicative", "additive", "auto")
DETECTORS = ("rx", "ae", "autoad", "utd", "rxd-utd", "rx-dual")  # fers.pipeline.DETECTORS, as static strings
DEVICES = ("auto", "cpu", "cuda")
BAND_MATCHES = ("auto", "nearest", "resample", "index")
CARD_CHARS = 2000  # of each model card shown in the help
# fers.objects.DEFAULT_PERCENTILE (research/threshold.py chose it); repeated, as the parameters are built while the
# plugin loads, before the engine is importable (tests/plugin/test_qgis_process.py checks they agree)
DEFAULT_PERCENTILE = 98.5


def raster_source(alg, parameters, name, context):
    """GDAL path of a raster parameter; .mat/.npy research files pass through as paths."""
    raw = research_path(parameters, name)
    if raw:
        return raw
    layer = alg.parameterAsRasterLayer(parameters, name, context)
    if layer is None:
        raise QgsProcessingException(alg.invalidRasterError(parameters, name))
    if layer.providerType() != "gdal":
        raise QgsProcessingException(f"{layer.name()} is a {layer.providerType()} layer; FERS reads files GDAL can open")
    return layer.source()


def layer_nodata(alg, parameters, name, context):
    """The no-data values and ranges the analyst set on the layer in QGIS (Properties ▸ Transparency ▸
    additional no data values), every band's: QGIS hides those pixels, so they must not shape the statistics
    either. ((lo, hi), ...); none for research files, which are paths, not layers."""
    layer = input_layer(alg, parameters, name, context)
    return user_nodata(layer) if layer is not None else ()


def input_layer(alg, parameters, name, context):
    """The raster layer behind a raster parameter, or None (a research file's path is not a layer)."""
    return None if research_path(parameters, name) else alg.parameterAsRasterLayer(parameters, name, context)


def user_nodata(layer):
    """A raster layer's additional no-data values, every band's, as ((lo, hi), ...)."""
    dp = layer.dataProvider()
    ranges = [(r.min(), r.max()) for b in range(1, dp.bandCount() + 1) for r in dp.userNoDataValues(b)]
    return tuple(dict.fromkeys(ranges))


def add_nodata_parameter(alg, file_switch=True):
    nodata = QgsProcessingParameterString(
        "NODATA", "More no-data values (e.g. 0 or 0:10)",
        None, False, True)
    params = [nodata]
    if file_switch:
        params.append(QgsProcessingParameterBoolean(
            "IGNORE_FILE_NODATA", "File's nodata value is data (wrong tag)", False, True))
    for p in params:
        p.setFlags(p.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        alg.addParameter(p)


def layer_ignores_file_nodata(alg, parameters, name, context):
    """True where the analyst unticked the layer's "No data value" (Properties ▸ Transparency) on a band that
    declares one: QGIS then shows those pixels as data."""
    layer = input_layer(alg, parameters, name, context)
    if layer is None:
        return False
    dp = layer.dataProvider()
    return any(dp.sourceHasNoDataValue(b) and not dp.useSourceNoDataValue(b) for b in range(1, dp.bandCount() + 1))


def nodata_arguments(alg, parameters, context, feedback):
    """The engine's nodata= and file_nodata=: NODATA (values or LO:HI ranges), the layer's own additional no-data
    values, and whether the file's nodata is data (IGNORE_FILE_NODATA, or the layer shows it as data)."""
    from fers.io.source import describe_nodata, parse_nodata

    extra = parse_nodata(alg.parameterAsString(parameters, "NODATA", context) or "")
    own = layer_nodata(alg, parameters, "INPUT", context)
    if own:
        feedback.info(f"the layer's additional no-data values are no data here too: {describe_nodata(own)}")
    ignore = alg.parameterAsBoolean(parameters, "IGNORE_FILE_NODATA", context)
    if not ignore and layer_ignores_file_nodata(alg, parameters, "INPUT", context):
        feedback.info("the layer shows the file's nodata value as data ('No data value' unticked): so does FERS")
        ignore = True
    return {"nodata": tuple(dict.fromkeys(extra + own)), "file_nodata": not ignore}


def add_extent_parameter(alg):
    extent = QgsProcessingParameterExtent("EXTENT", "Extent (empty = the whole raster)", None, True)
    extent.setFlags(extent.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    alg.addParameter(extent)


def extent_argument(alg, parameters, context):
    """EXTENT in the raster's own CRS (QGIS reprojects it from whatever CRS the analyst drew it in), or None."""
    layer = input_layer(alg, parameters, "INPUT", context)
    crs = layer.crs() if layer is not None else QgsCoordinateReferenceSystem()
    rect = alg.parameterAsExtent(parameters, "EXTENT", context, crs)
    if rect is None or rect.isNull() or rect.isEmpty():
        return None
    return rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()


def input_name(alg, parameters, name, context):
    """What the analyst calls the input: its layer name, else the file name without extension."""
    raw = research_path(parameters, name)
    if raw:
        return os.path.splitext(os.path.basename(raw))[0]
    layer = alg.parameterAsRasterLayer(parameters, name, context)
    return layer.name() if layer is not None else "input"


def card_html(text):
    """A model card (Markdown) as the little HTML the help panel shows."""
    text = text.strip()
    if len(text) > CARD_CHARS:
        text = text[:CARD_CHARS].rsplit("\n", 1)[0] + "\n…"
    lines = []
    for line in html.escape(text).splitlines():
        stripped = line.lstrip("#").strip()
        lines.append(f"<b>{stripped}</b>" if line.startswith("#") else line)
    return "<br>".join(lines)


class DetectAlgorithm(FersAlgorithm):
    NAME = "detect"
    DISPLAY = "Detect anomalies"
    HELP = ("Scores every pixel of a hyperspectral raster for how anomalous its spectrum is, and writes the "
            "score map as a float32 GeoTIFF on the input's grid and CRS (nodata pixels stay nodata). Loaded in "
            "QGIS, the map is named '&lt;input&gt; — anomaly (&lt;strategy&gt;)' (RX, spectral, spatial, fusion A or B) and shown on the Magma ramp "
            "stretched between the 2nd and 98th percentiles of the scores.\n\n"
            "<b>Bands</b>: the first N bands (the paper's protocol; 0 = automatic: what the model needs, or all for "
            "strategy none), or an "
            "explicit band list (advanced). With a model whose card gives wavelengths and a raster that carries "
            "them (GeoTIFF/ENVI metadata), the bands are matched by wavelength (nearest centre, or linear "
            "resampling when the sensor differs); every mismatch in wavelengths or band count is a warning.\n"
            "<b>Strategy</b>: none = plain global RX on the selected bands; spectral = RX(H + F_spe) (FERD); "
            "spatial = RX(H + F_spa); multiplicative = fusion A; additive = fusion B; auto (the default) = A for ≤ 50 "
            "bands, else B, with the bundled model that matches the raster unless a model is given (the log says "
            "which, and why). With the bundled 100-band model, A scores best on anomalies that cover several pixels (vehicles, "
            "buildings); with both bundled models, B or spectral on one-pixel, sub-pixel targets, where the spatial "
            "branch has no shape to see (the model cards' figures).\n"
            "<b>Detector</b>: rx = global Reed–Xiaoli (Mahalanobis distance to the scene's background statistics; with a model's strategy, trimmed: the top 1% of a first pass leave the background statistics, so that many similar anomalies do not hide each other; RX_TRIM sets it, 0 = the paper's plain RX); ae = a per-scene 1×1-convolution autoencoder trained for a fixed 50 iterations (seeded; never sees ground truth), score = the last iteration's reconstruction error (chosen without labels on the selection groups; below chance on an enhanced cube there, so use it with STRATEGY=none); autoad = Auto-AD (Wang et al. 2022): a per-scene convolutional autoencoder that rebuilds the scene from noise, down-weighting what it rebuilds badly, and stops when its loss stops falling (minutes on a CPU; far below its own original-cube figures on an enhanced cube on the selection groups, so use it with STRATEGY=none); utd, rxd-utd = ENVI's uniform target detector and RXD-UTD (on the cube scaled to [0, 1]); rx-dual = local dual-window RX: each pixel against the mean and covariance of a ring around it (WINDOW_INNER / WINDOW_OUTER; one small solve per pixel, slow with many bands). LOCAL_MEAN (rx, utd, rxd-utd) takes the background mean from a window around each pixel, as ENVI's local mean does.\n"
            "<b>Model</b>: a checkpoint file or folder (MODEL), or one of the bundled models (BUNDLED_MODEL).\n"
            "<b>Anomaly mask / objects</b> (optional): pixels whose score is above a threshold — the given "
            "percentile of the valid scores, or the score that leaves at most the given false-alarm rate (fraction "
            "of valid pixels) above it — as a 0/1 raster, and as polygons, one per group of anomalous pixels "
            "connected by an edge or a corner (8-connectivity), with id, pixels, area (map units²), peak_score, "
            "mean_score and centroid_x/y: the list to triage.\n"
            "<b>Device</b>: auto uses CUDA when available; the device and the run time are written to the log.")
    PARAM_HELP = {
        "INPUT": "A hyperspectral raster GDAL reads (GeoTIFF, ENVI, …); a .mat or .npy path also works. Pixels "
                 "that are nodata, NaN or Inf in any selected band are left out and stay nodata.",
        "BANDS": "The first N bands (the paper evaluates with 50, 100 or 200); 0 = automatic: with a model, the "
                 "model's own bands (matched by wavelength when both sides give them), with strategy 'none' all "
                 "bands.",
        "STRATEGY": "none = RX on the raw bands; spectral = RX(H + F_spe) (FERD); spatial = RX(H + F_spa); "
                    "multiplicative = fusion A; additive = fusion B; auto (the default) = A for ≤ 50 bands, else "
                    "B, or spectral with a model that has no spatial branch; the log says what it chose and why. "
                    "Every strategy except 'none' needs a model: without MODEL or BUNDLED_MODEL, the bundled model "
                    "that matches the raster. 'none' is plain RX, the paper's baseline. With the bundled models: A "
                    "for objects of several pixels (100 bands), B or spectral for one-pixel targets.",
        "MODEL": "A FERS checkpoint (.pt) — e.g. straight from 'Train stage 1 (Spe-FEN)' — or a folder holding "
                 "the FERS authors' convh.pt, enc.pt and pc.pt, or a bundled model's name. Leave empty to use "
                 "BUNDLED_MODEL (or the bundled model that matches the raster), or for strategy 'none'.",
        "BUNDLED_MODEL": "One of the models shipped with the plugin (resources/models); their model cards are "
                         "in this algorithm's help. Empty = automatic: for a strategy that needs a model and no "
                         "MODEL, the bundled model that matches the raster — by wavelength where the raster and the "
                         "model card both give them (the raster's range covers the model's), else by position (the "
                         "raster has the model's bands); of those, the one with the most bands. The sample (205 "
                         "bands, no wavelengths) gets fers-aviris-200 on its first 200 bands.",
        "BAND_MATCH": "With a model: auto = by wavelength when the raster and the model card both give them "
                      "(nearest centre; linear resampling when no raster band is close enough), else by "
                      "position; nearest; resample; index = by position only.",
        "BAND_LIST": "1-based bands and ranges, e.g. 1-100,120,130-140, or wavelengths as the band centres in the "
                     "raster's metadata: 400-1340nm,1460-1790nm,1960-2450nm (every band whose centre lies in a "
                     "range, e.g. to leave out the water-vapour absorption bands) or 2.2um (the nearest band); "
                     "overrides BANDS and wavelength matching.",
        "LOCAL_MEAN": "rx, utd, rxd-utd: the background mean from an N×N window (odd, pixels) around each pixel, "
                      "as ENVI's 'local' mean; the covariance stays the scene's. 0 = the scene's mean.",
        "WINDOW_INNER": "rx-dual: the guard window around each pixel (odd, pixels), left out of its background.",
        "WINDOW_OUTER": "rx-dual: the background window (odd, pixels); the ring between the two windows must hold "
                        "more pixels than bands (15 − 3: 216 pixels for up to 215 bands). Near the edges both "
                        "windows shift to stay inside the raster, as Spectral Python's do.",
        "TILE_SIZE": "The spectral branch runs on square tiles with a 4-pixel halo, so the map is the same for any "
                     "tile size; 0 chooses it from the memory budget (on a CPU at most 128 px, its fastest).",
        "MEMORY_MB": "Working memory allowed for one tile of the spectral branch. The selected bands and one "
                     "enhanced copy of them are held besides (about twice their size in float32).",
        "RX_TRIM": "RX only. Share of the pixels (the highest-scoring of a first pass) left out of the background "
                   "mean and covariance before the final scores. Empty = automatic: 0.01 for the strategies that "
                   "use a model (chosen on the bundled models' selection figures; see their cards), 0 for 'none'. "
                   "0 = the paper's plain RX.",
        "OUTPUT": "Float32 GeoTIFF of anomaly scores (≥ 0, higher = more anomalous) on the input's grid and CRS.",
        "MASK": "Optional Byte GeoTIFF: 1 = anomalous (score above the threshold), 0 = not, 255 = nodata.",
        "OBJECTS": "Optional polygons (GeoPackage, GeoJSON or FlatGeobuf), one per 8-connected group of anomalous "
                   "pixels: id, pixels, area (map units²), peak_score, mean_score, centroid_x, centroid_y.",
        "THRESHOLD_PERCENTILE": "Mask and objects: a pixel is anomalous when its score is above this percentile "
                                "of the valid scores (98.5, the default, flags the top 1.5 %; it gave the mask's "
                                "best F1 on the selection groups, docs/REPRODUCING.md). Ignored when a "
                                "false-alarm rate is given.",
        "FALSE_ALARM_RATE": "Mask and objects: the threshold is set so that at most this fraction of the valid "
                            "pixels lies above it (e.g. 0.001); overrides the percentile when given.",
        "MIN_PIXELS": "Mask and objects: groups of anomalous pixels smaller than this (8-connected) are dropped from "
                      "both, e.g. 2 to leave out isolated noisy pixels; the threshold itself does not change. "
                      "1 keeps every object.",
    }

    def shortHelpString(self):  # noqa: N802
        models = bundled_models()
        if not models:
            return self.HELP + "\n\n<b>Bundled models</b>: none installed (resources/models is empty)."
        parts = [self.HELP, "\n\n<b>Bundled models</b> (BUNDLED_MODEL, or their name as MODEL):"]
        for m in models:
            parts.append(f"<br><br><b>{html.escape(m.name)}</b><br>"
                         + (card_html(m.card_text()) if m.card else "(no model card)"))
        return "".join(parts)

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Hyperspectral raster"))
        # labels stay within the dialog's default width, " [optional]" included (QGIS cuts the rest)
        self.addParameter(QgsProcessingParameterNumber("BANDS", "Use the first N bands (0 = automatic)",
                                                       QgsProcessingParameterNumber.Integer, 0, False, 0))
        self.add_enum("STRATEGY", "Fusion strategy", STRATEGIES, "auto")
        self.add_enum("DETECTOR", "Detector", DETECTORS, "rx")
        # "All files (*)": any other filter makes QGIS append an extension to the value and reject the
        # authors' checkpoint folders (convh.pt, enc.pt, pc.pt), which are valid models too
        self.addParameter(QgsProcessingParameterFile(
            "MODEL", "Model file (.pt) or folder",
            QgsProcessingParameterFile.File, "", None, True, "All files (*)"))
        names = [m.name for m in bundled_models()]
        bundled = QgsProcessingParameterEnum("BUNDLED_MODEL", "…or a bundled model (empty = automatic)",
                                             options=names,
                                             allowMultiple=False, defaultValue=None, optional=True,
                                             usesStaticStrings=True)
        if not names:
            bundled.setFlags(bundled.flags() | QgsProcessingParameterDefinition.FlagHidden)
        self.addParameter(bundled)
        self.add_enum("DEVICE", "Device", DEVICES, "auto", advanced=True)
        self.add_enum("BAND_MATCH", "Band matching with a model", BAND_MATCHES, "auto", advanced=True)
        band_list = QgsProcessingParameterString(
            "BAND_LIST", "Band list (1-100,120 or 400-1340nm)", None, False, True)
        band_list.setFlags(band_list.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(band_list)
        for name, label, default in (("TILE_SIZE", "Tile size (px, 0 = automatic)", 0),
                                     ("MEMORY_MB", "Working memory for one tile (MB)", 1024)):
            # optional, so that saved models (.model3) that predate them stay valid
            p = QgsProcessingParameterNumber(name, label, QgsProcessingParameterNumber.Integer, default, True, 0)
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(p)
        add_nodata_parameter(self)
        add_extent_parameter(self)
        trim = QgsProcessingParameterNumber("RX_TRIM", "RX trim (empty = automatic)",
                                            QgsProcessingParameterNumber.Double, None, True, 0.0, 0.49)
        trim.setFlags(trim.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(trim)
        for name, label, default, minimum in (("LOCAL_MEAN", "Local mean window (px, 0 = scene mean)", 0, 0),
                                              ("WINDOW_INNER", "rx-dual: guard window (px, odd)", 3, 1),
                                              ("WINDOW_OUTER", "rx-dual: background window (px, odd)", 15, 3)):
            p = QgsProcessingParameterNumber(name, label, QgsProcessingParameterNumber.Integer, default, True, minimum)
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(p)
        self.addParameter(QgsProcessingParameterNumber(
            "THRESHOLD_PERCENTILE", "Mask threshold: score percentile",
            QgsProcessingParameterNumber.Double, DEFAULT_PERCENTILE, True, 0.0, 99.9999))
        self.addParameter(QgsProcessingParameterNumber(
            "FALSE_ALARM_RATE", "…or false-alarm rate (0–1)",
            QgsProcessingParameterNumber.Double, None, True, 0.0, 0.999999))
        self.addParameter(QgsProcessingParameterNumber(
            "MIN_PIXELS", "Smallest object (pixels)", QgsProcessingParameterNumber.Integer, 1,
            True, 1))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Anomaly score map"))
        self.addParameter(QgsProcessingParameterRasterDestination("MASK", "Anomaly mask", None, True, False))
        self.addParameter(QgsProcessingParameterVectorDestination(
            "OBJECTS", "Anomaly objects", QgsProcessing.TypeVectorPolygon, None, True, False))
        self.addOutput(QgsProcessingOutputNumber("THRESHOLD", "Score threshold of the mask and objects"))
        self.addOutput(QgsProcessingOutputNumber("ANOMALOUS_PIXELS", "Anomalous pixels"))
        self.addOutput(QgsProcessingOutputNumber("OBJECT_COUNT", "Anomaly objects"))

    def model_argument(self, parameters, context):
        model = self.parameterAsFile(parameters, "MODEL", context) or None
        bundled = self.parameterAsEnumString(parameters, "BUNDLED_MODEL", context) or None
        if model and bundled:
            raise QgsProcessingException(f"give either MODEL ({model}) or BUNDLED_MODEL ({bundled}), not both")
        if bundled:
            hit = next((m for m in bundled_models() if m.name == bundled), None)
            if hit is None:
                raise QgsProcessingException(f"no bundled model named '{bundled}'")
            return hit.path
        return model

    def run_engine(self, parameters, context, feedback):
        from fers.objects import display_range
        from fers.pipeline import detect, detector_label, strategy_label
        from fers.preprocess import parse_band_list

        from ..styling import QmlStyler, ScoreStyler, on_load

        src = raster_source(self, parameters, "INPUT", context)
        band_list = self.parameterAsString(parameters, "BAND_LIST", context)
        bands = parse_band_list(band_list) if band_list.strip() else self.parameterAsInt(parameters, "BANDS", context)
        model = self.model_argument(parameters, context)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        mask = self.parameterAsOutputLayer(parameters, "MASK", context) or None
        objects = self.parameterAsOutputLayer(parameters, "OBJECTS", context) or None
        trim = self.optional_double(parameters, "RX_TRIM", context)
        nodata = nodata_arguments(self, parameters, context, feedback)
        far = self.optional_double(parameters, "FALSE_ALARM_RATE", context)
        pct = None if far is not None else self.optional_double(parameters, "THRESHOLD_PERCENTILE", context)
        min_pixels = self.parameterAsInt(parameters, "MIN_PIXELS", context) or 1
        res = detect(src, out, bands=bands,
                     strategy=self.parameterAsEnumString(parameters, "STRATEGY", context),
                     detector=self.parameterAsEnumString(parameters, "DETECTOR", context),
                     model=model, device=self.parameterAsEnumString(parameters, "DEVICE", context),
                     band_match=self.parameterAsEnumString(parameters, "BAND_MATCH", context) or "auto",
                     tile_size=self.parameterAsInt(parameters, "TILE_SIZE", context),
                     memory_mb=self.parameterAsInt(parameters, "MEMORY_MB", context), feedback=feedback,
                     rx_trim=trim, extent=extent_argument(self, parameters, context), mask=mask, objects=objects,
                     threshold_percentile=pct, false_alarm_rate=far, min_pixels=min_pixels,
                     local_mean=self.parameterAsInt(parameters, "LOCAL_MEAN", context),
                     window=(self.parameterAsInt(parameters, "WINDOW_INNER", context) or 3,
                             self.parameterAsInt(parameters, "WINDOW_OUTER", context) or 15), **nodata)
        i = res.info
        used = strategy_label(res.strategy)  # the README's words: RX, spectral, spatial, fusion A, fusion B
        if res.detector != "rx" or i.get("local_mean"):  # the layer name says a detector other than the global RX
            used = f"{used}, {detector_label(res.detector, i)}" if res.strategy != "none" else detector_label(res.detector, i)
        feedback.info(f"map by {used}" + (f" ({res.strategy})" if used != res.strategy else "")
                      + (f" with the model {i['model']}" if i.get("model") else " on the raw bands, no model"))
        feedback.info(f"device {res.device}: {res.seconds:.2f} s in all ({len(res.bands)} bands read, "
                      f"{detector_label(res.detector, i)}; model "
                      f"{i.get('model_seconds', 0.0):.2f} s, detector {i.get('detector_seconds', 0.0):.2f} s)")
        name = input_name(self, parameters, "INPUT", context)
        results = {"OUTPUT": res.output}
        lo, hi = display_range(res.scores, res.valid)
        on_load(context, out, ScoreStyler(f"{name} — anomaly ({used})", lo, hi))
        obj = res.products
        if obj is not None:
            results.update(THRESHOLD=obj.threshold.value, ANOMALOUS_PIXELS=obj.anomalous_pixels,
                           OBJECT_COUNT=len(obj.table))
            if obj.mask_path:
                results["MASK"] = obj.mask_path
                on_load(context, obj.mask_path, QmlStyler(f"{name} — anomaly mask ({used})",
                                                                "anomaly_mask.qml"))
            if obj.objects_path:
                results["OBJECTS"] = obj.objects_path
                on_load(context, obj.objects_path, QmlStyler(f"{name} — anomaly objects ({used})",
                                                                   "anomaly_objects.qml"))
        return results
