# Every target works on a fresh machine: `make setup` builds .venv first.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: setup run test ci lint format up down demo transform dashboard bench bench-dashboard vendor-js clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The main job: a local warehouse (no Docker needed), the schema, one load.
run: setup
	$(BIN)/crypto-etl warehouse start
	$(BIN)/crypto-etl migrate
	$(BIN)/crypto-etl run all
	$(BIN)/crypto-etl transform

# Everything offline, no API key: local warehouse, simulator, pipelines on a
# short schedule, a backfill, the dbt models and the dashboard (URL printed).
demo: setup
	$(BIN)/crypto-etl demo

transform: setup
	$(BIN)/crypto-etl transform

dashboard: setup
	$(BIN)/crypto-etl dashboard

test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/black --check src test bench
	$(BIN)/flake8 src test bench
	$(BIN)/mypy
	$(BIN)/mypy bench
	# Tests are type-checked too, without requiring annotations on every test.
	$(BIN)/mypy --allow-untyped-defs --allow-untyped-calls --allow-incomplete-defs test

format: setup
	$(BIN)/black src test bench

ci: lint test

# The Docker stack (needs Docker with Compose v2.17+): warehouse, scheduled ETL,
# dashboard and Metabase; waits until all are healthy, then provisions Metabase.
up:
	./deploy_helpers/stack-up.sh

# Stops the stack and keeps the data; `docker compose down -v` also deletes the
# warehouse volume.
down:
	docker compose down

# Benchmarks (not tests): timings are ratios measured in one run.
bench: setup
	$(BIN)/python bench/load_bench.py $(BENCH_ARGS)
	$(BIN)/python bench/backfill_memory.py

bench-dashboard: setup
	$(BIN)/python bench/dashboard_bench.py

# Refresh the vendored charting library from the locked npm package.
vendor-js:
	npm ci && npm run vendor

clean:
	-$(BIN)/crypto-etl warehouse stop
	rm -rf $(VENV) .data build *.egg-info src/*.egg-info .pytest_cache .mypy_cache
