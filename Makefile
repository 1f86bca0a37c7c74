# fintoc-sync — developer tasks. `make help` lists them.
# Everything runs inside .venv, which the first target that needs it creates.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv demo test test-fast sdk-fidelity lint format typecheck check chaos soak bench bench-load bench-compare bench-views clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "fintoc-sync needs Python >= 3.11 (set PYTHON=python3.11)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## create .venv and install fintoc-sync with its dev tools

demo: $(STAMP) ## run the demo: embedded Postgres + sandbox API + migrate + sync + summary
	$(BIN)/fintoc-sync demo

# pytest-xdist workers, each with its own embedded Postgres (PYTEST_WORKERS=0: one process)
PYTEST_WORKERS ?= 2

test: $(STAMP) ## run the whole test suite (embedded Postgres; TEST_DATABASE_URL to override)
	$(BIN)/pytest -n $(PYTEST_WORKERS)
	bash scripts/sdk_fidelity.sh

test-fast: $(STAMP) ## the suite without the slow scenarios
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m "not slow"

sdk-fidelity: $(STAMP) ## the official fintoc SDK against our sandbox (own venv)
	bash scripts/sdk_fidelity.sh

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## apply ruff formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP) ## mypy --strict on sync/ and models/
	$(BIN)/mypy

check: lint typecheck test ## everything CI cares about

chaos: $(STAMP) ## the fault-injection suite, full size
	$(BIN)/python scripts/chaos.py

soak: $(STAMP) ## the daemon for ~18 min under a seeded random fault schedule (stops by itself)
	$(BIN)/python scripts/soak.py $(SOAK_ARGS)

bench: $(STAMP) ## benchmarks (print figures; never asserted)
	$(BIN)/python scripts/bench_movements.py

bench-load: $(STAMP) ## cold sync + backfill of a 10k-link sandbox (and 1/10): time, peak RSS, requests, rows
	$(BIN)/python scripts/bench_load.py $(BENCH_LOAD_ARGS)

bench-compare: $(STAMP) ## fintoc-sync beside dlt 1.31 (own venv) on one sandbox org: table + ratios
	$(BIN)/python scripts/bench_compare.py $(BENCH_COMPARE_ARGS)

bench-views: $(STAMP) ## EXPLAIN ANALYZE the analyst views on 3M movements / 30,000 accounts
	$(BIN)/python scripts/bench_views.py $(BENCH_VIEWS_ARGS)

clean: ## remove the virtualenv and caches (not your data directory)
	rm -rf $(VENV) .venv-sdk .venv-bench-dlt .pytest_cache .mypy_cache .ruff_cache
