# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
# Where the service listens; exported so the sandbox gateway calls back on the same port.
export HOST ?= 127.0.0.1
export PORT ?= 8000
export SMSPAY_DATA_DIR ?= $(CURDIR)/var

.PHONY: install install-dev lock run test lint typecheck unit clean browser-deps fuzz

# The service's own requirements, hash-checked: what `make run` needs.
install: $(RUNTIME)

$(RUNTIME): requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	touch $(RUNTIME)

# Tests, linters and type checks on top: what `make test` needs.
install-dev: $(DEV)

$(DEV): $(RUNTIME) requirements-dev.lock
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	touch $(DEV)

# After editing requirements*.txt: the hash-pinned lock files the two above install from
# (the exact file pip picks on Linux x86_64 with CPython 3.11, checked by sha256).
lock:
	$(PYTHON) scripts/lock.py

# The web processes and one worker (payouts, status checks, links), stopped together.
run: install
	$(BIN)/flask --app wsgi db init
	$(BIN)/flask --app wsgi worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	$(BIN)/gunicorn --config gunicorn.conf.py --bind $(HOST):$(PORT) wsgi:app

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

# The fuzz targets of tests/fuzz, far longer than `make test` runs them (about 20,000 inputs each).
fuzz: install-dev
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest tests/fuzz -p no:cacheprovider

# Debian's Chromium and its driver, for the console's browser test (tests/e2e/test_console_browser.py).
browser-deps:
	@SUDO=; if [ "$$(id -u)" != 0 ] && sudo -n true 2>/dev/null; then SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
