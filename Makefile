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

.PHONY: setup apt venv test test-debian13 test-engine test-plugin demo bench bench-speed bench-accuracy check-cuda train-default cards package resources clean

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

# numpy/scipy/GDAL come from Debian (system site packages) so QGIS and the engine share one ABI;
# torch==2.13.0 resolves to the machine's local CPU wheel.
$(VENV)/.installed: engine/pyproject.toml
	[ -x $(PY) ] || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0 safetensors
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

# seconds and peak RSS for 256²…2048² × 200 bands (fusion B and RX alone), GFLOP/s against a plain matmul,
# tiled vs whole-image maps on the paper set
bench-speed: venv
	$(PY) bench/bench_speed.py

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

# dist/fers_qgis-<version>.zip for QGIS 'Install from ZIP': plugin + engine + resources (no sample)
package:
	/usr/bin/python3 scripts/package.py $(ROOT)/dist

# regenerate resources/styles/*.qml and resources/modeler/*.model3 (built with PyQGIS)
resources:
	QT_QPA_PLATFORM=offscreen /usr/bin/python3 scripts/make_resources.py

clean:
	rm -rf $(VENV) .pytest_cache
