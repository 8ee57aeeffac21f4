"""Dependencies from inside QGIS (fers_qgis/deps.py): the pip commands, pip's real failures, Cancel, QGIS's proxy,
the missing-torch Processing error through real qgis_process, diagnostics. Seconds each; the full install of the
local torch wheel is tests/plugin/test_deps_install.py (make test-install)."""
import os
import re
import subprocess
import sys
import tempfile

import pytest

from conftest import REPO, VENV_BIN

sys.path.insert(0, REPO)
from fers_qgis import deps  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"
SAMPLE = os.path.join(REPO, "resources", "sample", "abu-airport-2.tif")


def clean_env(**extra):
    """The environment of a QGIS started from the desktop: no venv, no PYTHONPATH, no user site, no FERS_* settings;
    pip's own configuration (PIP_*) stays, as it would for QGIS."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME") and not k.startswith("FERS_PIP")
           and k not in ("FERS_TORCH_SPEC", "FERS_DEPS_DIR")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    env["PYTHONNOUSERSITE"] = "1"
    env.update(extra)
    return env


def system_python(code, **env):
    return subprocess.run([SYSTEM_PYTHON, "-s", "-c", code], capture_output=True, text=True,
                          env=clean_env(PYTHONPATH=REPO, **env), stdin=subprocess.DEVNULL, timeout=300)


def torch_hidden():
    return system_python("import torch").returncode != 0


@pytest.fixture
def settings(monkeypatch):
    for env in deps.SETTINGS.values():
        monkeypatch.delenv(env, raising=False)
    return monkeypatch


def missing_torch():
    return [deps.Found(r, None if r.module == "torch" else "9.9", None if r.module == "torch" else "/x",
                       "missing" if r.module == "torch" else "ok", None) for r in deps.REQUIREMENTS]


def test_torch_comes_as_the_cpu_build_from_pytorchs_cpu_index_on_linux_into_the_managed_folder(settings, tmp_path):
    settings.setattr(sys, "platform", "linux")
    steps = deps.plan(missing_torch(), str(tmp_path), python="/usr/bin/python3")
    assert len(steps) == 1
    args = steps[0].args
    assert args[:4] == ["/usr/bin/python3", "-m", "pip", "install"]
    assert args[args.index("--target") + 1] == str(tmp_path)
    assert args[args.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    assert args[-1] == "torch>=2.6"
    assert not {"--user", "--break-system-packages", "--prefix"} & set(args)
    # Windows and macOS: the public index's torch is the CPU build already; pip's own index configuration stays
    settings.setattr(sys, "platform", "win32")
    assert "--index-url" not in deps.plan(missing_torch(), str(tmp_path))[0].args


def test_index_pin_and_pip_arguments_come_from_the_environment(settings, tmp_path):
    settings.setenv("FERS_PIP_INDEX_URL", "default")
    settings.setenv("FERS_TORCH_SPEC", "torch==2.13.0")
    settings.setenv("FERS_PIP_EXTRA_ARGS", "--retries 0 --find-links /opt/wheels")
    args = deps.plan(missing_torch(), str(tmp_path))[0].args
    assert "--index-url" not in args and args[-5:] == ["--retries", "0", "--find-links", "/opt/wheels",
                                                       "torch==2.13.0"]
    settings.setenv("FERS_PIP_INDEX_URL", "https://mirror.example/simple")
    args = deps.plan(missing_torch(), str(tmp_path))[0].args
    assert args[args.index("--index-url") + 1] == "https://mirror.example/simple"


def test_qgis_numpy_is_never_replaced_and_the_rest_come_from_pips_index(settings, tmp_path):
    reqs = {r.module: r for r in deps.REQUIREMENTS}
    found = [deps.Found(reqs["numpy"], "1.19.0", "/usr/lib/python3/dist-packages", "old", None),
             deps.Found(reqs["scipy"], None, None, "missing", None),
             deps.Found(reqs["torch"], "2.13.0", "/x", "ok", None),
             deps.Found(reqs["h5py"], "2.10", "/x", "old", None)]
    assert [f.req.module for f in deps.to_install(found)] == ["scipy", "h5py"]
    steps = deps.plan(found, str(tmp_path))
    assert len(steps) == 1 and steps[0].args[-2:] == ["scipy>=1.10", "h5py>=3.7"]
    assert "--index-url" not in steps[0].args
    assert deps.at_least("2.13.0+cpu", "2.1") and not deps.at_least("1.13.1", "2.1") and deps.at_least("2.1", "2.1.0")


def test_lower_bounds_agree_with_the_engines_declared_dependencies():
    import tomllib

    with open(os.path.join(REPO, "engine", "pyproject.toml"), "rb") as f:
        declared = tomllib.load(f)["project"].get("dependencies", [])
    bounds = {m.group(1).lower(): m.group(2) for m in (re.match(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)", d)
                                                       for d in declared) if m}
    if not bounds:
        pytest.skip("engine/pyproject.toml declares no lower bounds yet")
    for req in deps.REQUIREMENTS:
        if req.dist in bounds:
            assert deps.version_tuple(bounds[req.dist]) == deps.version_tuple(req.minimum), req.dist


def test_an_unreachable_index_is_one_offline_message_with_the_commands_and_leaves_the_folder_as_it_was(tmp_path):
    if not torch_hidden():
        pytest.skip("QGIS's Python imports torch here (a distribution's python3-torch): this path needs it missing")
    folder = tmp_path / "fers-deps" / "py311"
    folder.mkdir(parents=True)
    (folder / "keep.txt").write_text("installed before")
    # pip's configuration files and find-links off, so the only place to look is the dead index (port 9: discard)
    r = system_python(
        "from fers_qgis import deps; r = deps.run_install(); print('RESULT', r.ok, r.kind); print(r.message); "
        "print('\\n'.join(deps.manual_commands(deps.check())))",
        FERS_DEPS_DIR=str(folder), FERS_PIP_INDEX_URL="http://127.0.0.1:9/simple", FERS_TORCH_SPEC="torch==2.13.0",
        FERS_PIP_EXTRA_ARGS="--retries 0 --timeout 3 --no-cache-dir", PIP_CONFIG_FILE=os.devnull, PIP_FIND_LINKS="",
        PIP_NO_INDEX="")
    assert torch_hidden()
    assert "RESULT False offline" in r.stdout, r.stdout + r.stderr
    assert "looks offline" in r.stdout
    assert f"-m pip install --target {folder} --disable-pip-version-check --index-url " \
           "http://127.0.0.1:9/simple" in r.stdout
    assert sorted(os.listdir(folder)) == ["install.log", "keep.txt"]
    assert not [e for e in os.listdir(folder.parent) if e.startswith(deps.STAGING_PREFIX)]
    log = (folder / "install.log").read_text()
    assert "Connection refused" in log or "NewConnectionError" in log
    assert "==== failed (offline)" in log


QGIS_PROXY = """
import os, sys
from qgis.core import QgsApplication, QgsSettings
app = QgsApplication([], False); app.initQgis()
s = QgsSettings()
s.setValue("proxy/proxyEnabled", True); s.setValue("proxy/proxyType", "HttpProxy")
s.setValue("proxy/proxyHost", "127.0.0.1"); s.setValue("proxy/proxyPort", "9")
s.setValue("proxy/proxyUser", "ana"); s.setValue("proxy/proxyPassword", "s3cret")
from fers_qgis import deps
print("ENV", deps.proxy_env()["HTTPS_PROXY"])
r = deps.run_install()
print("RESULT", r.ok, r.kind)
print(open(r.log).read())
"""


def test_qgis_proxy_settings_reach_pip_and_a_dead_proxy_is_named_as_such(tmp_path):
    if not torch_hidden():
        pytest.skip("QGIS's Python imports torch here (a distribution's python3-torch): this path needs it missing")
    folder = tmp_path / "deps"
    # one retry: pip then reports the proxy's failure in its own words, as it does with its default five
    env = dict(FERS_DEPS_DIR=str(folder), FERS_PIP_INDEX_URL="https://pypi.org/simple", FERS_TORCH_SPEC="torch==2.13.0",
               FERS_PIP_EXTRA_ARGS="--retries 1 --timeout 3 --no-cache-dir", PIP_CONFIG_FILE=os.devnull,
               PIP_FIND_LINKS="", QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"))
    r = subprocess.run([SYSTEM_PYTHON, "-s", "-c", QGIS_PROXY], capture_output=True, text=True, timeout=300,
                       env={k: v for k, v in clean_env(PYTHONPATH=REPO, **env).items()
                            if k.lower() not in ("https_proxy", "http_proxy", "all_proxy")})
    assert "ENV http://ana:s3cret@127.0.0.1:9" in r.stdout, r.stdout + r.stderr
    assert "RESULT False proxy" in r.stdout, r.stdout
    assert "ProxyError" in r.stdout or "Cannot connect to proxy" in r.stdout
    assert "s3cret" not in r.stdout.split("RESULT", 1)[1]  # the log never holds the password
    assert "torch" not in os.listdir(folder)


def test_cancel_kills_pip_and_installs_nothing(tmp_path):
    if not torch_hidden():
        pytest.skip("QGIS's Python imports torch here (a distribution's python3-torch): this path needs it missing")
    folder = tmp_path / "deps"
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    code = ("import time\nfrom fers_qgis import deps\nseen = []\n"
            "t = time.time()\n"
            # cancelled once pip itself says it is at the torch wheel
            "at = lambda: [l for l in seen if 'torch' in l and l.startswith(('Processing', 'Collecting', "
            "'Downloading'))]\n"
            "r = deps.run_install(on_output=seen.append, cancelled=lambda: at() or time.time() - t > 60)\n"
            "print('RESULT', r.ok, r.cancelled, r.kind, round(time.time() - t))\n"
            "print('PIP', at()[:1])\n")
    r = system_python(code, FERS_DEPS_DIR=str(folder), FERS_PIP_INDEX_URL="default", FERS_TORCH_SPEC="torch==2.13.0")
    assert "RESULT False True cancelled" in r.stdout, r.stdout + r.stderr
    assert sorted(os.listdir(folder)) == ["install.log", "keep.txt"]
    assert not [e for e in os.listdir(tmp_path) if e.startswith(deps.STAGING_PREFIX)]
    assert "==== cancelled" in (folder / "install.log").read_text()
    assert re.search(r"PIP \['(Processing|Collecting|Downloading) \S*torch", r.stdout), r.stdout  # pip was at work
    assert subprocess.run(["pgrep", "-f", "--", f"--target {tmp_path}"]).returncode == 1  # and is gone


def fresh_profile(root):
    """A QGIS profile with the plugin enabled as 'Install from ZIP' leaves it (here: a link to this checkout)."""
    plugins = os.path.join(root, "profile", "profiles", "default", "python", "plugins")
    os.makedirs(plugins)
    os.symlink(os.path.join(REPO, "fers_qgis"), os.path.join(plugins, "fers_qgis"))
    ini = os.path.join(root, "profile", "profiles", "default", "QGIS")
    os.makedirs(ini)
    with open(os.path.join(ini, "QGIS3.ini"), "w") as f:
        f.write("[PythonPlugins]\nfers_qgis=true\n")
    return os.path.join(root, "profile")


def test_missing_torch_processing_error_names_it_the_dialog_and_the_command_for_this_platform(tmp_path):
    if not torch_hidden():
        pytest.skip("torch is installed for the system's Python here")
    profile = fresh_profile(str(tmp_path))
    out = tmp_path / "map.tif"
    r = subprocess.run(["/usr/bin/qgis_process.bin", "run", "fers:detect", "--", f"INPUT={SAMPLE}", f"OUTPUT={out}"],
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                       env=clean_env(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=profile,
                                     XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")))
    assert r.returncode != 0 and not out.exists()
    error = [l for l in (r.stdout + r.stderr).splitlines() if l.startswith("ERROR:")][0]
    folder = os.path.join(profile, "profiles", "default", "python", "fers-deps", deps.PY_TAG)
    assert "torch is missing" in error
    assert "Plugins ▸ FERS ▸ Install dependencies…" in error
    assert re.search(r"/usr/bin/python3(\.\d+)? -m pip install --target " + re.escape(folder) + " ", error), error
    assert "--index-url https://download.pytorch.org/whl/cpu 'torch>=2.6'" in error  # the CPU build, not GBs of CUDA
    assert "--break-system-packages" not in error and "--user" not in error
    # Debian 12 packages torch 1.13, older than FERS needs: no apt route for it (Debian 13's 2.6 would be offered)
    candidate = deps.apt_candidate("python3-torch")
    if candidate and not deps.at_least(candidate, "2.6"):
        assert "apt install" not in error


def test_the_apt_route_comes_first_where_the_distribution_packages_a_new_enough_version(settings):
    if not os.path.exists("/usr/bin/apt-cache") or "debian" not in open("/etc/os-release").read():
        pytest.skip("not Debian")
    settings.setattr(deps, "qgis_python", lambda: "/usr/bin/python3")
    reqs = {r.module: r for r in deps.REQUIREMENTS}
    found = [deps.Found(reqs["numpy"], "1.24.2", "/usr", "ok", None),
             deps.Found(reqs["scipy"], None, None, "missing", None),
             deps.Found(reqs["torch"], None, None, "missing", None),
             deps.Found(reqs["h5py"], "3.7", "/usr", "ok", None)]
    route = deps.os_packages_route(found)
    torch_candidate = deps.apt_candidate("python3-torch")
    assert route[0].startswith("sudo apt install python3-scipy")
    assert ("python3-torch" in route[0]) == deps.at_least(torch_candidate, "2.6")
    assert deps.manual_commands(found)[0] == route[0]


def test_copy_diagnostics_says_what_a_bug_report_needs():
    r = subprocess.run([SYSTEM_PYTHON, "-s", "-m", "fers_qgis.deps", "diagnostics"], capture_output=True, text=True,
                       env=clean_env(PYTHONPATH=REPO, FERS_DEPS_DIR=tempfile.gettempdir() + "/fers-deps-absent"),
                       timeout=120)
    assert r.returncode == 0, r.stderr
    text = r.stdout
    for key in ("QGIS: 3.", "Qt: 5.", "Python: 3.", "OS: Linux", "numpy: ", "scipy: ", "GDAL: 3.", "FERS plugin: 0.",
                "FERS engine: ", "bundled models: fers-aviris-100", "managed folder: ", "last install log:"):
        assert key in text, key
    if torch_hidden():
        assert "torch: - [missing]" in text
    # with torch (the venv), its version and CUDA's state
    v = subprocess.run([os.path.join(VENV_BIN, "python"), "-m", "fers_qgis.deps", "diagnostics"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert re.search(r"torch: 2\.\d+\.\d+\S* \[ok\]", v.stdout), v.stdout + v.stderr
    assert "CUDA: available: " in v.stdout


DIALOG = """
import os, sys, time
from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QApplication
app = QgsApplication([], True); app.initQgis()
from fers_qgis.deps_dialog import DepsDialog
d = DepsDialog(startup=True)
d.show()
rows = [[d.table.item(r, c).text() for c in range(4)] for r in range(d.table.rowCount())]
print("ROWS", rows)
print("INSTALL", d.install_button.isEnabled(), "CUDA", d.cuda.isEnabled())
print("WHERE", d.where.text())
d.install_button.click()
t = time.time()
while d.result is None and time.time() - t < 120:
    app.processEvents(); time.sleep(0.05)
