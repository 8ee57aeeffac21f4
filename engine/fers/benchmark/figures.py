"""Benchmark figures: ROC plots, score-map galleries and the self-contained HTML report (matplotlib, no
window)."""
from __future__ import annotations

import base64
import html as _html
import os

import numpy as np

from ..io.atomic import atomic_path
from .tables import BenchmarkResult, _bands_label, _not_run, _per_scene_table, _summary_table, _write_text


def _thin(fpr, tpr, n=2000):
    if fpr.size <= n:
        return fpr, tpr
    keep = np.unique(np.r_[np.linspace(0, fpr.size - 1, n).astype(int), fpr.size - 1])
    return fpr[keep], tpr[keep]


def _small(a: np.ndarray, side: int = 256) -> np.ndarray:
    step = max(1, int(np.ceil(max(a.shape) / side)))
    return np.array(a[::step, ::step], dtype=np.float32)


def _figure(w, h, dpi=100):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=dpi)
    FigureCanvasAgg(fig)  # no pyplot: the global backend (QGIS's Qt) is left alone
    return fig


def _save_fig(path: str, fig) -> str:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _roc_figure(curves, title):
    from ..report import plain_text

    with plain_text():
        fig = _figure(5.5, 5)
        ax = fig.add_subplot(111)
        for label, fpr, tpr, auc in curves:
            ax.plot(fpr, tpr, lw=1.8, label=f"{label}  AUC {auc:.4f}")
        ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
        ax.set(xlabel="false-alarm rate", ylabel="detection rate", xlim=(0, 1), ylim=(0, 1.01), title=title)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        return fig


def _gallery_figure(entries, title):
    from ..report import plain_text

    with plain_text():
        import matplotlib

        labels = []
        for _, _, maps in entries:
            for lab, _, _ in maps:
                if lab not in labels:
                    labels.append(lab)
        cols, rws = 1 + len(labels), len(entries)
        fig = _figure(1.9 * cols, 1.9 * rws + 0.5, dpi=80)
        cmap = matplotlib.colormaps["inferno"].copy()
        cmap.set_bad("0.6")
        for i, (scene, gt, maps) in enumerate(entries):
            lookup = {lab: (m, auc) for lab, m, auc in maps}
            for j, lab in enumerate(["ground truth"] + labels):
                ax = fig.add_subplot(rws, cols, i * cols + j + 1)
                ax.set_xticks([])
                ax.set_yticks([])
                if j == 0:
                    ax.imshow(np.ma.masked_invalid(gt), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                    ax.set_ylabel(scene, fontsize=7)
                    ax.set_title("ground truth", fontsize=7)
                    continue
                if lab not in lookup:
                    ax.set_axis_off()
                    continue
                m, auc = lookup[lab]
                fin = m[np.isfinite(m)]
                lo, hi = (np.percentile(fin, 1), np.percentile(fin, 99.5)) if fin.size else (0, 1)
                ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1,
                          interpolation="nearest")
                ax.set_title(f"{lab}\nAUC {auc:.4f}", fontsize=7)
        fig.suptitle(f"score maps, {title}", fontsize=9)
        fig.tight_layout()
        return fig


def _png_data_uri(path: str) -> str:
    with open(path, "rb") as fh:
        return "data:image/png;base64," + base64.b64encode(fh.read()).decode("ascii")


def _html_table(header, body) -> str:
    e = _html.escape
    head = "".join(f"<th>{e(str(h))}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in b) + "</tr>" for b in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def write_html(path: str, result: BenchmarkResult, meta: dict) -> str:
    """A self-contained report page: tables and every PNG embedded (data URIs)."""
    e = _html.escape
    dets = meta["detectors"]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>FERS benchmark</title>",
             "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #bbb;padding:2px 8px;text-align:right}th{background:#eee}"
             "td:first-child{text-align:left}img{max-width:100%}</style></head><body>",
             "<h2>FERS benchmark</h2>",
             f"<p>{meta['scenes']} scene(s); bands {e(', '.join(map(_bands_label, meta['bands'])))}; device "
             f"{e(meta['device'])}; models: {e('; '.join(m['model'] for m in meta['models']) or 'none')}; engine "
             f"{e(meta['engine_version'])}; {e(meta['created'])}.<br>Results folder: <code>{e(result.out_dir)}</code> "
             "(results.csv, results.md, results.json).</p>",
             "<h3>Mean AUC</h3>", _html_table(*_summary_table(result.summary, dets)),
             "<h3>Per scene (ROC AUC)</h3>", _html_table(*_per_scene_table(result.rows, dets))]
    nr = _not_run(result.rows, result.skipped_scenes)
    if nr:
        parts += ["<h3>Not run</h3><ul>"] + [f"<li>{e(x)}</li>" for x in nr] + ["</ul>"]
    for p in result.files.get("gallery", []):
        parts.append(f"<h3>{e(os.path.basename(p))}</h3><img src='{_png_data_uri(p)}' alt='{e(os.path.basename(p))}'>")
    if result.files.get("roc"):
        parts.append("<h3>ROC curves</h3><div>")
        parts += [f"<img style='width:420px' src='{_png_data_uri(p)}' alt='{e(os.path.basename(p))}'>"
                  for p in result.files["roc"]]
        parts.append("</div>")
    parts.append("</body></html>\n")
    return _write_text(path, "\n".join(parts))
