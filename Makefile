# jobledger — `make run` starts the embedded stack, `make test` runs the tests.
# Both install what they need first: uv (pinned, into .tools/), the Python
# dependencies from uv.lock (into .venv/, the database among them) and Apache
# Kafka's pinned jars (kafka/pom.xml, fetched by mvn into .tools/kafka-*/).
# Java 17+ and Maven must be on the machine; the install says so if not.

SHELL := /bin/bash
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
PYTHON ?= python3

.PHONY: help install browser run cluster test test-cluster lint test-unit bench bench-peers bench-databases bench-restart bench-soak bench-transactions bench-cluster chaos schemas clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode compiled once here: with PYTHONDONTWRITEBYTECODE set (as on the CI
# machines) every process would otherwise compile each import at every start
# (the CLI's --help 2.0 s → 0.55 s). The project's own code is compiled on each
# install, which skips what is up to date.
.venv/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

KAFKA_STAMP := $(TOOLS)/kafka-$(shell sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' kafka/pom.xml)/.installed

$(KAFKA_STAMP): kafka/pom.xml .venv/.installed
	$(UV) run --frozen python -m services.embedded.kafka install

S3_STAMP := $(TOOLS)/s3proxy-$(shell sed -n 's:.*<s3proxy.version>\(.*\)</s3proxy.version>.*:\1:p' s3/pom.xml)/.installed

$(S3_STAMP): s3/pom.xml .venv/.installed
	$(UV) run --frozen python -m services.embedded.s3 install

install: .venv/.installed $(KAFKA_STAMP) $(S3_STAMP) ## install everything (idempotent)
	@.venv/bin/python -m compileall -q -j 0 services schemas jobledger bench >/dev/null

run: install ## start broker, database and services on loopback; Ctrl-C stops them
	$(UV) run --frozen jobledger up

cluster: install ## three Kafka nodes (replication 3, min.insync 2) and two of each service on loopback (docs/scaling.md)
	$(UV) run --frozen jobledger up --cluster

browser: ## Debian's chromium, for the dashboard's browser test (apt-get, once)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
		echo "installing chromium from Debian (the dashboard's browser test)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: install browser ## unit, integration and end-to-end tests against the real embedded stack
	$(UV) run --frozen pytest

test-cluster: install ## only the tests of make cluster's shape (make test runs them too): replicas, two ingests, a fenced zombie decider, the quorum leader killed
	$(UV) run --frozen pytest -m cluster tests/e2e/test_cluster.py

lint: install ## ruff's checks and format on the whole tree, mypy on the contract and the SDK (pyproject.toml); .ci/run runs it before the tests
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

test-unit: install ## the fast unit tests only
	$(UV) run --frozen pytest tests/unit

BENCH_ARGS ?=

bench: install ## every scenario against the raw broker/database limits, as make run runs (BENCH_ARGS=…)
	$(UV) run --frozen python -m bench $(BENCH_ARGS)

bench-peers: install ## jobledger and Celery + Redis driven by the same client, in one run, with ratios
	@command -v redis-server >/dev/null || { echo "installing redis-server from Debian"; apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
	$(UV) run --frozen --group peers python -m bench.peers $(BENCH_ARGS)

bench-databases: install ## the embedded database candidates on the projector's own write pattern
	$(UV) run --frozen python -m bench.databases $(BENCH_ARGS)

bench-restart: install ## how long make run takes to be ready with 100,000 jobs in the log
	$(UV) run --frozen python -m bench.restart $(BENCH_ARGS)

bench-soak: install ## 50,000 jobs through POST /jobs:batch: is the last 10,000's rate >= 90% of the first's?
	$(UV) run --frozen python -m bench.soak $(BENCH_ARGS)

bench-transactions: install ## what exactly-once (Kafka transactions) would cost the decider's relay
	$(UV) run --frozen python -m bench.transactions $(BENCH_ARGS)

bench-cluster: install ## what a job costs each part of make cluster's stack (CPU, requests, bytes): docs/scaling.md's figures
	$(UV) run --frozen python -m bench.cluster $(BENCH_ARGS)

chaos: install ## kill -9 each service, then every process, under load; check nothing accepted is lost (BENCH_ARGS=--cluster: on make cluster's stack)
	$(UV) run --frozen python -m bench.chaos $(BENCH_ARGS)

schemas: install ## regenerate schemas/json/, schemas/asyncapi.yaml and docs/openapi.json from the code
	$(UV) run --frozen python -m services.contract
	$(UV) run --frozen python -m services.ingest.openapi

clean: ## remove installed tools and local data
	rm -rf .venv $(TOOLS) var .pytest_cache
