"""`make check-engine-install`: the engine as a real package, the way a researcher installs it (issue 19).

In a fresh venv (``/usr/bin/python3 -m venv --system-site-packages``, as `make setup` builds one): torch==2.13.0
first (the machine's local CPU wheel: nothing multi-GB is pulled), then ``pip install ./engine`` (not editable,
with pip's build isolation), then ``fers detect`` on the bundled sample with its defaults, and with the
100-band bundled model (``--strategy auto``; ``FERS_MODELS_DIR`` names resources/models, which a pip-installed
engine does not carry) followed by ``fers evaluate``. Checks that the installed engine is the venv's copy (not
this checkout), that its metadata declares numpy, scipy, h5py and torch, that ``pip check`` finds
them satisfied, and prints the seconds of each step. Not part of `make test`: installing torch into a fresh venv
takes minutes.

    /usr/bin/python3 scripts/check_engine_install.py [--keep DIR]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "resources", "sample", "abu-airport-2.tif")
TRUTH = os.path.join(REPO, "resources", "sample", "abu-airport-2_gt.tif")
DECLARED = ("numpy", "scipy", "h5py", "torch")


def step(label, cmd, cwd, times):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    times.append((label, time.perf_counter() - t0))
    if r.returncode != 0:
        sys.exit(f"check-engine-install: {label} failed ({' '.join(cmd)}):\n{r.stdout}{r.stderr}")
    return r.stdout + r.stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="build the venv here and keep it (default: a temporary folder, removed)")
    args = ap.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="fers-engine-install-")
    venv = os.path.join(work, "venv")
    py, times = os.path.join(venv, "bin", "python"), []
    try:
        if os.path.exists(venv):
            shutil.rmtree(venv)
        step("venv", ["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv], work, times)
        step("pip install torch==2.13.0", [py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                            "torch==2.13.0"], work, times)
        # a copy of engine/ (pip builds in place otherwise and leaves build/ and *.egg-info in the checkout)
        src = os.path.join(work, "engine")
        shutil.copytree(os.path.join(REPO, "engine"), src,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
        step("pip install ./engine", [py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "./engine"],
             work, times)
        shutil.rmtree(src)  # the venv's copy must stand alone
        # pip check over the whole venv also sees the system's packages (Debian's pygobject lacks pycairo's
        # metadata, for one): only the engine's own requirements count here
        t0 = time.perf_counter()
        r = subprocess.run([py, "-m", "pip", "check"], cwd=work, capture_output=True, text=True)
        times.append(("pip check", time.perf_counter() - t0))
        broken = [line for line in r.stdout.splitlines() if line.lower().startswith("fers ")]
        if broken:
            sys.exit("check-engine-install: the engine's requirements are not met:\n" + "\n".join(broken))
        info = step("installed metadata", [py, "-c", "import fers, importlib.metadata as m; print(fers.__file__); "
                                           "print('\\n'.join(m.requires('fers')))"], "/", times)
        where, *requires = [line.strip() for line in info.splitlines() if line.strip()]
        site = os.path.join(venv, "lib")
        if not where.startswith(site):
            sys.exit(f"check-engine-install: fers was imported from {where}, not from the venv")
        names = {re.split(r"[<>=!~; \[]", r)[0].lower() for r in requires}
        missing = [d for d in DECLARED if d not in names]
        if missing:
            sys.exit(f"check-engine-install: the installed metadata does not declare {', '.join(missing)}")
        fers = os.path.join(venv, "bin", "fers")
        plain = os.path.join(work, "sample_plain.tif")
        step("fers detect (defaults)", [fers, "detect", SAMPLE, plain], work, times)
        # a pip-installed engine has no resources/models beside it: FERS_MODELS_DIR (or --model PATH) names them
        out = os.path.join(work, "sample_fers.tif")
        os.environ["FERS_MODELS_DIR"] = os.path.join(REPO, "resources", "models")
        log = step("fers detect (bundled, auto)", [fers, "detect", SAMPLE, out, "--bands", "100", "--strategy", "auto",
                                                   "--device", "cpu"], work, times)
        auc = step("fers evaluate", [fers, "evaluate", out, TRUTH], work, times)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"engine installed from ./engine into a fresh venv: {where}")
    print("declared: " + ", ".join(requires))
    print("fers detect: " + " | ".join(line.strip() for line in log.splitlines() if "model" in line.lower())[:400])
    print("fers evaluate: " + " | ".join(line.strip() for line in auc.splitlines() if "AUC" in line)[:300])
    for label, sec in times:
        print(f"{label:<28} {sec:7.1f} s")


if __name__ == "__main__":
    main()
