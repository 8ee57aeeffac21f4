# FERS for QGIS — setup, tests, demo, benchmarks. Debian 12; runs as root or with sudo.
SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
DATA ?= $(abspath $(ROOT)/../shared/data)
export FERS_DATA := $(DATA)

APT_PACKAGES := qgis python3-qgis qgis-providers python3-gdal gdal-bin xvfb xauth python3-venv python3-pip \
	python3-numpy python3-scipy python3-matplotlib python3-h5py python3-pytest python3-pytest-xdist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup apt venv test test-engine test-plugin demo bench bench-io bench-speed bench-accuracy check-cuda train-default cards package resources clean

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

venv: $(VENV)/.installed

# numpy/scipy/GDAL come from Debian (system site packages) so QGIS and the engine share one ABI;
# torch==2.13.0 resolves to the machine's local CPU wheel.
$(VENV)/.installed: engine/pyproject.toml
	[ -x $(PY) ] || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0 safetensors
	$(PY) -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps -e engine
	touch $@

$(VENV)/bin/fers-qgis-process: scripts/fers-qgis-process.in $(VENV)/.installed
	sed -e 's|@ROOT@|$(ROOT)|g' -e 's|@VENV@|$(VENV)|g' $< > $@
	chmod +x $@
	mkdir -p $(VENV)/qgis-plugins $(VENV)/qgis-profile/profiles/default/QGIS
	ln -sfn $(ROOT)/fers_qgis $(VENV)/qgis-plugins/fers_qgis
	grep -q "^fers_qgis=true" $(VENV)/qgis-profile/profiles/default/QGIS/QGIS3.ini 2>/dev/null || printf '[PythonPlugins]\nfers_qgis=true\n' >> $(VENV)/qgis-profile/profiles/default/QGIS/QGIS3.ini

# Two pytest workers (pytest-xdist): most of the suite's time is spent starting qgis_process, fers and torch in
# subprocesses, which a second worker overlaps even on two cores. TEST_WORKERS=0 runs everything in one process.
# Each worker runs qgis_process in its own copy of the QGIS profile (tests/conftest.py).
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS))

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
# netCDF, HDF5): the engine's read against one GDAL call, seconds and peak RSS; BENCH_IO_ARGS="--sizes 512"
bench-io: venv
	nice $(PY) bench/bench_io.py $(BENCH_IO_ARGS)

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
