# One virtual environment, installed against the lock file. `make run` and `make test` are the
# two commands a fresh clone needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCK   := requirements.lock

.PHONY: run run-pg test check soak bench bench-full lock clean node-express chromium screenshots

PG_URL ?= postgresql://postgres@127.0.0.1:5432/test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade 'pip>=24'

# `pip install runback` is the light part (verify, receiver adapters); the server, its
# workers and stores come with the `server` extra, which every target here installs.
$(VENV)/.run: $(BIN)/python pyproject.toml $(LOCK)
	$(BIN)/pip install -q -c $(LOCK) -e '.[server]'
	touch $@

$(VENV)/.dev: $(VENV)/.run
	$(BIN)/pip install -q -c $(LOCK) -e '.[server,dev]'
	touch $@

$(VENV)/.bench: $(VENV)/.dev
	$(BIN)/pip install -q -c $(LOCK) -e '.[server,dev,bench]'
	touch $@

run: $(VENV)/.run  ## serve on ./runback-data at 127.0.0.1:8000, callbacks to loopback allowed
	$(BIN)/runback serve --callback-allow 127.0.0.0/8,::1,localhost

run-pg: $(VENV)/.run  ## one API (port 8000) and two workers (8100, 8101) on PostgreSQL at PG_URL
	RUNBACK_DATABASE_URL=$(PG_URL) $(BIN)/runback migrate
	trap 'kill 0' INT TERM EXIT; export RUNBACK_DATABASE_URL=$(PG_URL) \
	  RUNBACK_CALLBACK_ALLOW=127.0.0.0/8,::1,localhost \
	  RUNBACK_PUBLIC_URL=http://127.0.0.1:8000 RUNBACK_FILES_SHARED=true; \
	$(BIN)/runback worker --port 8100 & $(BIN)/runback worker --port 8101 & \
	$(BIN)/runback api --port 8000; wait

# The seeds' own Express handler runs in the suite on Debian's node-express (never npm).
node-express:
	@NODE_PATH=/usr/share/nodejs node -e "require('express')" 2>/dev/null || \
	  (apt-get install -y -q node-express >/dev/null || sudo apt-get install -y -q node-express >/dev/null)

# The dashboard's browser tests drive Debian's chromium (never a downloaded browser build).
# A fresh machine may have no package lists yet: update once, then install.
APT_CHROMIUM := apt-get install -y -q chromium >/dev/null || \
  (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)
chromium:
	@test -x /usr/bin/chromium || ($(APT_CHROMIUM)) || sudo sh -c '$(APT_CHROMIUM)'
	@test -x /usr/bin/chromium

# The OpenAPI client generator a test runs: a venv of its own (it pins an older typer).
GEN_VENV := .venv-openapi
$(GEN_VENV)/.done: requirements-openapi.lock
	$(PYTHON) -m venv $(GEN_VENV)
	$(GEN_VENV)/bin/pip install -q --upgrade 'pip>=24'
	$(GEN_VENV)/bin/pip install -q -r requirements-openapi.lock
	touch $@

test: $(VENV)/.dev node-express chromium $(GEN_VENV)/.done  ## the whole suite, on two processes
	$(BIN)/pytest -n 2

screenshots: $(VENV)/.dev chromium  ## a PNG of each dashboard page into docs/screenshots/
	$(BIN)/python docs/screenshots.py

check: $(VENV)/.dev  ## format, lint, types
	$(BIN)/ruff format --check src tests examples $(wildcard bench)
	$(BIN)/ruff check src tests examples $(wildcard bench)
	$(BIN)/mypy

soak: $(VENV)/.dev  ## the long versions of the chaos and load tests
	RUNBACK_CHAOS_KILLS=20 RUNBACK_WORKER_KILLS=50 RUNBACK_SCALE_RUNS=5000 \
	  RUNBACK_RESTART_RUNS=3000 RUNBACK_FUZZ_EXAMPLES=300 RUNBACK_SCALE_BATCHES=100 \
	  RUNBACK_EVENT_LINES=10000 \
	  $(BIN)/pytest tests/e2e/test_chaos.py tests/e2e/test_scale_out.py \
	  tests/e2e/test_pg_restart.py tests/e2e/test_openapi_fuzz.py tests/e2e/test_batches_scale.py \
	  tests/unit/test_run_events.py

bench: $(VENV)/.bench  ## P1-P8 in quick mode (about 10 minutes); rewrites docs/benchmarks.md
	$(BIN)/python bench/run.py --mode quick

bench-full: $(VENV)/.bench  ## P1-P8 at full size
	$(BIN)/python bench/run.py --mode full

lock: $(BIN)/python  ## re-pin every dependency after changing pyproject.toml
	$(BIN)/pip install -q 'pip-tools>=7.4'
	$(BIN)/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links --extra server --extra dev --extra bench -o $(LOCK) pyproject.toml
	$(BIN)/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links -o requirements-openapi.lock requirements-openapi.in

clean:
	rm -rf $(VENV) $(GEN_VENV) .mypy_cache .ruff_cache .pytest_cache
