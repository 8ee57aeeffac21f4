"""Build the plugin ZIP for QGIS's 'Install from ZIP': dist/fers_qgis-<version>.zip (`make package`).

Layout (one top folder, the plugin's name):

    fers_qgis/                 plugin modules (metadata.txt and icon.svg as real files, not links)
    fers_qgis/engine/fers/     the engine (fers_qgis/paths.py puts <plugin>/engine on sys.path
                               when `import fers` fails)
    fers_qgis/resources/       icons, styles, models (+ cards), modeler
    fers_qgis/LICENSE          required by plugins.qgis.org

The sample scene (resources/sample, 2.9 MB) stays out: it is for the demo and the tests.
torch, numpy and scipy are not bundled: the algorithms name what is missing and the pip
command for QGIS's Python.

After building, the ZIP is checked against the upload rules of the official plugin repository
(``upload_problems``); ``make package`` fails when one is broken.
"""
import configparser
import io
import os
import re
import stat
import sys
import zipfile
from urllib.parse import urlparse

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
    """Write the ZIP; returns (path, number of files)."""
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, f"{PLUGIN}-{version()}.zip")
    tmp = target + ".partial"
    seen = set()
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for path, arc in list(entries()) + [(os.path.join(REPO, "LICENSE"), f"{PLUGIN}/LICENSE")]:
            arc = arc.replace(os.sep, "/")
            if arc in seen:
                continue
            seen.add(arc)
            info = zipfile.ZipInfo.from_file(os.path.realpath(path), arc)
            info.external_attr = (stat.S_IFREG | 0o644) << 16  # plain files, whatever the checkout's links
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as f:
                z.writestr(info, f.read())
    for required in (f"{PLUGIN}/metadata.txt", f"{PLUGIN}/__init__.py", f"{PLUGIN}/engine/fers/__init__.py",
                     f"{PLUGIN}/LICENSE"):
        if required not in seen:
            os.remove(tmp)
            sys.exit(f"package: {required} missing")
    os.replace(tmp, target)
    return target, len(seen)


# ---------------------------------------------------------------- the official repository's upload rules
# plugins.qgis.org: qgis/QGIS-Plugins-Website (formerly QGIS-Django), qgis-app/plugins/validator.py (validator(),
# read at 73c20fa, July 2026; blocking) and qgis-app/plugins/security_scanner.py (informational findings, kept
# clean here too). Its one network check, HEAD on tracker/repository/homepage answering < 400 within 10 s,
# cannot run offline; everything else is reproduced.
MAX_UPLOAD_SIZE = 25_000_000  # PLUGIN_MAX_UPLOAD_SIZE: decimal megabytes
REQUIRED_METADATA = ("name", "description", "version", "qgisMinimumVersion", "author", "email", "about", "tracker",
                     "repository")  # PLUGIN_REQUIRED_METADATA
