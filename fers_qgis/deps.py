"""The engine's Python packages for this QGIS: what is missing or too old, and installing it with pip.

No Qt widgets here (deps_dialog.py is the dialog), so the same code runs under the dialog, in the
Processing error text, and headless in tests/plugin/test_deps_install.py.

Mechanism (docs/INSTALL.md says why): QGIS's own Python runs ``pip install --target`` into a folder the
plugin manages per QGIS profile and Python version, ``<profile>/python/fers-deps/py<XY>`` (qpip's layout,
``<profile>/python/dependencies/<X.Y>``, in a folder of our own), which ``activate()`` puts at the front of
``sys.path`` when the plugin loads, before anything imports the engine. pip writes into a staging folder
beside it and the result is moved in only when pip succeeded: a cancelled or failed install leaves the
managed folder as it was. numpy is never put there when QGIS has one: GDAL's and QGIS's compiled modules
are built against QGIS's numpy, and a second numpy ahead of it on sys.path would break them.

torch: the CPU build by default. On Linux the public index's default torch wheel is the CUDA build
(several GB with its nvidia-* packages), so the CPU build comes from PyTorch's CPU index; on Windows and
macOS the public index's wheel is the CPU build already. A CUDA build only when the analyst asks for it and
nvidia-smi shows an NVIDIA GPU. Index, pin and extra pip arguments: QgsSettings ``fers/deps/*`` or the
environment (``FERS_PIP_INDEX_URL``, ``FERS_TORCH_SPEC``, ``FERS_PIP_EXTRA_ARGS``, ``FERS_PIP_CUDA_INDEX_URL``,
``FERS_DEPS_DIR``); the environment wins.
"""
import datetime
import functools
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import namedtuple

PY_TAG = f"py{sys.version_info.major}{sys.version_info.minor}"
LOG_NAME = "install.log"
STAGING_PREFIX = ".staging-"

# module, pip distribution, lowest version, needed to run (False: only for some inputs), Debian/Ubuntu package.
# Keep the lower bounds equal to engine/pyproject.toml's dependencies (tests/plugin/test_deps.py checks).
Requirement = namedtuple("Requirement", "module dist minimum required apt")
REQUIREMENTS = (
    # the lower bounds engine/pyproject.toml declares (the oldest the suite passes on: Debian 12, Debian 13's torch)
    Requirement("numpy", "numpy", "1.24", True, "python3-numpy"),
    Requirement("scipy", "scipy", "1.10", True, "python3-scipy"),
    Requirement("torch", "torch", "2.6", True, "python3-torch"),
    Requirement("h5py", "h5py", "3.7", False, "python3-h5py"),  # MATLAB v7.3 .mat files only
)
GDAL_ROUTE = "GDAL's Python bindings come with QGIS (Debian/Ubuntu: sudo apt install python3-gdal), never from pip"

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# PyTorch's CUDA indexes by the lowest driver CUDA version (nvidia-smi's "CUDA Version") each needs
CUDA_INDEXES = ((12.8, "https://download.pytorch.org/whl/cu128"), (12.6, "https://download.pytorch.org/whl/cu126"),
                (11.8, "https://download.pytorch.org/whl/cu118"))
# what the analyst downloads (torch 2.x wheels and their dependencies, rounded up)
SIZE_CPU_MB = 250
SIZE_CUDA_MB = 3000
DISK_CPU_GB = 1  # the CPU wheel unpacked (0.9 GB for torch 2.13 on Linux)
DISK_CUDA_GB = 6

# QgsSettings keys (under fers/deps/) and the environment variables that override them
SETTINGS = {"index_url": "FERS_PIP_INDEX_URL", "torch_spec": "FERS_TORCH_SPEC", "extra_args": "FERS_PIP_EXTRA_ARGS",
            "cuda_index_url": "FERS_PIP_CUDA_INDEX_URL", "folder": "FERS_DEPS_DIR"}
PIP_CONFIGURED = ("default", "pip")  # an index URL setting that means "pip's own configuration"

# one failed or cancelled install per session: the startup offer is not repeated after it (menu still works)
SESSION = {"offered": False, "failed": False}


# ---------------------------------------------------------------------------------------------- settings

