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

.PHONY: install install-dev run test lint typecheck unit clean browser-deps fuzz

# The service's own requirements: what `make run` needs.
install: $(RUNTIME)

$(RUNTIME): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(RUNTIME)

# Tests, linters and type checks on top: what `make test` needs.
install-dev: $(DEV)

$(DEV): $(RUNTIME) requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(DEV)

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

# A few minutes of hostile traffic on 127.0.0.1 (soak/): SMS delivered twice, a gateway failing
# 10% of calls, the worker SIGKILLed twice; exits non-zero if any money invariant breaks.
# Longer or on MongoDB: make soak SOAK_ARGS="--seconds 600 --mongodb-uri mongodb://..."
.PHONY: soak
soak: install
	$(BIN)/python -m soak $(SOAK_ARGS)

# Debian's Chromium and its driver, for the console's browser test (tests/e2e/test_console_browser.py).
browser-deps:
	@SUDO=; if [ "$$(id -u)" != 0 ] && sudo -n true 2>/dev/null; then SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
