"""Reading hyperspectral sources and writing georeferenced results.

``open_source`` is the single entry point: GDAL rasters (GeoTIFF, ENVI, ...)
and the research formats (.mat, .npy) come back as the same Source interface,
so everything downstream is format-agnostic.
"""
from .opening import load_ground_truth, open_source
from .raster import GdalSource, write_raster, check_output_path
from .research import ArraySource, is_research_path, had100_scenes
from .source import Georef, Source

__all__ = [
    "Georef", "GdalSource", "ArraySource", "Source", "open_source", "write_raster",
    "check_output_path", "is_research_path", "load_ground_truth", "had100_scenes",
]