def setting(key, default=""):
    """Environment first (tests, administrators), then QgsSettings fers/deps/<key>, then ``default``."""
    env = SETTINGS.get(key)
    if env and env in os.environ:
        return os.environ[env]
    try:
        from qgis.core import QgsSettings

        value = QgsSettings().value(f"fers/deps/{key}", None)
        if value not in (None, ""):
            return str(value)
    except Exception:  # plain Python (tests) or no QGIS application yet
        pass
    return default


def qgis_settings_dir():
    try:
        from qgis.core import QgsApplication

        d = QgsApplication.qgisSettingsDirPath()
        if d:
            return d
    except Exception:
        pass
    return None


def managed_dir():
    """``<QGIS profile>/python/fers-deps/py<XY>``, or FERS_DEPS_DIR / fers/deps/folder (taken as is)."""
    configured = setting("folder")
    if configured:
        return os.path.abspath(os.path.expanduser(configured))
    base = qgis_settings_dir() or os.path.join(os.path.expanduser("~"), ".fers")
    return os.path.normpath(os.path.join(os.path.abspath(base), "python", "fers-deps", PY_TAG))


def log_path(folder=None):
    return os.path.join(folder or managed_dir(), LOG_NAME)


def activate(folder=None):
    """Put the managed folder first on sys.path (and PYTHONPATH, for the processes QGIS starts, e.g. torchrun),
    once; True if it exists. Called when the plugin loads, before the engine is imported."""
    folder = folder or managed_dir()
    if not os.path.isdir(folder):
        return False
    if folder not in sys.path:
        sys.path.insert(0, folder)
        parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        if folder not in parts:
            os.environ["PYTHONPATH"] = os.pathsep.join([folder] + parts)
    importlib.invalidate_caches()
    return True


# ---------------------------------------------------------------------------------------------- what is there

def version_tuple(text):
    """'2.13.0+cpu' → (2, 13, 0); enough to compare release numbers without the packaging library."""
    out = []
    for part in re.split(r"[.+\-]", str(text)):
        m = re.match(r"\d+", part)
        if not m:
            break
        out.append(int(m.group()))
    return tuple(out)


def at_least(version, minimum):
    v, m = version_tuple(version), version_tuple(minimum)
    width = max(len(v), len(m))
    return v + (0,) * (width - len(v)) >= m + (0,) * (width - len(m))


Found = namedtuple("Found", "req version location state error")  # state: ok, missing, old, broken


def _locate(module):
    """(sys.path entry, version) of the module Python would import, without importing it."""
    for entry in sys.path:
        try:
            spec = importlib.machinery.PathFinder.find_spec(module, [entry or os.getcwd()])
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        version = None
        loaded = sys.modules.get(module)
        if loaded is not None:
            version = getattr(loaded, "__version__", None)
        if version is None:
            dist = {"osgeo": "GDAL"}.get(module, module)
            for d in importlib.metadata.distributions(path=[entry or os.getcwd()]):
                if (d.metadata.get("Name") or "").lower().replace("_", "-") == dist.lower():
                    version = d.version
                    break
        return entry, version
    return None, None


def check(import_modules=False):
    """[Found] for every requirement. Without ``import_modules`` nothing is imported (QGIS starts fast: torch
    takes seconds to import); with it each module is imported, so a broken install (a DLL that does not load,
    a wheel for another Python) shows as 'broken' with its error."""
    out = []
    for req in REQUIREMENTS:
        location, version = _locate(req.module)
        error = None
        if location is not None and import_modules:
            try:
                mod = importlib.import_module(req.module)
                version = getattr(mod, "__version__", version)
                location = os.path.dirname(os.path.dirname(os.path.abspath(mod.__file__)))
            except Exception as e:  # ImportError, OSError (DLL load failed), anything a broken wheel raises
                error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
        if location is None:
            state = "missing"
        elif error:
            state = "broken"
        elif version and not at_least(version, req.minimum):
            state = "old"
        else:
            state = "ok"
        out.append(Found(req, version, location, state, error))
    return out


def gdal_missing():
    return importlib.util.find_spec("osgeo") is None


def to_install(found):
    """The requirements pip should install: missing, too old or broken ones. numpy only when QGIS has none (see the
    module's docstring); an old numpy of QGIS's is reported, not replaced."""
    numpy_present = any(f.req.module == "numpy" and f.state in ("ok", "old") for f in found)
    out = []
    for f in found:
        if f.state == "ok":
            continue
        if f.req.module == "numpy" and numpy_present:
            continue
        out.append(f)
    return out


