"""Which file a path names, so that no output of a run ever replaces one of its inputs.

A run's outputs are compared with its inputs, and with each other, by the file they name on disk, not by
their spelling: ``check_outputs`` refuses (``OutputError``, one line) before anything is read or written
when two of them are one file. What counts as the same file:

* every spelling of one path: relative or absolute, ``~``, ``..``, symbolic links (anywhere in the path);
* hard links: the same device and inode (``os.stat``);
* GDAL's virtual paths, which read a file on disk: ``/vsisubfile/OFF_LEN,PATH``, ``/vsizip/``, ``/vsigzip/``,
  ``/vsitar/``, ``/vsi7z/``, ``/vsirar/`` (chained too, ``{…}`` included) name the archive or file they read;
* subdataset strings: ``GTIFF_DIR:1:x.tif``, ``HDF5:"x.h5"://ds``, ``NETCDF:"x.nc":var``, ``NITF_IM:0:x.ntf`` and
  any other ``DRIVER:…`` spelling name the container file;
* the files GDAL reads along with a raster input: its ENVI header (``x.hdr`` / ``x.img.hdr``), ``.aux.xml``,
  ``.ovr``, ``.msk``, world files, and whatever GDAL lists for the dataset (``GetFileList``: a VRT's sources);
  a folder given as an input (the authors' checkpoint folder, a folder of background scenes) counts with every
  file directly in it.

An output that does not exist yet is identified by its folder's device and inode and its name, so two
spellings of one new file still match. Network and in-memory paths (``/vsicurl/``, ``/vsimem/``) name no
file on this disk and are not compared (an output is always a local file).
"""
from __future__ import annotations

import os
import re
import socket
from typing import Iterable, List, Optional, Sequence, Tuple, Union

from ..errors import OutputError

# GDAL virtual file systems that read one file on disk (an archive, a compressed file, a slice of a file)
ARCHIVES = ("/vsizip/", "/vsigzip/", "/vsitar/", "/vsi7z/", "/vsirar/")
# nothing on this disk: never compared
NOT_ON_DISK = ("/vsimem/", "/vsicurl", "/vsis3", "/vsigs", "/vsiaz", "/vsiadls", "/vsioss", "/vsiswift",
               "/vsiwebhdfs", "/vsihdfs", "/vsistdin", "/vsistdout", "/vsicached?")
_SUBDATASET = re.compile(r"^([A-Za-z][A-Za-z0-9_]+):(.+)$", re.S)
# files a GDAL raster reads besides itself (suffixes appended to the whole name / replacing its extension)
SIDECARS_APPENDED = (".aux.xml", ".ovr", ".msk", ".aux", ".hdr")
SIDECARS_REPLACED = (".hdr", ".wld", ".tfw", ".tifw", ".aux", ".prj")
# files no GDAL driver reads: GetFileList is not asked about them
_NOT_GDAL = (".mat", ".npy", ".pt", ".pth", ".safetensors", ".json", ".jsonl", ".csv", ".md", ".html", ".htm")


def _expand(path: str) -> str:
    return os.path.expanduser(os.fspath(path).strip())


def physical(path) -> Optional[str]:
    """The absolute path of the file on this disk that ``path`` reads (see the module doc), symlinks resolved;
    None for a network or in-memory path."""
    if path is None:
        return None
    p = _expand(path)
    if not p:
        return None
    if "\0" in p:
        raise OutputError("a file name holds a NUL character; no file can have that name")
    if p.startswith(NOT_ON_DISK):
        return None
    if p.startswith("/vsisubfile/"):
        _, sep, rest = p[len("/vsisubfile/"):].partition(",")
        return physical(rest) if sep else None
    for prefix in ARCHIVES:
        if p.startswith(prefix):
            return _archive(p[len(prefix):])
    if p.startswith("/vsi"):
        return None  # a virtual file system we do not know: nothing to compare
    if not os.path.lexists(p):
        m = _SUBDATASET.match(p)
        if m and len(m.group(1)) > 1:  # not a Windows drive letter
            inner = _subdataset_file(m.group(2))
            if inner is not None:
                return physical(inner)
    return os.path.realpath(p)


