# FERS for QGIS — setup, tests, demo, benchmarks. Debian 12; runs as root or with sudo.
SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV ?= $(ROOT)/.venv
PY := $(VENV)/bin/python
DATA ?= $(abspath $(ROOT)/../shared/data)
export FERS_DATA := $(DATA)
export FERS_VENV := $(VENV)

# SYSTEM_PYTHON=1: everything from the distribution, torch too (Debian 13 and later package python3-torch):
# the venv is a bare one over Debian's Python and its packages, nothing from pip (what make test-debian13 runs)
SYSTEM_PYTHON ?=
BASE_APT_PACKAGES := qgis python3-qgis qgis-providers python3-gdal gdal-bin xvfb xauth python3-venv \
	python3-numpy python3-scipy python3-matplotlib python3-h5py python3-pytest python3-pytest-xdist
# libopenblas0 by name: apt brings it only as a recommendation, and without it numpy and torch run on the
# reference BLAS; libblas3/liblapack3 (the reference, installed beside it as on most machines) for the test of
# the warning a run on it gives
SYSTEM_APT_PACKAGES := $(BASE_APT_PACKAGES) python3-torch python3-torchvision libopenblas0 libblas3 liblapack3 make
ifeq ($(SYSTEM_PYTHON),1)
APT_PACKAGES := $(SYSTEM_APT_PACKAGES)
VENV_STAMP := $(VENV)/.system
else
APT_PACKAGES := $(BASE_APT_PACKAGES) python3-pip
VENV_STAMP := $(VENV)/.installed
endif
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup apt venv test test-debian13 test-engine test-plugin test-install desktop-check demo screens bench bench-io bench-speed bench-authors bench-accuracy bench-batch check-cuda bench-table2 bench-ae bench-autoad-ref train-default cards package resources clean

setup: apt venv $(VENV)/bin/fers-qgis-process
	@echo "setup done: $(VENV)/bin/fers and $(VENV)/bin/fers-qgis-process"

# idempotent: only calls apt when a package is missing; never prompts
apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV_STAMP)

# numpy/scipy/h5py/GDAL come from Debian (system site packages) so QGIS and the engine share one ABI;
# torch==2.13.0 resolves to the machine's local CPU wheel and is installed first. The engine goes in without its
# declared requirements (engine/pyproject.toml): Debian registers h5py as "h5py._debian_h5py_serial", which pip's
# resolver does not see as h5py, so it would fetch a second h5py (`make check-engine-install` installs with them).
# dask + distributed are the engine's [distributed] extra (fers batch), pinned to releases tested with Python 3.11.
$(VENV)/.installed: engine/pyproject.toml
	[ -x $(PY) ] || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0 safetensors
	# Spectral Python: the reference the classic detectors are tested against (tests/engine/test_classic_detectors.py)
	$(PY) -m pip install -q --disable-pip-version-check spectral==0.24
	$(PY) -m pip install -q --disable-pip-version-check dask==2026.8.0 distributed==2026.8.0
	$(PY) -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps -e engine
	touch $@

# a venv over the system's Python and its packages, torch included; the engine on its path (a .pth file), and the
# executables pip would have written: fers, fers-torchrun and torchrun
$(VENV)/.system:
	[ -x $(PY) ] || /usr/bin/python3 -m venv --system-site-packages --without-pip $(VENV)
	echo $(ROOT)/engine > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/fers-engine.pth
	printf '#!$(PY)\nimport sys\nfrom fers.cli import main\nsys.exit(main())\n' > $(VENV)/bin/fers
	printf '#!$(PY)\nimport sys\nfrom fers.train.launch import main\nsys.exit(main())\n' > $(VENV)/bin/fers-torchrun
	printf '#!$(PY)\nimport sys\nfrom torch.distributed.run import main\nsys.exit(main())\n' > $(VENV)/bin/torchrun
	chmod +x $(VENV)/bin/fers $(VENV)/bin/fers-torchrun $(VENV)/bin/torchrun
	touch $@