def blocking(found):
    """The required packages that keep FERS from running."""
    return [f for f in found if f.req.required and f.state != "ok"]


def describe(f):
    if f.state == "missing":
        return f"{f.req.dist} is missing"
    if f.state == "old":
        return f"{f.req.dist} {f.version} is older than {f.req.minimum}"
    if f.state == "broken":
        return f"{f.req.dist} does not load ({f.error})"
    return f"{f.req.dist} {f.version}"


# ---------------------------------------------------------------------------------------------- the machine

def qgis_python():
    """The interpreter that matches QGIS's embedded Python (sys.executable is QGIS itself there)."""
    v = sys.version_info
    exe = os.path.realpath(sys.executable or "")
    prefixes = tuple(os.path.realpath(p) + os.sep for p in (sys.exec_prefix, sys.base_exec_prefix))
    if os.path.basename(exe).lower().startswith("python") and exe.startswith(prefixes):
        return sys.executable  # a real interpreter of this installation (not, e.g., a pyenv shim on PATH)
    if os.name == "nt":  # OSGeo4W / standalone installers ship python.exe beside the QGIS Python
        for name in ("python3.exe", "python.exe"):
            cand = os.path.join(sys.exec_prefix, name)
            if os.path.exists(cand):
                return cand
        return "python3"
    for cand in (os.path.join(sys.base_exec_prefix, "bin", f"python{v.major}.{v.minor}"),
                 os.path.join(sys.base_exec_prefix, "bin", "python3"),
                 os.path.join(sys.exec_prefix, "bin", "python3")):  # macOS QGIS.app: Contents/MacOS/bin/python3
        if os.path.exists(cand):
            return cand
    return f"python{v.major}.{v.minor}"


def nvidia_gpu():
    """(GPU name, driver's CUDA version as float) from nvidia-smi, or None when there is no NVIDIA GPU/driver."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        names = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                               timeout=10, **_no_window())
        banner = subprocess.run([exe], capture_output=True, text=True, timeout=10, **_no_window())
    except (OSError, subprocess.SubprocessError):
        return None
    if names.returncode != 0 or not names.stdout.strip():
        return None
    m = re.search(r"CUDA Version:\s*([0-9]+\.[0-9]+)", banner.stdout)
    return names.stdout.strip().splitlines()[0].strip(), float(m.group(1)) if m else None


def cuda_index(driver_cuda):
    configured = setting("cuda_index_url")
    if configured:
        return configured
    for lowest, url in CUDA_INDEXES:
        if driver_cuda is None or driver_cuda >= lowest:
            return url
    return None  # a driver too old for every PyTorch CUDA build: CPU only


def os_release():
    info = {}
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                info[k] = v.strip('"')
    except OSError:
        pass
    return info


@functools.lru_cache(maxsize=None)
def apt_candidate(package):
    """The version apt would install, or None (not Debian-like, not in the archive, apt-cache absent); asked once a
    session (apt-cache takes a second or more)."""
    exe = shutil.which("apt-cache")
    if not exe:
        return None
    try:
        r = subprocess.run([exe, "policy", package], capture_output=True, text=True, timeout=15,
                           env=dict(os.environ, LC_ALL="C"))
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"Candidate:\s*(\S+)", r.stdout)
    if not m or m.group(1) == "(none)":
        return None
    return re.sub(r"^\d+:", "", m.group(1))  # epoch off: 1:1.24.2-1 → 1.24.2-1


def os_packages_route(found):
    """Debian/Ubuntu, QGIS on the system's Python: (apt command, note) for the packages the archive has in a
    version FERS can use, or None. The distribution's packages are the native route there: they match the
    system's numpy and GDAL, and apt keeps them up to date."""
    info = os_release()
    ids = {info.get("ID", "")} | set(info.get("ID_LIKE", "").split())
    if sys.platform != "linux" or not ids & {"debian", "ubuntu"}:
        return None
    if not os.path.realpath(qgis_python()).startswith("/usr/bin/python3"):
        return None
    packages, too_old = [], []
    for f in to_install(found) + [f for f in found if f.req.module == "numpy" and f.state == "old"]:
        candidate = apt_candidate(f.req.apt)
        if candidate and at_least(candidate, f.req.minimum):
            packages.append(f.req.apt)
        elif candidate:
            too_old.append(f"{f.req.apt} {candidate.split('-')[0].split('+')[0]} is older than FERS needs "
                           f"({f.req.minimum})")
    if not packages:
        return None
    return "sudo apt install " + " ".join(dict.fromkeys(packages)), "; ".join(too_old)