def _archive(rest: str) -> Optional[str]:
    """The archive (or compressed file) a /vsizip/-style path reads: the first leading part that is a file."""
    if rest.startswith("{"):
        end = rest.find("}")
        return physical(rest[1:end]) if end > 0 else None
    parts = rest.split("/")
    for i in range(1, len(parts) + 1):
        cand = "/".join(parts[:i])
        if not cand or cand.endswith("/"):
            continue
        p = physical(cand) if cand.startswith("/vsi") else os.path.realpath(_expand(cand))
        if p is not None and os.path.isfile(p):
            return p
    return os.path.realpath(_expand(rest)) if not rest.startswith("/vsi") else None


def _subdataset_file(rest: str) -> Optional[str]:
    """The container in the part of a subdataset string after 'DRIVER:': a quoted path, or the run of
    ':'-separated pieces that names an existing file (GTIFF_DIR:1:x.tif, HDF5:x.h5://ds, NETCDF:x.nc:var)."""
    q = re.search(r'"([^"]+)"', rest)
    if q:
        return q.group(1)
    parts = rest.split(":")
    for i in range(len(parts)):
        for j in range(len(parts), i, -1):
            cand = ":".join(parts[i:j])
            if cand and (os.path.exists(_expand(cand)) or cand.startswith("/vsi")):
                return cand
    return None


def identity(path) -> Optional[tuple]:
    """A key equal for two paths exactly when they name one file: (device, inode) of an existing file, else
    (device, inode) of its folder and its name; None for what is not on this disk."""
    p = physical(path)
    if p is None:
        return None
    try:
        st = os.stat(p)
        return ("file", st.st_dev, st.st_ino)
    except OSError:
        pass
    folder, name = os.path.split(p)
    try:
        st = os.stat(folder)
        return ("new", st.st_dev, st.st_ino, name)
    except OSError:
        return ("path", p)


def _vrt_sources(p: str) -> List[str]:
    """The local files a VRT's XML names as sources (read as text: opening the VRT would open its sources)."""
    import xml.etree.ElementTree as ET

    try:
        if os.path.getsize(p) > 50 << 20:
            return []
        root = ET.parse(p).getroot()
    except (OSError, ET.ParseError):
        return []
    out = []
    for el in root.iter("SourceFilename"):
        name = (el.text or "").strip()
        if not name:
            continue
        if el.get("relativeToVRT", "0") == "1" and not name.startswith("/vsi"):
            name = os.path.join(os.path.dirname(p), name)
        out.append(name)
    return out


def _gdal_files(path: str) -> List[str]:
    """The files GDAL lists for a raster (GetFileList: the raster, its header, aux.xml, ...); a VRT's sources
    from its XML. Python pixel functions and network access stay off while GDAL looks."""
    p = physical(path)
    if p is None or not os.path.isfile(p) or p.lower().endswith(_NOT_GDAL):
        return []
    if p.lower().endswith(".vrt"):
        return _vrt_sources(p)
    try:
        from osgeo import gdal
    except ImportError:
        return []
    options = {"GDAL_VRT_ENABLE_PYTHON": "NO", "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".fers-no-network",
               "GDAL_HTTP_TIMEOUT": "1", "GDAL_HTTP_MAX_RETRY": "0"}
    saved = {k: gdal.GetConfigOption(k) for k in options}
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        for k, v in options.items():
            gdal.SetConfigOption(k, v)
        ds = gdal.OpenEx(_expand(path), gdal.OF_RASTER | gdal.OF_VECTOR)
        files = list(ds.GetFileList() or []) if ds is not None else []
        ds = None
    except Exception:  # a file GDAL cannot open lists nothing; the reader reports it later
        files = []
    finally:
        for k, v in saved.items():
            gdal.SetConfigOption(k, v)
        gdal.PopErrorHandler()
    return [f for f in files if isinstance(f, str)]


def input_files(path) -> List[Tuple[str, str]]:
    """[(file, how)]: the file an input names and the files read along with it (``how`` says how they belong to
    it, '' for the file itself). A folder stands for every file directly in it."""
    p = physical(path)
    if p is None:
        return []
    out = [(p, "")]
    if os.path.isdir(p):
        try:
            names = sorted(os.listdir(p))
        except OSError:
            names = []
        out += [(os.path.join(p, n), "a file in") for n in names
                if os.path.isfile(os.path.join(p, n))]
        return out
    stem = os.path.splitext(p)[0]
    side = [p + s for s in SIDECARS_APPENDED] + [stem + s for s in SIDECARS_REPLACED if stem + s != p]
    out += [(s, "a file GDAL reads along with") for s in side if os.path.isfile(s)]
    for f in _gdal_files(path):
        fp = physical(f)
        if fp and fp not in [o for o, _ in out]:
            out.append((fp, "a file GDAL reads for"))
    return out


