"""What the engine lets a file make it do: run no code, fetch nothing, wait on nothing.

A raster is more than pixels to GDAL: a VRT may carry Python pixel functions that GDAL runs when the pixels are
read, and any path (the input's, or one a VRT or another XML/JSON description names) may be a URL that GDAL
fetches (``/vsicurl/``, ``/vsis3/``, ``http://`` for its HTTP, WMS, WCS ... drivers). A path may also name a FIFO or
a device, on which every reader (GDAL, scipy, h5py, numpy, torch) blocks for ever. So, for every file the engine
opens (``check_input``):

- only regular files (GDAL's ``/vsi…`` in-memory and archive paths excepted), and the sidecars GDAL opens beside
  a raster (``scene.hdr``, ``scene.tif.aux.xml``, ``.ovr``, ``.msk``, …) must be regular files too;
- no network unless asked (``--allow-network``; ``network_allowed``): URL-like paths are refused, also when a
  VRT or another XML/JSON file names them, before GDAL sees the file; and while the engine uses GDAL
  (``gdal_guard``), GDAL's own switches are set for the calling thread: ``CPL_VSIL_CURL_ALLOWED_FILENAME``
  names a file that does not exist, so every ``/vsicurl/``-family handler (``/vsis3/``, ``/vsigs/``,
  ``/vsiaz/``, …) refuses every other one, and ``GDAL_HTTP(S)_PROXY`` points at a closed local port, so
  libcurl's other users (the HTTP, WMS, WCS drivers) cannot connect either. GDAL 3.6 has no single switch;
  thread-local options leave the desktop's own remote layers alone in QGIS;
- Python in VRTs off, whatever the environment says: ``GDAL_VRT_ENABLE_PYTHON=NO`` set for the process when
  the engine first uses GDAL (a set option overrides the environment variable) and for the thread in
  ``gdal_guard``.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import threading
from typing import Optional

from ..errors import InputError

# path prefixes and URL schemes that reach the network (GDAL's network file systems and its libcurl drivers)
REMOTE = re.compile(r"/vsi(?:curl|s3|gs|az|adls|oss|swift|hdfs|webhdfs|http)\w*/|"
                    r"(?<![A-Za-z0-9])(?:https?|ftps?|sftp|s3|gs|gcs|az|azure|abfss?|wasbs?|hdfs|webhdfs|wss?)://",
                    re.IGNORECASE)
OFF = {"CPL_VSIL_CURL_ALLOWED_FILENAME": "/vsicurl/network-access-is-off-in-fers",
       "GDAL_HTTP_PROXY": "127.0.0.1:1", "GDAL_HTTPS_PROXY": "127.0.0.1:1"}
NO_PYTHON = {"GDAL_VRT_ENABLE_PYTHON": "NO"}
# drivers whose every dataset is a remote service: never offered a file without --allow-network
NETWORK_DRIVERS = {"HTTP", "WMS", "WCS", "WMTS", "DAAS", "EEDA", "EEDAI", "PLMosaic", "PLScenes", "OGCAPI", "NGW",
                   "STACTA", "STACIT", "AirSAR_HTTP", "TiledWMS", "ESRIJSON_HTTP", "Rasterlite_HTTP"}
# XML elements and JSON keys (lower case, by their ending) that name a dataset or a service in the descriptions GDAL
# opens (VRT sources and overviews, WMS/WCS service URLs, STAC asset hrefs, tile templates)
NAMING = ("filename", "sourcedataset", "overviewdataset", "serverurl", "url", "href", "path", "template", "uri")
DESCRIPTION_BYTES = 16 * 1024 ** 2  # XML/JSON descriptions larger than this are not raster descriptions
MAX_DEPTH = 8

_local = threading.local()
_process_done = False


def network_allowed() -> bool:
    return bool(getattr(_local, "network", False))


@contextlib.contextmanager
def allow_network(allowed: bool = True):
    """Let the engine's reads in this thread reach the network (``--allow-network``)."""
    was = network_allowed()
    _local.network = bool(allowed)
    try:
        yield
    finally:
        _local.network = was


def set_network_allowed(allowed: bool) -> None:
    """For a whole CLI run (one thread)."""
    _local.network = bool(allowed)


def configure_process(gdal) -> None:
    """Python pixel functions off for the process: the engine's VRTs never need them, and a set config option
    wins over the environment variable."""
    global _process_done
    if not _process_done:
        gdal.SetConfigOption("GDAL_VRT_ENABLE_PYTHON", "NO")
        _process_done = True


@contextlib.contextmanager
def gdal_guard(gdal):
    """GDAL's switches for this thread while the engine uses it: Python off; the network off unless allowed."""
    configure_process(gdal)
    options = dict(NO_PYTHON, **({} if network_allowed() else OFF))
    before = {k: gdal.GetThreadLocalConfigOption(k, None) for k in options}
    for k, v in options.items():
        gdal.SetThreadLocalConfigOption(k, v)
    try:
        yield gdal
    finally:
        for k, v in before.items():
            gdal.SetThreadLocalConfigOption(k, v)


def allowed_drivers(gdal) -> Optional[list]:
    """The raster drivers ``gdal.OpenEx`` may use (None: any): those of remote services only with the network on."""
    if network_allowed():
        return None
    names = (gdal.GetDriver(i).ShortName for i in range(gdal.GetDriverCount()))
    return [n for n in names if n not in NETWORK_DRIVERS]