FORBIDDEN_DIRS = ("__MACOSX", ".git", "__pycache__")
FORBIDDEN_URLS = {"tracker": "http://bugs", "repository": "http://repo", "homepage": "http://homepage"}
SUSPICIOUS_EXTENSIONS = (".exe", ".dll", ".so", ".dylib", ".bat", ".sh", ".ps1", ".cmd")  # security_scanner.py
# not the validator's, ours: the "no placeholder e-mail" (RFC 2606 / 6761 reserved names)
PLACEHOLDER_HOSTS = re.compile(r"(^|\.)(example\.(org|com|net)|localhost|invalid|test|example)$", re.I)
# Django's EmailField (the Plugin model's email), simplified: one @, a dotted domain, no spaces
EMAIL = re.compile(r"^[^@\s]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def upload_problems(path):
    """What plugins.qgis.org would refuse in the ZIP at ``path`` (empty when it passes), plus the security
    scanner's findings and placeholder contact data."""
    out = []
    if os.path.getsize(path) > MAX_UPLOAD_SIZE:
        out.append(f"File is too big: {os.path.getsize(path)} bytes, max {MAX_UPLOAD_SIZE}")
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        return out + ["Could not unzip file"]
    with z:
        names = z.namelist()
        for n in names:
            if ".." in n or n.startswith("/"):
                out.append(f"path information in {n}")
            if ".pyc" in n:
                out.append(f".pyc file {n}")
            if any(d in n.split("/") for d in FORBIDDEN_DIRS):
                out.append(f"forbidden directory in {n}")
            if "\\" in n or re.match(r"^[A-Za-z]:", n):
                out.append(f"backslash or drive letter in {n}")
            base = n.rsplit("/", 1)[-1]
            if base.startswith("."):
                out.append(f"hidden file {n}")
            if n.lower().endswith(SUSPICIOUS_EXTENSIONS):
                out.append(f"executable or binary file {n}")
        for info in z.infolist():
            if info.filename.endswith(".py") and (info.external_attr >> 16) & 0o111:
                out.append(f"Python file with the executable bit: {info.filename}")
        bad = z.testzip()
        if bad:
            out.append(f"Bad zip (CRC error) on file {bad}")
        tops = {n.split("/")[0] for n in names}
        if len(tops) != 1:
            out.append(f"multiple parent folders: {', '.join(sorted(tops))}")
        if not names or "/" not in names[0]:
            return out + ["Cannot find a folder inside the compressed package"]
        package = names[0][:names[0].index("/")]
        if not package.isidentifier() or not re.match(r"^[A-Za-z][A-Za-z0-9-_]+$", package):
            out.append(f"top-level folder {package!r} is not a PEP 8 package name")
        for required in ("__init__.py", "metadata.txt", "LICENSE"):
            if f"{package}/{required}" not in names:
                out.append(f"Cannot find {required} in the plugin package")
        if f"{package}/metadata.txt" not in names:
            return out
        parser = configparser.ConfigParser()
        parser.optionxform = str
        try:
            parser.read_file(io.StringIO(z.read(f"{package}/metadata.txt").decode("utf8")))
            meta = dict(parser.items("general"))
        except (configparser.Error, UnicodeDecodeError) as e:
            return out + [f"Errors parsing metadata.txt: {e}"]
        icon = meta.get("icon", "")
        if not icon or f"{package}/{icon[2:] if icon.startswith('./') else icon}" not in names:
            out.append(f"icon {icon!r} not in the package")
    missing = [k for k in REQUIRED_METADATA if not meta.get(k, "").strip()]
    if missing:
        out.append(f"Cannot find metadata {', '.join(missing)}")
    for key, forbidden in FORBIDDEN_URLS.items():
        url = meta.get(key)
        if url is None and key == "homepage":
            continue
        parsed = urlparse(url or "")
        if url == forbidden or not (parsed.scheme and parsed.netloc):
            out.append(f"Please provide valid url link for {key}: {url!r}")
        elif parsed.scheme not in ("http", "https") or PLACEHOLDER_HOSTS.search(parsed.hostname or ""):
            out.append(f"{key} is not a public web address: {url}")
    email = meta.get("email", "").strip()
    if not EMAIL.match(email) or PLACEHOLDER_HOSTS.search(email.rsplit("@", 1)[-1]):
        out.append(f"email {email!r} is not a real address")
    if "/" in meta.get("author", ""):
        out.append("Author name cannot contain slashes")
    if not re.match(r"^\d+(\.\d+)*$", meta.get("version", "").strip()):
        out.append(f"version {meta.get('version')!r} is not digits and dots")
    if "supportsQt6" in meta:
        out.append("supportsQt6 is deprecated (QGIS 4 readiness is qgisMaximumVersion >= 4.0)")
    return out


if __name__ == "__main__":
    path, n = build(sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "dist"))
    print(f"{path} ({n} files, {os.path.getsize(path) / 1e6:.2f} MB)")
    problems = upload_problems(path)
    if problems:
        sys.exit("package: plugins.qgis.org would refuse it:\n  " + "\n  ".join(problems))
    print("passes plugins.qgis.org's upload checks (all but the online check of the URLs)")
