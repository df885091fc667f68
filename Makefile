# jobledger — `make run` starts the embedded stack, `make test` runs the tests.
# Both install what they need first: uv (pinned, into .tools/), the Python
# dependencies from uv.lock (into .venv/), and s3rver from package-lock.json.

SHELL := /bin/bash
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
PYTHON ?= python3

.PHONY: help install run run-memory test test-unit bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: .venv/.installed node_modules/.installed ## install everything (idempotent)

run: install ## start broker, database and services on loopback; Ctrl-C stops them
	$(UV) run --frozen jobledger up

run-memory: install ## like run, with the broker's log in memory
	$(UV) run --frozen jobledger up --memory

test: install ## unit and end-to-end tests against the real embedded stack
	$(UV) run --frozen pytest

test-unit: install ## the fast unit tests only
	$(UV) run --frozen pytest tests/unit

# The durable (s3rver) broker stalls under a 2,000-job burst for now; see README.
BENCH_ARGS ?= --memory

bench: install ## throughput and latency against the raw broker/database limits (BENCH_ARGS=…)
	$(UV) run --frozen python -m bench $(BENCH_ARGS)

clean: ## remove installed tools and local data
	rm -rf .venv $(TOOLS) node_modules var .pytest_cache