def _refuse_remote(name: str, what: str, inside: str = "") -> None:
    if not network_allowed() and REMOTE.search(name):
        where = f" (named inside {inside})" if inside else ""
        raise InputError(f"{what} {name}{where} is on the network; FERS reads local files only, unless asked to with "
                         "--allow-network (CLI) or ALLOW_NETWORK (QGIS)")


def _file_of(path: str) -> Optional[str]:
    """The local file a GDAL dataset name refers to: the path itself, or the file inside a subdataset name
    (``HDF5:"x.h5"://data``, ``NETCDF:x.nc:var``, ``GTIFF_DIR:1:x.tif``); None for GDAL's /vsi… paths."""
    if path.startswith("/vsi"):
        return None
    m = re.match(r'^[A-Za-z0-9_]+:"([^"]+)"', path)
    if m:
        return m.group(1)
    m = re.match(r"^GTIFF_DIR:(?:off:)?\d+:(.+)$", path)
    if m:
        return m.group(1)
    if not os.path.lexists(path):
        m = re.match(r"^[A-Za-z0-9_]{2,}:(.+?)(?::[^:/\\]*)?$", path)
        if m and os.path.lexists(m.group(1)):
            return m.group(1)
    return path


def require_regular(path: str, what: str = "input", folder_ok: bool = False) -> None:
    """A file that exists must be a regular file (a folder only where ``folder_ok``): a FIFO, a socket or a device
    would block the reader, or feed it for ever."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # a missing file is the caller's own, clearer, message
    if stat.S_ISREG(mode) or (folder_ok and stat.S_ISDIR(mode)):
        return
    kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else
            "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else
            "not a regular file")
    raise InputError(f"{what} {path} is {kind}, not a file; give a regular file")


def _sidecars(path: str) -> None:
    """GDAL opens files beside a raster (ENVI's .hdr, .aux.xml, .ovr, .msk, world files): regular files only."""
    folder, name = os.path.split(os.path.abspath(path))
    stem = os.path.splitext(name)[0]
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for e in entries:
        if e.name != name and (e.name.startswith(stem + ".") or e.name.startswith(name + ".")):
            try:
                if e.is_dir() or e.is_file():
                    continue
            except OSError:
                continue
            require_regular(e.path, f"the file beside {name}")


def _description_names(path: str):
    """(text, is_source, relative) of each string in an XML or JSON file (a VRT and other raster descriptions):
    is_source when the string names a dataset GDAL will open (a VRT's SourceFilename); None if not such a file."""
    try:
        if os.path.getsize(path) > DESCRIPTION_BYTES:
            return None
        with open(path, "rb") as f:
            head = f.read(256)  # a binary raster stops here
            if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] not in (b"<", b"{", b"["):
                return None
            head += f.read()
    except OSError:
        return None
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] == b"<":
        import xml.etree.ElementTree as ET

        try:
            root = ET.fromstring(head)
        except (ET.ParseError, ValueError):
            return None
        out = []
        for el in root.iter():
            v = (el.text or "").strip()  # element text: namespaces and schema locations are not datasets
            if str(el.tag).endswith("PixelFunctionLanguage") and v.lower() == "python":
                raise InputError(f"{os.path.basename(path)} holds Python code (a VRT pixel function), which GDAL "
                                 "would run when reading it; FERS never runs code from a file")
            tag = str(el.tag).rsplit("}", 1)[-1].lower()
            if v and tag.endswith(NAMING):  # metadata text may cite a web page: only what names a dataset counts
                is_source = tag.endswith(("sourcefilename", "sourcedataset"))
                out.append((v, is_source, el.attrib.get("relativeToVRT", "0") == "1"))
        return out
    if text[:1] in (b"{", b"["):
        try:
            obj = json.loads(head)
        except ValueError:
            return None
        out, stack = [], [("", obj)]
        while stack:
            key, o = stack.pop()
            if isinstance(o, dict):
                stack.extend((str(k).lower(), v) for k, v in o.items())
            elif isinstance(o, list):
                stack.extend((key, v) for v in o)
            elif isinstance(o, str) and key.endswith(NAMING):
                out.append((o, False, False))
        return out
    return None


def check_input(path: str, what: str = "input", folder_ok: bool = False, _depth: int = 0, _seen=None) -> None:
    """Refuse, before any reader opens it, a path that is on the network (unless allowed), names something other
    than a regular file, has such a file beside it, or is a raster description (VRT, XML, JSON) naming either."""
    path = os.fspath(path)
    if path.lstrip().startswith("<"):
        raise InputError(f"{what} is XML text, not a file name; save it to a .vrt file")
    _refuse_remote(path, what)
    local = _file_of(path)
    if local is None or not os.path.lexists(local):
        return
    require_regular(local, what, folder_ok)
    if not os.path.isfile(local):
        return
    _sidecars(local)
    seen = _seen if _seen is not None else set()
    real = os.path.realpath(local)
    if real in seen or _depth > MAX_DEPTH:
        return
    seen.add(real)
    names = _description_names(local)
    for text, is_source, relative in names or ():
        _refuse_remote(text, "a dataset", os.path.basename(local))
        if is_source:
            ref = os.path.join(os.path.dirname(local), text) if relative or not os.path.isabs(text) else text
            if not REMOTE.search(text) and not text.startswith("/vsi"):
                check_input(ref, f"the source named in {os.path.basename(local)}", False, _depth + 1, seen)
