"""Benchmark harness: the paper's evaluation protocol (SPEC §4) over many scenes in one call.

Four jobs, four modules, each below the next: ``scenes`` (which files are scenes and where their ground truth
is), ``tables`` (rows, summaries, CSV and Markdown), ``figures`` (ROC plots, galleries, the HTML report) and
``run`` (the loop over scene × bands × strategy × detector that uses the other three). The public names are
re-exported here, so ``fers.benchmark.run_benchmark`` and the rest stay where they were.
"""
from .run import (NEEDS_SPA, NEEDS_SPE, check_benchmark_outputs, load_models, parse_band_counts, parse_names,
                  parse_strategy_specs, run_benchmark)
from .scenes import (SCENE_EXTENSIONS, TRUTH_EXTENSIONS, TRUTH_SUFFIXES, BenchScene, collect_scenes, read_truth,
                     truth_beside)
from .tables import CSV_COLUMNS, BenchmarkResult
from .figures import write_html

__all__ = ["BenchScene", "BenchmarkResult", "CSV_COLUMNS", "NEEDS_SPA", "NEEDS_SPE", "SCENE_EXTENSIONS",
           "TRUTH_EXTENSIONS", "TRUTH_SUFFIXES", "check_benchmark_outputs", "collect_scenes", "load_models",
           "parse_band_counts", "parse_names", "parse_strategy_specs", "read_truth", "run_benchmark", "truth_beside",
           "write_html"]
