"""`make package`'s ZIP passes the upload checks of the official plugin repository, plugins.qgis.org, and holds
both bundled models in a form the ZIP's own engine loads.

The rules are those of qgis/QGIS-Plugins-Website (formerly QGIS-Django), ``qgis-app/plugins/validator.py``,
``validator()`` as read at commit 73c20fa (July 2026), which refuses an upload when:

* the file is over ``PLUGIN_MAX_UPLOAD_SIZE`` = 25,000,000 bytes;
* it does not unzip, or ``testzip()`` finds a CRC error;
* a name contains ``..``, starts with ``/``, contains ``.pyc``, a backslash or a drive letter, or has a
  ``__MACOSX``, ``.git`` or ``__pycache__`` directory;
* the first entry has no top-level folder, or that folder is not a Python identifier (new plugins) matching
  ``[A-Za-z][A-Za-z0-9-_]+`` (more than one top-level folder is a warning there; refused here);
* ``<folder>/__init__.py`` or ``<folder>/metadata.txt`` is missing, ``[general]`` does not parse, or one of
  ``PLUGIN_REQUIRED_METADATA`` (name, description, version, qgisMinimumVersion, author, email, about, tracker,
  repository) is missing;
* tracker / repository / homepage equal ``http://bugs`` / ``http://repo`` / ``http://homepage`` or have no
  scheme or host (and, online only, do not answer a HEAD request below 400 within 10 s: not checkable here);
* ``<folder>/LICENSE`` is missing (mandatory since June 2024);
* the author contains a slash.

The Plugin model stores the e-mail in an EmailField and the version must be digits and dots. Its
``security_scanner.py`` (non-blocking, shown to users) flags .exe/.dll/.so/.dylib/.bat/.sh/.ps1/.cmd files,
hidden files and Python files with the executable bit: kept clean too. ``supportsQt6`` is reported as
deprecated there (QGIS 4 readiness is now ``qgisMaximumVersion`` ≥ 4.0). Ours on top: no placeholder
e-mail or URL hosts (example.org, .invalid, localhost).
"""
import json
import os
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "scripts"))
import package  # noqa: E402


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory):
    path, _ = package.build(str(tmp_path_factory.mktemp("dist")))
    return path


def test_the_zip_passes_every_upload_check_of_plugins_qgis_org(plugin_zip):
    assert package.upload_problems(plugin_zip) == []
    assert os.path.getsize(plugin_zip) <= 25_000_000
    with zipfile.ZipFile(plugin_zip) as z:
        names = z.namelist()
        assert {n.split("/")[0] for n in names} == {"fers_qgis"}
        assert "GNU GENERAL PUBLIC LICENSE" in z.read("fers_qgis/LICENSE").decode()
        for b in (100, 200):
            assert f"fers_qgis/resources/models/fers-aviris-{b}.pt" in names
            assert f"fers_qgis/resources/models/fers-aviris-{b}.md" in names


def test_the_checks_refuse_what_the_repository_refuses(tmp_path, plugin_zip):
    """Each rule can fail: a ZIP with a __pycache__ .pyc, a .so, a hidden file, a second top folder, no LICENSE,
    placeholder contacts and the deprecated flag is refused for each of them."""
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(plugin_zip) as src, zipfile.ZipFile(bad, "w") as z:
        for info in src.infolist():
            if info.filename == "fers_qgis/LICENSE":
                continue
            data = src.read(info)
            if info.filename == "fers_qgis/metadata.txt":
                data = (data.decode().replace("users.noreply.github.com", "example.org")
                        .replace("tracker=https://github.com", "tracker=http://bugs\nx=")
                        .replace("author=", "author=a/b ") + "supportsQt6=True\n").encode()
            z.writestr(info, data)
        z.writestr("fers_qgis/__pycache__/plugin.cpython-311.pyc", b"x")
        z.writestr("fers_qgis/lib/_ext.so", b"\x7fELF")
        z.writestr("fers_qgis/.env", b"x")
        z.writestr("other/readme.txt", b"x")
    problems = "\n".join(package.upload_problems(str(bad)))
    for expected in (".pyc file", "forbidden directory in fers_qgis/__pycache__", "binary file fers_qgis/lib/_ext.so",
                     "hidden file fers_qgis/.env", "multiple parent folders", "Cannot find LICENSE",
                     "valid url link for tracker", "email 'fers-qgis@example.org' is not a real address",
                     "Author name cannot contain slashes", "supportsQt6 is deprecated"):
        assert expected in problems, expected
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as z:
        z.writestr("fers_qgis/noise.bin", os.urandom(25_000_001))
    assert any("too big" in p for p in package.upload_problems(str(big)))


def test_the_zips_engine_loads_both_bundled_models(tmp_path, plugin_zip):
    # the extracted plugin alone (its engine/ on sys.path as fers_qgis/paths.py puts it, not the checkout's):
    # the models are found beside the engine and load weights_only with their frozen backbone drawn again
    with zipfile.ZipFile(plugin_zip) as z:
        z.extractall(tmp_path)
    engine = tmp_path / "fers_qgis" / "engine"
    code = ("import json, fers, torch\nfrom fers.bundled import list_models\nfrom fers.checkpoint import load_model\n"
            "out = {'engine': fers.__file__}\n"
            "for m in list_models():\n"
            "    x = load_model(m.name)\n"
            "    out[m.name] = [x.bands, x.spa is not None, "
            "float(x.spa.backbone.layer3[0].conv1.weight.abs().sum())]\n"
            "print(json.dumps(out))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("FERS_MODELS_DIR", "PYTHONPATH")}
    # the ZIP's engine first: fers from the ZIP, torch from the venv
    import torch
    site = os.path.dirname(os.path.dirname(torch.__file__))
    env["PYTHONPATH"] = os.pathsep.join([str(engine), site])
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["engine"].startswith(str(engine))
    assert got["fers-aviris-100"][:2] == [100, True] and got["fers-aviris-200"][:2] == [200, True]
    from fers.checkpoint import load_model
    for b in (100, 200):  # the same weights as the checkout's models
        ref = load_model(os.path.join(REPO, "resources", "models", f"fers-aviris-{b}.pt"))
        assert got[f"fers-aviris-{b}"][2] == float(ref.spa.backbone.layer3[0].conv1.weight.abs().sum())