# ---------------------------------------------------------------------------------------------- pip

Step = namedtuple("Step", "title args packages")


def torch_spec():
    minimum = next(r.minimum for r in REQUIREMENTS if r.module == "torch")
    return setting("torch_spec", f"torch>={minimum}")


def torch_index(cuda=False):
    """The index torch comes from, None for pip's own configuration (pip.conf, PIP_INDEX_URL, the public index)."""
    configured = setting("index_url")
    if configured:
        return None if configured.strip().lower() in PIP_CONFIGURED else configured
    if cuda:
        gpu = nvidia_gpu()
        url = cuda_index(gpu[1]) if gpu else None
        if url:
            return url
        # no GPU, or a driver older than every CUDA build: the CPU build (never the public index's CUDA one)
    return TORCH_CPU_INDEX if sys.platform.startswith("linux") else None


def extra_args():
    return shlex.split(setting("extra_args"), posix=os.name != "nt")


def _spec(f):
    if f.req.module == "torch":
        return torch_spec()
    return f"{f.req.dist}>={f.req.minimum}"


def plan(found, target, cuda=False, python=None):
    """The pip commands that install what ``found`` lacks into ``target``: torch from its index, the rest from
    pip's configured index, each with QGIS's numpy pinned (constraints.txt written by ``run_install``)."""
    python = python or qgis_python()
    base = [python, "-m", "pip", "install", "--target", target, "--no-input", "--disable-pip-version-check",
            "--no-warn-script-location", "--progress-bar", "off"]
    wanted = to_install(found)
    torch = [f for f in wanted if f.req.module == "torch"]
    rest = [f for f in wanted if f.req.module != "torch"]
    steps = []
    if torch:
        index = torch_index(cuda)
        args = base + (["--index-url", index] if index else []) + extra_args() + [torch_spec()]
        title = "torch (" + ("CUDA build" if cuda else "CPU build") + (f" from {index}" if index else "") + ")"
        steps.append(Step(title, args, ["torch"]))
    if rest:
        names = [f.req.dist for f in rest]
        steps.append(Step(", ".join(names), base + extra_args() + [_spec(f) for f in rest], names))
    return steps


def _quote(arg):
    if os.name == "nt":
        return f'"{arg}"' if re.search(r'[\s<>|&^]', arg) else arg
    return shlex.quote(arg)


def manual_commands(found, cuda=False):
    """The commands an analyst can run by hand (a terminal, or OSGeo4W Shell on Windows) to install into the folder
    the plugin puts on sys.path; the apt route first where the distribution packages what is missing."""
    lines = []
    route = os_packages_route(found)
    if route:
        lines.append(route[0])
    for step in plan(found, managed_dir(), cuda=cuda):
        lines.append(" ".join(_quote(a) for a in step.args if a not in ("--no-input", "--progress-bar", "off",
                                                                         "--no-warn-script-location")))
    return lines


def proxy_env():
    """QGIS's proxy (Settings ▸ Options ▸ Network), when one is set there, as the variables pip reads."""
    try:
        from qgis.core import QgsSettings

        s = QgsSettings()
        if str(s.value("proxy/proxyEnabled", False)).lower() not in ("true", "1"):
            return {}
        kind = str(s.value("proxy/proxyType", "DefaultProxy"))
        host = str(s.value("proxy/proxyHost", "") or "")
        if kind not in ("HttpProxy", "HttpCachingProxy", "Socks5Proxy") or not host:
            return {}  # DefaultProxy: the system's settings, which pip reads from the environment itself
        port = str(s.value("proxy/proxyPort", "") or "")
        user = str(s.value("proxy/proxyUser", "") or "")
        password = str(s.value("proxy/proxyPassword", "") or "")
    except Exception:
        return {}
    from urllib.parse import quote

    auth = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user else ""
    scheme = "socks5" if kind == "Socks5Proxy" else "http"
    url = f"{scheme}://{auth}{host}{':' + port if port and port != '0' else ''}"
    return {"HTTPS_PROXY": url, "HTTP_PROXY": url, "https_proxy": url, "http_proxy": url}


def redact(text):
    return re.sub(r"(://)[^/@\s:]+:[^/@\s]+@", r"\1***:***@", text)


