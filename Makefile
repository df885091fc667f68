# jobledger — `make run` starts the embedded stack, `make test` runs the tests.
# Both install what they need first: uv (pinned, into .tools/) and the Python
# dependencies from uv.lock (into .venv/), which include the broker and database.

SHELL := /bin/bash
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
PYTHON ?= python3

.PHONY: help install run run-memory test test-unit bench bench-memory schemas clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

install: .venv/.installed ## install everything (idempotent)

run: install ## start broker, database and services on loopback; Ctrl-C stops them
	$(UV) run --frozen jobledger up

run-memory: install ## like run, with the log and the read models in memory
	$(UV) run --frozen jobledger up --memory

test: install ## unit and end-to-end tests against the real embedded stack
	$(UV) run --frozen pytest

test-unit: install ## the fast unit tests only
	$(UV) run --frozen pytest tests/unit

# On the durable default log (as `make run`) with 2,000 jobs: 10,000 would
# take longer than the 10-minute budget there, because the embedded broker
# slows as its log grows (docs/performance.md). `make bench-memory` runs the
# 10,000 jobs on the in-memory log.
BENCH_ARGS ?=

bench: install ## every scenario against the raw broker/database limits, durable log, 2,000 jobs (BENCH_ARGS=…)
	$(UV) run --frozen python -m bench $(BENCH_ARGS)

bench-memory: install ## the same on the in-memory log, 10,000 jobs
	$(UV) run --frozen python -m bench --memory $(BENCH_ARGS)

schemas: install ## regenerate schemas/json/ and schemas/asyncapi.yaml from the models
	$(UV) run --frozen python -m schemas.generate

clean: ## remove installed tools and local data
	rm -rf .venv $(TOOLS) var .pytest_cache
