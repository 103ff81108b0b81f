# Every target works on a fresh machine: `make setup` builds .venv first.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
PYTEST_ARGS ?=
SHELLCHECK ?= shellcheck
# Every shell script of the stack and of CI (shellcheck reads their shebangs).
SHELL_SCRIPTS := $(sort $(wildcard deploy_helpers/*.sh) $(shell find containers -name '*.sh')) .ci/run

.PHONY: setup run test ci lint format up down demo simulate transform dashboard screenshot bench bench-dashboard soak audit vendor-js clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The main job: a local warehouse (no Docker needed), the schema, one load of
# every pipeline and 30 days of bitcoin and ethereum prices (for the price
# chart), the models. About 65 credits at CoinCap's sizes: under 2% of the
# free plan's 4,000 (README, "Credits").
# The key is checked first, so a missing one starts nothing (exit 3).
run: setup
	$(BIN)/crypto-etl settings --require-key >/dev/null
	$(BIN)/crypto-etl warehouse start
	$(BIN)/crypto-etl migrate
	$(BIN)/crypto-etl run all
	$(BIN)/crypto-etl backfill --asset bitcoin,ethereum --interval h6 --start $$(date -u -d '30 days ago' +%F)
	$(BIN)/crypto-etl transform

# Everything offline, no API key: local warehouse, simulator, pipelines on a
# short schedule, a backfill, the dbt models and the dashboard (URL printed).
demo: setup
	$(BIN)/crypto-etl demo

# A fake CoinCap v3 on 127.0.0.1:$(SIMULATOR_PORT) with a moving market (no key
# needed: clients send `demo-key`); Ctrl-C stops it.
SIMULATOR_PORT ?= 8765
simulate: setup
	$(BIN)/crypto-etl simulate --port $(SIMULATOR_PORT) --tick-seconds 60

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
	# The Docker and CI files, statically (no Docker engine here): the compose
	# file and the workflows against their published JSON schemas (bundled in
	# check-jsonschema, so offline), the Dockerfiles, the shell scripts.
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/hadolint containers/*/Dockerfile
	$(SHELLCHECK) $(SHELL_SCRIPTS)
	# Security lint of the package: every finding is fixed or explained at its
	# `# nosec` ([tool.bandit] in pyproject.toml says why asserts are skipped).
	$(BIN)/bandit --quiet --configfile pyproject.toml --recursive src

format: setup
	$(BIN)/black src test bench

ci: lint test

# Refresh docs/screenshot.png (the README's picture) with the browser test that
# opens a fresh demo: the picture is what a new user sees. The suite alone
# only writes it to a temporary folder.
# CI=true: without Chromium or PostgreSQL this fails rather than skips.
screenshot: setup
	CI=true $(BIN)/pytest -q --screenshot=$(CURDIR)/docs/screenshot.png \
		test/browser/test_demo_browser.py::test_a_fresh_demo_draws_every_chart_with_a_line

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
	$(BIN)/python bench/throughput_bench.py

bench-dashboard: setup
	$(BIN)/python bench/dashboard_bench.py

# Hundreds of scheduled runs with seeded API, database and signal faults, then
# the invariants (duplicates, partial loads, lost snapshots, runs unaccounted
# for, connections left open); exits 1 if one fails. CI runs SOAK_ARGS=--runs 40.
SOAK_ARGS ?=
soak: setup
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

# Known vulnerabilities in the pinned runtime requirements (pip-audit, in a
# venv of its own so its dependencies do not sway the project's); says so
# when the advisory data cannot be reached from here.
AUDIT_VENV ?= .venv-audit
audit:
	test -x $(AUDIT_VENV)/bin/pip-audit || \
		($(PYTHON) -m venv $(AUDIT_VENV) && \
		$(AUDIT_VENV)/bin/pip install --quiet pip-audit==2.10.1)
	$(AUDIT_VENV)/bin/python deploy_helpers/audit_deps.py $(AUDIT_VENV)/bin/pip-audit

# Refresh the vendored charting library from the locked npm package.
vendor-js:
	npm ci && npm run vendor

clean:
	-$(BIN)/crypto-etl warehouse stop
	rm -rf $(VENV) $(AUDIT_VENV) .data build *.egg-info src/*.egg-info .pytest_cache .mypy_cache