def _no_window():
    if os.name == "nt":  # no console window flashing up from QGIS
        return {"creationflags": getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {}


# ---------------------------------------------------------------------------------------------- pip's failures

FAILURES = (
    ("proxy", re.compile(r"ProxyError|Cannot connect to proxy|407 Proxy Authentication|Tunnel connection failed",
                         re.I),
     "pip could not get through the proxy. Set the proxy in QGIS (Settings ▸ Options ▸ Network: FERS passes it "
     "to pip) or in pip's configuration, or run the commands below where the network allows it."),
    ("certificate", re.compile(r"CERTIFICATE_VERIFY_FAILED|SSLError|SSL: ", re.I),
     "pip could not verify the package server's certificate (a network that inspects HTTPS traffic?). Give pip "
     "your organisation's certificate (pip config set global.cert FILE), or run the commands below."),
    ("offline", re.compile(r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
                           r"resolution|Name or service not known|Network is unreachable|getaddrinfo failed|"
                           r"ConnectTimeoutError|Max retries exceeded|Read timed out|Connection refused|"
                           r"No route to host|nodename nor servname", re.I),
     "pip could not reach the package index: this machine looks offline (or behind a proxy QGIS does not know "
     "of). Run the commands below where there is a connection, or download the wheels elsewhere and install "
     "them with --no-index --find-links FOLDER."),
    ("space", re.compile(r"No space left on device|Errno 28", re.I),
     "the disk is full: torch needs about 1 GB in the managed folder and as much again while installing."),
    ("nopip", re.compile(r"No module named pip", re.I),
     "QGIS's Python has no pip. Debian/Ubuntu: sudo apt install python3-pip; elsewhere: "
     "python -m ensurepip --user, then try again."),
    ("nobuild", re.compile(r"No matching distribution found|Could not find a version that satisfies", re.I),
     "the index has no build of these packages for this Python and platform. Check the pin (fers/deps/torch_spec, "
     "FERS_TORCH_SPEC) and the index (fers/deps/index_url, FERS_PIP_INDEX_URL)."),
)


def diagnose(output):
    """(kind, one message) for pip's output of a failed run; the first kind that matches, in FAILURES' order (a
    connection error also ends in 'No matching distribution found')."""
    for kind, pattern, message in FAILURES:
        if pattern.search(output):
            return kind, message
    lines = [l for l in output.splitlines() if l.strip().startswith("ERROR")]
    return "pip", "pip failed: " + (lines[-1].strip() if lines else "see the log")


def _index_of(args, env):
    if "--index-url" in args:
        return args[args.index("--index-url") + 1]
    return env.get("PIP_INDEX_URL", "").split()[0] if env.get("PIP_INDEX_URL") else "https://pypi.org/simple"


def probe(url, env, timeout=8):
    """None when ``url`` answers (any HTTP status), else why not: pip says only 'from versions: none' when an index
    cannot be reached and retries are off, so a failed install asks the index itself, through the same proxy."""
    import urllib.error
    import urllib.request

    if not url.startswith(("http://", "https://")):
        return None
    proxies = {k: env[v] for k, v in (("https", "HTTPS_PROXY"), ("http", "HTTP_PROXY")) if env.get(v)}
    proxies.update({k: env[v] for k, v in (("https", "https_proxy"), ("http", "http_proxy")) if env.get(v)})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))
    try:
        opener.open(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return None
    except Exception as e:  # URLError, socket timeout, SSL errors
        return f"{url}: {getattr(e, 'reason', e)}"
    return None


# ---------------------------------------------------------------------------------------------- the install

Result = namedtuple("Result", "ok cancelled message kind folder log restart")


class Cancelled(Exception):
    pass


def _prune(staging, keep_out):
    """Remove from ``staging`` the distributions named in ``keep_out`` (numpy that pip pulled in as a dependency while
    QGIS has one: the module's docstring says why), following their RECORD."""
    for info in os.listdir(staging):
        if not info.endswith(".dist-info"):
            continue
        name = info[:-len(".dist-info")].rsplit("-", 1)[0].lower().replace("_", "-")
        if name not in keep_out:
            continue
        record = os.path.join(staging, info, "RECORD")
        tops = set()
        if os.path.exists(record):
            with open(record, encoding="utf-8") as f:
                for line in f:
                    rel = line.split(",", 1)[0]
                    if rel and not rel.startswith(".."):
                        tops.add(rel.replace("\\", "/").split("/", 1)[0])
        tops.add(info)
        for top in tops:
            path = os.path.join(staging, top)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.exists(path):
                os.remove(path)


def _dist_names(folder):
    out = {}
    if os.path.isdir(folder):
        for entry in os.listdir(folder):
            if entry.endswith(".dist-info"):
                out[entry[:-len(".dist-info")].rsplit("-", 1)[0].lower().replace("_", "-")] = entry
    return out


def _merge(staging, folder):
    """Move what pip wrote in ``staging`` into ``folder``: an older version of a distribution goes first (its files by
    its RECORD), then each top-level entry is replaced."""
    old = _dist_names(folder)
    for name in _dist_names(staging):
        if name in old:
            _prune(folder, {name})
    for entry in os.listdir(staging):
        src, dst = os.path.join(staging, entry), os.path.join(folder, entry)
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        elif os.path.lexists(dst):
            os.remove(dst)
        os.replace(src, dst)


def run_install(found=None, cuda=False, folder=None, on_output=None, cancelled=None, python=None):
    """Install what ``found`` (default: ``check()``) lacks into the managed folder; returns a Result.

    ``on_output(line)`` receives pip's output as it comes, ``cancelled()`` is polled every 0.2 s: when it returns
    True, pip is killed and the managed folder is left as it was. Everything goes to <folder>/install.log too."""
    found = check() if found is None else found
    folder = folder or managed_dir()
    emit = on_output or (lambda line: None)
    cancelled = cancelled or (lambda: False)
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=os.path.dirname(folder))
    log = open(log_path(folder), "a", encoding="utf-8")
    output = []

    def say(line):
        line = redact(line.rstrip("\n"))
        output.append(line)
        log.write(line + "\n")
        log.flush()
        emit(line)

    env = dict(os.environ)
    for k, v in proxy_env().items():
        env.setdefault(k, v)
    env["PYTHONNOUSERSITE"] = "1"  # pip decides from QGIS's packages, not from ~/.local's
    env["PYTHONPATH"] = os.pathsep.join(p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                        if p and os.path.abspath(p) != os.path.abspath(folder))
    env.setdefault("PYTHONIOENCODING", "utf-8")
    numpy = next((f for f in found if f.req.module == "numpy" and f.state in ("ok", "old")), None)
    steps = plan(found, staging, cuda=cuda, python=python)
    if numpy and numpy.version:
        constraints = staging + ".constraints.txt"
        with open(constraints, "w", encoding="utf-8") as f:
            f.write(f"numpy=={numpy.version}\n")  # scipy/h5py built for the numpy QGIS will import
        steps = [Step(s.title, s.args[:4] + ["--constraint", constraints] + s.args[4:], s.packages)
                 for s in steps]
    else:
        constraints = None
    say(f"==== {datetime.datetime.now().isoformat(timespec='seconds')} FERS: installing into {folder}")
    say(f"QGIS's Python {sys.version.split()[0]} ({python or qgis_python()}), {platform.platform()}")
    if any(k in env for k in ("HTTPS_PROXY", "https_proxy")):
        say(f"proxy: {redact(env.get('HTTPS_PROXY') or env.get('https_proxy'))}")
    try:
        for i, step in enumerate(steps, 1):
            say(f"---- step {i}/{len(steps)}: {step.title}")
            say("$ " + " ".join(_quote(a) for a in step.args))
            code = _run_pip(step.args, env, say, cancelled)
            if code != 0:
                kind, message = diagnose("\n".join(output))
                if kind in ("nobuild", "pip"):
                    why = probe(_index_of(step.args, env), env)
                    if why:
                        say(f"the index does not answer: {why}")
                        kind, message = diagnose(why)
                        if kind != "certificate":
                            kind = "proxy" if any(env.get(k) for k in ("HTTPS_PROXY", "https_proxy")) else "offline"
                            message = next(m for k, _, m in FAILURES if k == kind)
                say(f"==== failed ({kind}): {message}")
                SESSION["failed"] = True
                return Result(False, False, message, kind, folder, log_path(folder), False)
        if numpy:
            _prune(staging, {"numpy"})
        _merge(staging, folder)
    except Cancelled:
        say("==== cancelled: pip was stopped; the managed folder is as it was")
        SESSION["failed"] = True
        return Result(False, True, "Cancelled: nothing was installed.", "cancelled", folder, log_path(folder), False)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if constraints and os.path.exists(constraints):
            os.remove(constraints)
        log.close()
    return _after_install(found, folder)