print("RESULT", d.result.ok, d.result.kind)
print("STATUS", d.status.text())
print("LINES", d.output.toPlainText().count(chr(10)))
d.copy_diagnostics()
print("CLIP", QApplication.clipboard().text().splitlines()[0])
"""


def test_the_dialog_shows_what_is_missing_runs_pip_and_says_a_failure_with_the_commands(tmp_path):
    if not torch_hidden():
        pytest.skip("torch is installed for the system's Python here")
    folder = tmp_path / "deps"
    r = subprocess.run([SYSTEM_PYTHON, "-s", "-c", DIALOG], capture_output=True, text=True, timeout=300,
                       env=clean_env(PYTHONPATH=REPO, FERS_DEPS_DIR=str(folder), QT_QPA_PLATFORM="offscreen",
                                     QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"),
                                     FERS_PIP_INDEX_URL="http://127.0.0.1:9/simple", FERS_TORCH_SPEC="torch==2.13.0",
                                     FERS_PIP_EXTRA_ARGS="--retries 0 --timeout 3", PIP_CONFIG_FILE=os.devnull,
                                     PIP_FIND_LINKS=""))
    out = r.stdout
    assert "RESULT False offline" in out, out + r.stderr
    rows = eval(re.search(r"ROWS (.*)", out).group(1))
    assert ["torch", "—", ">= 2.6", "missing"] in rows and all(row[3] == "ok" for row in rows if row[0] != "torch")
    assert "INSTALL True CUDA False" in out  # no NVIDIA GPU here: the CUDA build is not offered
    assert f"torch (CPU build from http://127.0.0.1:9/simple) — about {deps.SIZE_CPU_MB} MB" in out
    status = re.search(r"STATUS (.*)", out).group(1)
    assert "looks offline" in status and f"--target {folder}" in status and "Log: " in status
    assert int(re.search(r"LINES (\d+)", out).group(1)) >= 4  # pip's own lines streamed into the dialog
    assert "CLIP FERS diagnostics" in out
    assert sorted(os.listdir(folder)) == ["install.log"]


NVIDIA_SMI = """#!/bin/sh
# stands in for the NVIDIA driver's tool on this GPU-less machine: its two outputs deps.py reads
case "$*" in
  *--query-gpu=name*) echo "NVIDIA H200" ;;
  *) printf '| NVIDIA-SMI 560.35.03    Driver Version: 560.35.03    CUDA Version: %s     |\\n' "$FAKE_CUDA" ;;