Named = Union[str, Tuple[str, str]]


def _named(items: Iterable, default: str) -> List[Tuple[str, str]]:
    out = []
    for it in items:
        if it is None:
            continue
        label, path = (it if isinstance(it, tuple) else (default, it))
        if path is None or (isinstance(path, str) and not path.strip()):
            continue
        out.append((label, os.fspath(path)))
    return out


def _how(a: str, b: str) -> str:
    """How two spellings of one file differ, for the message."""
    ea, eb = _expand(a), _expand(b)
    if os.path.abspath(ea) == os.path.abspath(eb):
        return ""
    pa, pb = physical(a), physical(b)
    if pa is not None and pa == pb:
        if ea.startswith("/vsi") or eb.startswith("/vsi") or _SUBDATASET.match(ea) or _SUBDATASET.match(eb):
            return " (a GDAL path that reads it)"
        if os.path.realpath(ea) == os.path.abspath(ea) and os.path.realpath(eb) == os.path.abspath(eb):
            return " (another spelling)"
        return " (through a symbolic link)"
    return " (a hard link)"


def check_outputs(inputs: Sequence[Named] = (), outputs: Sequence[Named] = ()) -> List[Optional[str]]:
    """Refuse, before anything is read or written, when an output is one of the inputs (or a file read along
    with one) or two outputs are one file. ``inputs`` / ``outputs``: paths or (label, path) pairs; None
    entries are skipped. Returns the outputs' absolute paths (None where an output was None), in order."""
    ins = _named(inputs, "the input")
    outs = _named(outputs, "the output")
    seen_in = []
    for label, path in ins:
        for f, how in input_files(path):
            key = identity(f)
            if key is not None:
                seen_in.append((key, label, path, f, how))
    seen_out = []
    for label, path in outs:
        key = identity(path)
        if key is None or _expand(path).startswith("/vsi"):
            raise OutputError(f"{label} {path} is not a plain file on this computer: write it to a local file")
        for k, ilabel, ipath, f, how in seen_in:
            if k == key and how:
                raise OutputError(f"output path is the input itself: {label} {path} is {f}, {how} {ilabel} {ipath}; "
                                  "writing it would replace part of the input: choose another file name")
            if k == key:
                raise OutputError(f"output path is the input itself: {label} {path} and {ilabel} {ipath} are the "
                                  f"same file{_how(path, ipath)}; writing it would replace the input: choose "
                                  "another file name")
        for k, olabel, opath in seen_out:
            if k == key:
                raise OutputError(f"two outputs are the same file: {olabel} {opath} and {label} {path}"
                                  f"{_how(path, opath)}; give each its own file name")
        seen_out.append((key, label, path))
    return [None if p is None or (isinstance(p, str) and not p.strip()) else os.path.abspath(_expand(p))
            for p in (o[1] if isinstance(o, tuple) else o for o in outputs)]


# ---------------------------------------------------------------- temporary files of dead runs

HOST = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname() or "host")[:40]


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (one we may not signal runs too)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


def temp_prefix(name: str) -> str:
    """The start of the hidden temporary name ``atomic_path`` writes for the output ``name`` from this process:
    ``.NAME.PID@HOST.`` — the writer's process id and machine, so a later run can tell a dead run's leftovers
    from a live run's file."""
    return f".{name}.{os.getpid()}@{HOST}."


_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9_-]+)\.[^/]*\.partial")


def stale_temporaries(folder: str, name: str) -> List[str]:
    """Hidden temporary files that a run on this machine, now dead (killed, crashed, power cut), left while
    writing ``name`` in ``folder``; never another live run's, never another machine's (a shared folder)."""
    out = []
    try:
        entries = os.listdir(folder)
    except OSError:
        return out
    for e in entries:
        m = _TEMP.match(e)
        if m and m.group("name") == name and m.group("host") == HOST and not pid_alive(int(m.group("pid"))):
            out.append(os.path.join(folder, e))
    return out
