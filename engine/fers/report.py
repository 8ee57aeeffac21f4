"""ROC curves as PNG (matplotlib, headless) or a self-contained HTML page."""
from __future__ import annotations

import html
import os

import numpy as np

from .errors import OutputError
from .io.atomic import atomic_path


def _atomic(path: str, write) -> str:
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write {path}: folder missing or not writable")
    with atomic_path(path) as tmp:
        write(tmp)
    return path


def _thin(fpr, tpr, n=2000):
    """At most n points, always keeping the ends; enough for a faithful plot."""
    if fpr.size <= n:
        return fpr, tpr
    keep = np.unique(np.r_[np.linspace(0, fpr.size - 1, n).astype(int), fpr.size - 1])
    return fpr[keep], tpr[keep]


def check_roc_path(path: str) -> str:
    """Fail before any work if the ROC curve cannot be written at ``path`` (format, folder)."""
    path = os.path.abspath(path)
    if os.path.splitext(path)[1].lower() not in (".png", ".html", ".htm"):
        raise OutputError(f"ROC output must end in .png or .html: {path}")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write {path}: folder missing or not writable")
    if os.path.isdir(path):
        raise OutputError(f"output path is a folder: {path}")
    return path


def write_roc(path: str, fpr, tpr, auc: float, title: str = "") -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".png":
        return _atomic(path, lambda tmp: _png(tmp, fpr, tpr, auc, title))
    if ext in (".html", ".htm"):
        return _atomic(path, lambda tmp: _html(tmp, fpr, tpr, auc, title))
    raise OutputError(f"ROC output must end in .png or .html: {path}")


def plain_text():
    """Figure text drawn as written: titles and labels carry file and scene names, and a name with '$' signs
    (or '_', '^' between them) would otherwise be parsed as TeX by matplotlib's mathtext, and fail."""
    import matplotlib

    return matplotlib.rc_context({"text.parse_math": False, "text.usetex": False})


def _png(tmp, fpr, tpr, auc, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plain_text():
        fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
        ax.plot(fpr, tpr, lw=2, label=f"AUC = {auc:.4f}")
        ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
        ax.set(xlabel="false-alarm rate", ylabel="detection rate", xlim=(0, 1), ylim=(0, 1.01), title=title)
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(tmp, format="png")
        plt.close(fig)


def _html(tmp, fpr, tpr, auc, title):
    f, t = _thin(np.asarray(fpr), np.asarray(tpr))
    pts = " ".join(f"{40 + 400 * a:.2f},{440 - 400 * b:.2f}" for a, b in zip(f, t))
    doc = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>ROC {html.escape(title)}</title></head>
<body style="font-family:sans-serif"><h3>ROC curve — {html.escape(title)}</h3><p>AUC = {auc:.4f}</p>
<svg width="480" height="480" xmlns="http://www.w3.org/2000/svg">
<rect x="40" y="40" width="400" height="400" fill="none" stroke="black"/>
<line x1="40" y1="440" x2="440" y2="40" stroke="grey" stroke-dasharray="4"/>
<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{pts}"/>
<text x="240" y="470" text-anchor="middle">false-alarm rate</text>
<text x="15" y="240" transform="rotate(-90 15 240)" text-anchor="middle">detection rate</text>
</svg></body></html>"""
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(doc)
