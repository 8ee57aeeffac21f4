"""Benchmark tables: the per-run rows summarised, and written as CSV and Markdown."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..io.atomic import atomic_path
from ..pipeline import resolve_strategy
from .scenes import BenchScene


CSV_COLUMNS = ("scene", "bands", "strategy", "resolved_strategy", "detector", "model", "auc", "seconds",
               "model_seconds", "detector_seconds", "status", "reason", "bands_requested", "scene_bands", "height",
               "width", "valid_pixels", "anomalies", "device", "source", "truth",
               "auc_dt", "auc_ft")  # 3D ROC (fers.metrics.roc3d): detectability, background suppression


@dataclass
class BenchmarkResult:
    out_dir: str
    device: str
    rows: List[dict]
    summary: List[dict]
    scenes: List[BenchScene]
    skipped_scenes: List[dict]
    files: Dict[str, object]
    markdown: str
    seconds: float
    models: List[dict] = field(default_factory=list)

    def mean_auc(self, strategy: str, bands: int, detector: Optional[str] = None) -> Optional[float]:
        for s in self.summary:
            if s["strategy"] == strategy and s["bands_requested"] == bands and detector in (None, s["detector"]):
                return s["mean_auc"]
        return None


# ---------------------------------------------------------------- parsing helpers (shared by CLI and QGIS)

def _label(strategy: str, detector: str, detectors: Sequence[str]) -> str:
    return strategy if len(detectors) == 1 else f"{strategy} ({detector})"


def _bands_label(n: int) -> str:
    return "all" if n == 0 else str(n)


def _summary(rows, bands, strategies, detectors) -> List[dict]:
    out = []
    for n in bands:
        for st in strategies:
            for det in detectors:
                ok = [r for r in rows if r["bands_requested"] == n and r["strategy"] == st and r["detector"] == det
                      and r["status"] == "ok"]
                skipped = sum(1 for r in rows if r["bands_requested"] == n and r["strategy"] == st
                              and r["detector"] == det and r["status"] != "ok")
                mean = lambda k: float(np.mean([r[k] for r in ok])) if ok else None  # noqa: E731
                resolved = sorted({r["resolved_strategy"] for r in ok}) or (
                    [resolve_strategy(st.split("@", 1)[0], n)] if n else [])
                out.append({"bands_requested": n, "strategy": st, "resolved_strategy": "/".join(resolved),
                            "detector": det, "scenes": len(ok),
                            "not_run": skipped, "mean_auc": mean("auc"), "mean_seconds": mean("seconds"),
                            "mean_model_seconds": mean("model_seconds"),
                            "mean_detector_seconds": mean("detector_seconds")})
    return out


# ---------------------------------------------------------------- writing

def _write_text(path: str, text: str) -> str:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    return path


def _fmt(v, digits=4):
    return "" if v is None or v == "" else f"{v:.{digits}f}"


def _csv(rows) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        r2 = dict(r)
        for k in ("auc", "auc_dt", "auc_ft"):
            r2[k] = "" if r[k] is None else f"{r[k]:.6f}"
        for k in ("seconds", "model_seconds", "detector_seconds"):
            r2[k] = "" if r[k] is None else f"{r[k]:.4f}"
        w.writerow(r2)
    return buf.getvalue()


def _per_scene_table(rows, detectors) -> tuple:
    """(header, body rows) of the per-scene AUC table, one line per scene × band count."""
    labels, keys = [], []
    for r in rows:
        lab = _label(r["strategy"], r["detector"], detectors)
        if lab not in labels:
            labels.append(lab)
    for r in rows:
        k = (r["scene"], r["bands_requested"])
        if k not in keys:
            keys.append(k)
    body = []
    for scene, n in keys:
        rs = [r for r in rows if r["scene"] == scene and r["bands_requested"] == n]
        if all(r["status"] != "ok" for r in rs):
            continue
        cells = []
        for lab in labels:
            hit = [r for r in rs if _label(r["strategy"], r["detector"], detectors) == lab]
            cells.append(_fmt(hit[0]["auc"]) if hit and hit[0]["status"] == "ok" else "—")
        body.append([scene, str(rs[0]["bands"] or _bands_label(n))] + cells)
    return ["scene", "bands"] + labels, body


def _md_table(header, body) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(map(str, b)) + " |" for b in body]
    return "\n".join(lines)


def _summary_table(summary, detectors) -> tuple:
    header = ["strategy", "bands", "scenes", "mean AUC", "mean s", "mean model s", "mean detector s"]
    body = [[_label(s["strategy"], s["detector"], detectors) + (
                f" → {s['resolved_strategy']}" if s["resolved_strategy"] not in ("", s["strategy"]) else ""),
             _bands_label(s["bands_requested"]),
             f"{s['scenes']}" + (f" ({s['not_run']} not run)" if s["not_run"] else ""),
             _fmt(s["mean_auc"]), _fmt(s["mean_seconds"], 3), _fmt(s["mean_model_seconds"], 3),
             _fmt(s["mean_detector_seconds"], 3)] for s in summary]
    return header, body


def _not_run(rows, skipped_scenes) -> List[str]:
    seen, out = set(), []
    for r in rows:
        if r["status"] in ("skipped", "error"):
            k = (r["scene"], r["bands_requested"], r["reason"])
            if k not in seen:
                seen.add(k)
                what = sorted({x["strategy"] for x in rows if (x["scene"], x["bands_requested"], x["reason"]) == k})
                out.append(f"{r['scene']}, {_bands_label(r['bands_requested'])} bands ({', '.join(what)}): {r['reason']}")
    out += [f"{s['scene']}: {s['reason']}" for s in skipped_scenes]
    return out


def _markdown(rows, summary, meta, skipped_scenes, detectors) -> str:
    models = "; ".join(f"{m['model']}" for m in meta["models"]) or "none"
    parts = [
        "# FERS benchmark",
        "",
        f"{meta['scenes']} scene(s); bands {', '.join(map(_bands_label, meta['bands']))}; device {meta['device']}; "
        f"models: {models}; RX trim {meta['rx_trim']} (0 = the paper's plain RX); engine {meta['engine_version']}; "
        f"{meta['created']}. AUC over valid pixels; seconds = "
        "feature enhancement + detector + fusion per scene (reading and scaling excluded).",
        "",
        "## Mean AUC",
        "",
        _md_table(*_summary_table(summary, detectors)),
        "",
        "## Per scene (ROC AUC)",
        "",
        _md_table(*_per_scene_table(rows, detectors)),
    ]
    nr = _not_run(rows, skipped_scenes)
    if nr:
        parts += ["", "## Not run", ""] + [f"- {x}" for x in nr]
    return "\n".join(parts) + "\n"