$(VENV)/bin/fers-qgis-process: scripts/fers-qgis-process.in $(VENV_STAMP)
	sed -e 's|@ROOT@|$(ROOT)|g' -e 's|@VENV@|$(VENV)|g' $< > $@
	chmod +x $@
	mkdir -p $(VENV)/qgis-plugins $(VENV)/qgis-profile/profiles/default/QGIS
	ln -sfn $(ROOT)/fers_qgis $(VENV)/qgis-plugins/fers_qgis
	grep -q "^fers_qgis=true" $(VENV)/qgis-profile/profiles/default/QGIS/QGIS3.ini 2>/dev/null || printf '[PythonPlugins]\nfers_qgis=true\n' >> $(VENV)/qgis-profile/profiles/default/QGIS/QGIS3.ini

# Two pytest workers (pytest-xdist): most of the suite's time is spent starting qgis_process, fers and torch in
# subprocesses, which a second worker overlaps even on two cores. TEST_WORKERS=0 runs everything in one process.
# Each worker runs qgis_process in its own copy of the QGIS profile (tests/conftest.py).
TEST_WORKERS ?= 2
PYTEST_ARGS ?=
PYTEST := $(PY) -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS)) $(PYTEST_ARGS)

test: setup
	$(PYTEST) tests

test-engine: venv
	$(PYTEST) tests/engine

test-plugin: setup
	$(PYTEST) tests/plugin

# the dependency installer end to end (tests/plugin/test_deps_install.py): QGIS's Python without torch installs the
# local torch==2.13.0 wheel into a fresh profile's managed folder (2 min of pip), then fers:detect runs there
test-install: setup
	FERS_TEST_INSTALL=1 $(PY) -m pytest -q -s tests/plugin/test_deps_install.py

# the same in the real QGIS desktop under Xvfb, from the packaged ZIP, with screenshots (scripts/desktop_install_check.py)
SCREENS ?= $(ROOT)/dist/screens-install
desktop-check: setup package
	$(PY) scripts/desktop_install_check.py --zip "$$(ls -t $(ROOT)/dist/fers_qgis-*.zip | head -1)" --out $(SCREENS)

# fers:detect with the bundled 100-band model (fusion B, chosen by STRATEGY=auto) on the bundled sample; offline
demo: setup
	@out=$$(mktemp -d)/sample_anomaly_fers.tif; \
	$(VENV)/bin/fers-qgis-process run fers:detect -- INPUT=$(ROOT)/resources/sample/abu-airport-2.tif \
		BANDS=100 STRATEGY=auto DETECTOR=rx DEVICE=cpu OUTPUT=$$out 2>&1 | grep -E "bundled model|^ERROR" ; \
	test -s $$out && \
	$(VENV)/bin/fers-qgis-process run fers:evaluate -- SCORE=$$out \
		GROUND_TRUTH=$(ROOT)/resources/sample/abu-airport-2_gt.tif 2>/dev/null | grep '^AUC:' && \
	echo "CRS of the map: $$(gdalsrsinfo -o epsg $$out | grep EPSG)" && \
	echo "anomaly map written to: $$out"

# Screenshots of every FERS dialog in the real QGIS desktop (Xvfb, a fresh profile with the plugin enabled), a
# detect run from its dialog with only INPUT, an evaluate run with a ROC PNG, the .model3, the toolbox
SCREENS ?= $(ROOT)/build/screens
screens: setup
	@profile=$$(mktemp -d); mkdir -p $$profile/profiles/default/QGIS; \
	printf '[PythonPlugins]\nfers_qgis=true\n' > $$profile/profiles/default/QGIS/QGIS3.ini; \
	site=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	QGIS_PLUGINPATH=$(VENV)/qgis-plugins PYTHONPATH=$$site:$(ROOT)/engine FERS_SCREENS=$(SCREENS) \
	FERS_SAMPLE=$(ROOT)/resources/sample/abu-airport-2.tif \
	FERS_MODEL3=$(ROOT)/resources/modeler/detect_and_evaluate.model3 \
	timeout 1200 xvfb-run -a -s "-screen 0 1600x1000x24" qgis --nologo --noversioncheck --profiles-path $$profile \
		--code $(ROOT)/scripts/desktop_screens.py 2>&1 | grep -E "^screen:|^layers:|^fers:|failed|Error|error" ; \
	rm -rf $$profile; echo "screenshots in $(SCREENS)"

