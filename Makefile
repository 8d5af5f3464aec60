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

# The load benchmark (docs/performance.md): PAY via Tasker and Twilio, BAL, and a payer with a
# long history, through gunicorn with its production config, against a minimal route in the same
# run. wrk, Debian's, gives a second opinion on the minimal route (installed if missing). Extra
# flags: `make bench BENCH_ARGS="--requests 8000 --connections 64"` (see --help).
.PHONY: bench bench-smoke bench-profile
BENCH_ARGS ?=
bench: install
	@command -v wrk >/dev/null || { SUDO=; \
	  if [ "$$(id -u)" != 0 ] && sudo -n true 2>/dev/null; then SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq >/dev/null 2>&1; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 || \
	  echo "wrk could not be installed: no second opinion on the minimal route"; }
	$(BIN)/python -m bench.load --bal --long-history --wrk $(BENCH_ARGS)

# This checkout against another revision, alternating runs (one run moves by 15-25 % on a shared
# machine): `make bench-compare REV=HEAD~2 BENCH_ARGS="--route tasker --requests 3000"`.
REV ?= HEAD~1
.PHONY: bench-compare
bench-compare: install
	$(BIN)/python -m bench.compare $(REV) --rounds 3 $(BENCH_ARGS)

# A few seconds: the benchmark runs and its counts are right (also part of `make test`).
bench-smoke: install-dev
	$(BIN)/pytest -q -p no:cacheprovider tests/e2e/test_bench_smoke.py

# Where a worker's time goes under load: py-spy samples one worker during each SMS run. py-spy
# is not a dependency; install it apart, e.g. `python3 -m venv /tmp/spy && /tmp/spy/bin/pip
# install py-spy`, then `make bench-profile PY_SPY=/tmp/spy/bin/py-spy`.
PY_SPY ?= py-spy
BENCH_DIR ?= var/bench-profile
bench-profile: install
	rm -rf $(BENCH_DIR)
	$(BIN)/python -m bench.load --route tasker --long-history --py-spy $(PY_SPY) --dir $(BENCH_DIR) $(BENCH_ARGS)
	$(BIN)/python -m bench.flame $(BENCH_DIR)/PAY-via-tasker.txt
	$(BIN)/python -m bench.flame "$(BENCH_DIR)/PAY-via-tasker-1-payer-100k-history.txt"