esac
"""


def test_a_cuda_build_is_offered_only_with_an_nvidia_gpu_and_from_the_index_its_driver_can_run(settings, tmp_path):
    settings.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                            if not os.path.exists(os.path.join(p, "nvidia-smi"))))
    assert deps.nvidia_gpu() is None
    tool = tmp_path / "nvidia-smi"
    tool.write_text(NVIDIA_SMI)
    tool.chmod(0o755)
    settings.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    settings.setattr(sys, "platform", "linux")
    for driver, index in (("12.9", "cu128"), ("12.6", "cu126"), ("12.4", "cu118"), ("11.8", "cu118")):
        settings.setenv("FAKE_CUDA", driver)
        assert deps.nvidia_gpu() == ("NVIDIA H200", float(driver))
        args = deps.plan(missing_torch(), str(tmp_path), cuda=True)[0].args
        assert args[args.index("--index-url") + 1] == f"https://download.pytorch.org/whl/{index}"
    settings.setenv("FAKE_CUDA", "11.4")  # a driver older than every CUDA build PyTorch publishes: the CPU build
    assert deps.cuda_index(11.4) is None
    assert deps.torch_index(cuda=True) == "https://download.pytorch.org/whl/cpu"
    args = deps.plan(missing_torch(), str(tmp_path), cuda=False)[0].args  # unticked: the CPU build all the same
    assert args[args.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"