# The whole suite on Debian 13 (QGIS 3.40 LTR, Python 3.13, GDAL 3.10) with Debian's own torch, no pip: a trixie
# root built once with debootstrap from the mirror apt uses here (~600 MB of packages, DEBIAN13_ROOT, reused when
# built), this worktree and ../shared bind-mounted at their own paths, make test SYSTEM_PYTHON=1 run inside it.
# Needs root; not part of make test (CI time). DEBIAN_SUITE=sid runs the same on Debian unstable.
DEBIAN_SUITE ?= trixie
DEBIAN13_ROOT ?= $(abspath $(ROOT)/../debian13-root$(if $(filter trixie,$(DEBIAN_SUITE)),,-$(DEBIAN_SUITE)))
test-debian13:
	scripts/debian-root.sh $(DEBIAN13_ROOT) $(DEBIAN_SUITE) "$(SYSTEM_APT_PACKAGES)"
	scripts/debian-root-run.sh $(DEBIAN13_ROOT) $(ROOT) $(DATA) make -C $(ROOT) test SYSTEM_PYTHON=1 \
		VENV=/opt/fers-venv TEST_WORKERS=$(TEST_WORKERS) PYTEST_ARGS='$(PYTEST_ARGS)'

RAW := $(DATA)/raw
PAPER_SET := $(addprefix $(RAW)/,abu-airport-1.mat abu-airport-2.mat abu-airport-3.mat abu-airport-4.mat \
	abu-urban-3.mat LREN__abu-beach-4.mat) $(RAW)/RCRD__dataPavia.mat=$(RAW)/RCRD__maskPavia.mat

# RX vs per-pixel NumPy; training step seconds; every strategy of the bundled models on the paper set
bench: venv
	$(PY) bench/bench_rx.py
	$(PY) bench/bench_train.py
	$(VENV)/bin/fers benchmark $(PAPER_SET) --bands 100 200 --strategies none,spectral,spatial,multiplicative,additive \
		--model fers-aviris-100 --model fers-aviris-200 --device cpu --no-plots --out $(ROOT)/bench/out/strategies

# reading a 512² and a 2048² × 200 cube in every common layout (GeoTIFF band/pixel/tiled, ENVI BSQ/BIL/BIP,
# netCDF, HDF5): the engine's read against one GDAL call, seconds and peak RSS; SIZE=2048 (or 512) for one size,
# BENCH_IO_ARGS="--layouts hdf5 --repeat 9" for more
SIZE ?=
bench-io: venv
	nice $(PY) bench/bench_io.py $(if $(SIZE),--sizes $(SIZE)) $(BENCH_IO_ARGS)

# seconds and peak RSS for 256²…2048² × 200 bands (fusion B and RX alone), GFLOP/s against a plain matmul,
# tiled vs whole-image maps on the paper set; each strategy against the counted compute limit + one read;
# plain RX against Spectral Python's on three GeoTIFF layouts (bench/peers.py)
bench-speed: venv
	$(PY) bench/bench_speed.py $(BENCH_SPEED_ARGS)
	nice $(PY) bench/peers.py

# the FERS authors' own spectral test path (their FERS_ABU code taken at run time out of a git mirror of
# github.com/xjpp2016/FERS, AUTHORS_REPO, never committed; their aviris-200bands checkpoint and NumPy RX) against
# fers detect --strategy spectral with the same checkpoint, 512²×200, alternating fresh processes, maps compared.
# Without the mirror it says how to get it and exits 0. BENCH_AUTHORS_ARGS="--threads 1 --repeat 5" for more
bench-authors: venv
	nice $(PY) bench/authors.py $(BENCH_AUTHORS_ARGS)