def _run_pip(args, env, say, cancelled):
    popen = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                 **_no_window())
    if os.name != "nt":
        popen["start_new_session"] = True  # pip and whatever it starts (build backends) are killed together
    try:
        proc = subprocess.Popen(args, **popen)
    except OSError as e:
        say(f"ERROR: could not start {args[0]}: {e} (No module named pip?)")
        return 1

    def pump():
        for raw in iter(proc.stdout.readline, b""):
            say(raw.decode("utf-8", "replace"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    while True:
        try:
            code = proc.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            if cancelled():
                _kill(proc)
                reader.join(5)
                raise Cancelled()
    reader.join(10)
    return code


def _kill(proc):
    try:
        if os.name != "nt":
            import signal

            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (OSError, ProcessLookupError):
        pass
    proc.wait()


def _after_install(before, folder):
    """Try the new packages in this process; a restart only when an older copy of one was already imported."""
    activate(folder)
    stale = [f.req.module for f in before if f.state != "ok" and f.req.module in sys.modules]
    with open(log_path(folder), "a", encoding="utf-8") as log:
        if stale:
            msg = (f"Installed. {', '.join(stale)} had already been loaded by QGIS in an older version: restart QGIS "
                   "once to use the new one.")
            log.write(f"==== {msg}\n")
            return Result(True, False, msg, "restart", folder, log_path(folder), True)
        now = check(import_modules=True)
        bad = blocking(now)
        if bad:
            msg = "Installed, but " + "; ".join(describe(f) for f in bad) + "."
            log.write(f"==== {msg}\n")
            SESSION["failed"] = True
            return Result(False, False, msg, "import", folder, log_path(folder), False)
        versions = ", ".join(f"{f.req.dist} {f.version}" for f in now if f.state == "ok")
        log.write(f"==== done: {versions}\n")
    SESSION["failed"] = False
    return Result(True, False, f"Installed: FERS can run now ({versions}).", "ok", folder, log_path(folder), False)


def clean_staging(folder=None, older_than_s=6 * 3600):
    """Staging folders a crashed QGIS left behind (a cancelled run removes its own); not a recent one, which may be
    another QGIS's install in progress on the same profile."""
    parent = os.path.dirname(folder or managed_dir())
    if os.path.isdir(parent):
        for entry in os.listdir(parent):
            path = os.path.join(parent, entry)
            if entry.startswith(STAGING_PREFIX) and time.time() - os.path.getmtime(path) > older_than_s:
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)


# ---------------------------------------------------------------------------------------------- messages

def missing_message(found=None):
    """One message for the Processing error: what is missing, the dialog route and the manual commands."""
    found = check(import_modules=True) if found is None else found
    bad = blocking(found)
    parts = []
    if bad:
        parts.append(f"FERS cannot run: QGIS's Python ({sys.version.split()[0]}): "
                     + "; ".join(describe(f) for f in bad) + ".")
        parts.append("Install from QGIS: Plugins ▸ FERS ▸ Install dependencies… (into "
                     f"{managed_dir()}; nothing of QGIS's own is changed).")
        commands = manual_commands(found)
        if commands:
            route = os_packages_route(found)
            if route:
                parts.append(f"Or with the distribution's packages: {commands[0]}"
                             + (f" ({route[1]})" if route[1] else "")
                             + (" — or with pip: " + " && ".join(commands[1:]) if commands[1:] else "") + ".")
            else:
                parts.append("Or by hand: " + " && ".join(commands) + ".")
        parts.append("Then run the algorithm again (restart QGIS if it says so).")
    if gdal_missing():
        parts.append(GDAL_ROUTE + ".")
    return " ".join(parts)


def log_tail(lines=40, folder=None):
    try:
        with open(log_path(folder), encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no install log)\n"


def diagnostics_text():
    """What a bug report needs, as plain text for the clipboard: versions, devices, folders, the last install log."""
    rows = []

    def add(k, v):
        rows.append(f"{k}: {v}")

    try:
        from qgis.core import Qgis

        add("QGIS", f"{Qgis.QGIS_VERSION} ({getattr(Qgis, 'QGIS_DEV_VERSION', '')})")
    except Exception as e:
        add("QGIS", f"not importable ({e})")
    try:
        from qgis.PyQt.QtCore import PYQT_VERSION_STR, QT_VERSION_STR

        add("Qt", f"{QT_VERSION_STR} (PyQt {PYQT_VERSION_STR})")
    except Exception:
        add("Qt", "?")
    add("Python", f"{sys.version.split()[0]} ({qgis_python()}; sys.executable {sys.executable})")
    rel = os_release().get("PRETTY_NAME")
    add("OS", f"{platform.platform()}" + (f" ({rel})" if rel else ""))
    add("CPU", f"{platform.machine()}, {os.cpu_count()} cores")
    for f in check(import_modules=True):
        add(f.req.dist, f"{f.version or '-'} [{f.state}]" + (f" at {f.location}" if f.location else "")
            + (f" ({f.error})" if f.error else ""))
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "cuda"):
        try:
            cuda = torch.cuda.is_available()
            add("CUDA", f"available: {cuda}; torch built for CUDA {torch.version.cuda}"
                + (f"; device 0: {torch.cuda.get_device_name(0)}" if cuda else ""))
        except Exception as e:
            add("CUDA", f"? ({e})")
    gpu = nvidia_gpu()
    add("nvidia-smi", f"{gpu[0]}, driver CUDA {gpu[1]}" if gpu else "no NVIDIA GPU/driver found")
    try:
        from osgeo import gdal

        add("GDAL", gdal.__version__)
    except Exception as e:
        add("GDAL", f"not importable ({e})")
    try:
        import configparser

        from .paths import ENGINE, PLUGIN_DIR, bundled_models, ensure_engine_on_path, models_dir

        ensure_engine_on_path()

        cfg = configparser.ConfigParser()
        cfg.read(os.path.join(PLUGIN_DIR, "metadata.txt"), encoding="utf-8")
        add("FERS plugin", f"{cfg.get('general', 'version', fallback='?')} at {PLUGIN_DIR}")
        try:
            import fers

            add("FERS engine", f"{fers.__version__} at {os.path.dirname(os.path.abspath(fers.__file__))}")
        except Exception as e:
            add("FERS engine", f"not importable ({e}); engine folder {ENGINE}")
        models = bundled_models()
        add("bundled models", ", ".join(f"{m.name} ({os.path.getsize(m.path) // 1024} KB)" if os.path.isfile(m.path)
                                        else m.name for m in models) if models else f"none in {models_dir()}")
    except Exception as e:
        add("FERS plugin", f"? ({e})")
    folder = managed_dir()
    add("managed folder", f"{folder} ({'on sys.path' if folder in sys.path else 'not on sys.path'}; "
        f"{'exists' if os.path.isdir(folder) else 'absent'})")
    add("installed there", ", ".join(sorted(_dist_names(folder))) or "-")
    add("pip settings", f"torch index {torch_index() or 'pip configuration'}; torch spec {torch_spec()}; "
        f"extra args {setting('extra_args') or '-'}")
    add("QGIS proxy", "set" if proxy_env() else "none")
    return "FERS diagnostics\n" + "\n".join(rows) + "\n\nlast install log:\n" + log_tail()


def main(argv=None):
    """``python -m fers_qgis.deps [check|install|commands|diagnostics]``: the same logic without the dialog."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m fers_qgis.deps")
    ap.add_argument("action", choices=("check", "install", "commands", "diagnostics"))
    ap.add_argument("--cuda", action="store_true")
    a = ap.parse_args(argv)
    activate()
    if a.action == "check":
        found = check(import_modules=True)
        for f in found:
            print(f"{f.req.dist}: {describe(f)} [{f.state}]")
        return 1 if blocking(found) else 0
    if a.action == "commands":
        print("\n".join(manual_commands(check(), cuda=a.cuda)))
        return 0
    if a.action == "diagnostics":
        print(diagnostics_text())
        return 0
    found = check(import_modules=True)
    if not to_install(found):
        print("nothing to install")
        return 0
    t0 = time.time()
    r = run_install(found, cuda=a.cuda, on_output=print)
    print(f"{r.message} ({time.time() - t0:.0f} s; log {r.log})")
    if not r.ok:
        print("\n".join(manual_commands(found, cuda=a.cuda)))
    return 0 if r.ok else 1


if __name__ == "__main__":
    sys.exit(main())
