"""Build the plugin ZIP for QGIS's 'Install from ZIP': dist/fers_qgis-<version>.zip (`make package`).

Layout (one top folder, the plugin's name):

    fers_qgis/                 plugin modules (metadata.txt and icon.svg as real files, not links)
    fers_qgis/engine/fers/     the engine (fers_qgis/paths.py puts <plugin>/engine on sys.path
                               when `import fers` fails)
    fers_qgis/resources/       icons, styles, models (+ cards), modeler

The sample scene (resources/sample, 2.9 MB) stays out: it is for the demo and the tests.
torch, numpy and scipy are not bundled: the algorithms name what is missing and the pip
command for QGIS's Python.
"""
import configparser
import os
import stat
import sys
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN = "fers_qgis"
RESOURCE_DIRS = ("icons", "styles", "models", "modeler")
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", "fers.egg-info"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".partial", ".aux.xml")


def version():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "metadata.txt"), encoding="utf-8")
    return cfg["general"]["version"]


def walk(folder):
    """Files under ``folder`` (symbolic links followed: the ZIP holds their content), sorted."""
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for f in sorted(files):
            if f.startswith(".") or f.endswith(SKIP_SUFFIXES):
                continue
            yield os.path.join(root, f)


def entries():
    """(path on disk, path in the ZIP)."""
    plugin_dir = os.path.join(REPO, PLUGIN)
    for path in walk(plugin_dir):
        yield path, os.path.join(PLUGIN, os.path.relpath(path, plugin_dir))
    for path in walk(os.path.join(REPO, "engine", "fers")):
        yield path, os.path.join(PLUGIN, "engine", os.path.relpath(path, os.path.join(REPO, "engine")))
    for sub in RESOURCE_DIRS:
        folder = os.path.join(REPO, "resources", sub)
        if os.path.isdir(folder):
            for path in walk(folder):
                yield path, os.path.join(PLUGIN, "resources", os.path.relpath(path, os.path.join(REPO, "resources")))


def build(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, f"{PLUGIN}-{version()}.zip")
    tmp = target + ".partial"
    seen = set()
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path, arc in entries():
            arc = arc.replace(os.sep, "/")
            if arc in seen:
                continue
            seen.add(arc)
            info = zipfile.ZipInfo.from_file(os.path.realpath(path), arc)
            info.external_attr = (stat.S_IFREG | 0o644) << 16  # plain files, whatever the checkout's links
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as f:
                z.writestr(info, f.read())
    for required in (f"{PLUGIN}/metadata.txt", f"{PLUGIN}/__init__.py", f"{PLUGIN}/engine/fers/__init__.py"):
        if required not in seen:
            os.remove(tmp)
            sys.exit(f"package: {required} missing")
    os.replace(tmp, target)
    return target, len(seen)


if __name__ == "__main__":
    path, n = build(sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "dist"))
    print(f"{path} ({n} files, {os.path.getsize(path) / 1e6:.2f} MB)")