# fers batch on Dask over every evaluation scene (as GeoTIFFs) against fers detect in a loop: scenes/min for 1 and 2
# workers and a dask scheduler + 2 dask worker processes, peak RSS per worker, max map difference, AUC at 4 decimals
bench-batch: venv
	nice $(PY) bench/bench_batch.py

# the FERS paper's Table II on our scenes: RX, AE (label-free product rule and, labelled, the authors' ground-truth
# selection), UTD, RXD-UTD, dual-window RX, original and enhanced (bundled model; authors' H+F_spe checkpoint),
# Δ and seconds per scene, Markdown + CSV in bench/out/table2.*; AUTOAD=1 adds Auto-AD (2-9 minutes per cube
# on one CPU core, about an hour for the 18; AUTOAD_SCENES=abu-airport-1 limits it)
bench-table2: venv
	nice $(PY) bench/bench_table2.py

# the AE conformance harness alone: the authors' ground-truth selection over five seeds, per-iteration curves in
# bench/out/ae_harness.csv (never the product's answer)
bench-ae: venv
	nice $(PY) bench/ae_harness.py

# our Auto-AD against the Auto-AD authors' own AD_main_loop.py (taken at run time out of a git mirror of
# github.com/RSIDEA-WHU2020/Auto-AD, AUTOAD_REPO, never committed; run on the CPU, patches listed in the script) on
# Table II's original cubes (airport-1, airport-2, the Pavia crop): AUC, iterations and stop, seconds, map
# correlation, bench/out/autoad_reference.*; about 10 minutes per scene and side on a CPU. Without the mirror: one
# line, exit 2. BENCH_AUTOAD_REF_ARGS="--seeds 3 --variants ours theirs ours-band" for more
bench-autoad-ref: venv
	nice $(PY) bench/autoad_reference.py $(BENCH_AUTOAD_REF_ARGS)

# on a machine with a CUDA GPU: GPU score maps against CPU ones, every strategy (CI has no GPU)
check-cuda: venv
	$(PY) bench/check_cuda.py

# per-scene AUC on every evaluation scene and the two selection groups (background anomalies, implanted targets):
# RX, the authors' checkpoints, the bundled models (spectral, A and B)
bench-accuracy: venv
	$(PY) bench/bench_accuracy.py

# regenerate resources/models/fers-aviris-{100,200}.pt from ../shared/data (CPU by default, CUDA when present)
train-default: venv
	$(PY) scripts/train_default.py
	$(MAKE) cards

# the model cards from the bundled checkpoints, their training facts (resources/models/*.facts.json) and
# make bench-accuracy's figures; no training
cards: venv
	$(PY) bench/bench_accuracy.py
	for b in 100 200; do $(PY) scripts/model_card.py $(ROOT)/resources/models/fers-aviris-$$b.pt \
		$(ROOT)/resources/models/fers-aviris-$$b.facts.json $(ROOT)/bench/out/accuracy.csv $(ROOT)/resources/models/fers-aviris-$$b.md; done

# dist/fers_qgis-<version>.zip for QGIS 'Install from ZIP': plugin + engine + resources (no sample); fails when
# plugins.qgis.org's upload checks would refuse it (scripts/package.py upload_problems)
package:
	/usr/bin/python3 scripts/package.py $(ROOT)/dist

# regenerate resources/styles/*.qml and resources/modeler/*.model3 (built with PyQGIS)
resources:
	QT_QPA_PLATFORM=offscreen /usr/bin/python3 scripts/make_resources.py

clean:
	rm -rf $(VENV) .pytest_cache

# ---- issue 19, a real package (kept in one block)
.PHONY: check-engine-install check-model-precision
# a fresh venv, torch==2.13.0 (local wheel) first, `pip install ./engine` (not editable), `fers detect` on the sample;
# prints each step's seconds. Minutes: not part of `make test`
check-engine-install:
	/usr/bin/python3 scripts/check_engine_install.py

# every strategy of both bundled models on the paper set against the models before format 2: max |Δscore| / range
# and AUC (fails beyond 1e-4 of the range or an AUC change at 4 decimals)
check-model-precision: venv
	$(PY) scripts/check_model_precision.py
