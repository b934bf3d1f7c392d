# Every target sets up what it needs: `make test` and `make reproduce-all` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROFILE ?= auto
RESULTS_DIR ?= results
# The data sets that cannot be downloaded here live beside the checkout.
DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),data)
export DATA_DIR RESULTS_DIR

.PHONY: help install test reproduce-all figures claims report collect bench clean clean-runs reference paper-table

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## create .venv and install the project with its pinned dependencies

test: install  ## run the test suite (CPU only, a few minutes)
	$(PY) -m pytest tests

reproduce-all: install  ## run every figure's preset (quick without GPU, full with one; PROFILE= overrides), plot, check claims, write results/report.html
	$(PY) -m scripts.reproduce --profile $(PROFILE)

figures: install  ## re-plot and re-check the claims from the store without running anything
	$(PY) -m scripts.reproduce --no-run --profile $(PROFILE)

claims: install  ## collect the store, re-plot and check the claims; exits 1 on FAIL, ERROR or INCOMPLETE
	$(PY) -m scripts.claims --results $(RESULTS_DIR)

report: install  ## re-render results/report.html from the store and the last claims table
	$(PY) -m scripts.report --results $(RESULTS_DIR)

collect: install  ## rebuild results/index.parquet and results/curves.parquet
	$(PY) -m scripts.collect

bench: install  ## benchmarks, ratios against baselines measured in the same run: optimizer steps, then reproduce (parallel speed-up, per-job overhead, re-run, trainer step vs a bare loop; CUDA variants when present)
	$(PY) -m scripts.bench_optimizers
	$(PY) -m scripts.bench_reproduce $(if $(wildcard $(RESULTS_DIR)/manifests),--store $(RESULTS_DIR))

reference: install  ## copy the quick-profile claims table and 400 px figure thumbnails into results/reference/quick (commit them)
	$(PY) -m scripts.reference --results $(RESULTS_DIR)

paper-table: install  ## PoNoS paper fig. 1 (MNIST MLP, 200 epochs, 1 seed; not part of reproduce-all, about 45 min on 2 cores) beside the published numbers
	$(PY) -m scripts.reproduce --figures paper_mnist --profile full

# The runs (possibly GPU-days) are never removed by `clean`: everything else in results/ is
# rebuilt from them by `make collect figures`.
clean:  ## remove Hydra logs, caches and what is rebuilt from the runs (keeps results/runs and .venv)
	rm -rf logs outputs multirun .pytest_cache $(RESULTS_DIR)/index.parquet $(RESULTS_DIR)/curves.parquet $(RESULTS_DIR)/figures $(RESULTS_DIR)/claims.* $(RESULTS_DIR)/report.html
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

clean-runs:  ## DELETE every run (RESULTS_DIR/runs) and the manifests (asks first; CONFIRM=yes skips the question)
	@if [ "$(CONFIRM)" != yes ]; then printf 'delete %s/runs and %s/manifests? [y/N] ' "$(RESULTS_DIR)" "$(RESULTS_DIR)"; read a; [ "$$a" = y ] || exit 1; fi
	rm -rf $(RESULTS_DIR)/runs $(RESULTS_DIR)/manifests $(RESULTS_DIR)/index.parquet $(RESULTS_DIR)/curves.parquet
