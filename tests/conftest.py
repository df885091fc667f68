"""Fixtures every layer above the unit tests shares: one real embedded stack
per session (Apache Kafka, SecantusDB and the three services as subprocesses
on free loopback ports), stopped at the end. The integration tests use its
broker and database with topics, groups and databases of their own; the
end-to-end tests use all of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from services.embedded.stack import ANY_PORT, EmbeddedStack, StackSettings, stop_on_sigterm
from services.ingest.settings import DEV_API_KEY

# A CI timeout or kill sends SIGTERM: let the session fixtures stop the stack.
stop_on_sigterm()


LOG_LINES = 50
"""The test stack's cap on a job's log, small enough to pass in a test."""
LEASE_S = 3.0
"""Short, so a killed runner's attempt is declared lost within the test."""
SESSION_TIMEOUT_S = 6.0
"""The groups' session, the broker's least: a killed member's partitions move within the test (the default is 10 s)."""
HOLD_NEW_MS = 1000
"""The projector's hold of a new job's document: shorter than the default 5 s, since every
drain of a test waits for the held jobs (the full suite ran 30 s longer with 5 s)."""
FUZZ_KEY = "jl-fuzz-key"
"""Key of a tenant of its own for the fuzzing tests, so what they submit lists nowhere else."""
METRICS_KEY = "jl-metrics-key"
"""Key of a tenant of its own for the metrics test, so the counts it checks are of its jobs alone."""
RETENTION_KEY = "jl-retention-key"
"""Key of the one tenant whose finished jobs the test stack sweeps, RETENTION after they end."""
RETENTION = "2s"
READ_KEY = "jl-read-key"
"""A key of the default tenant that may only read."""
API_KEYS = f"{DEV_API_KEY}=default,{FUZZ_KEY}=fuzz,{METRICS_KEY}=metrics,{READ_KEY}=default:jobs:read,{RETENTION_KEY}=retention"


def stack_settings(data_dir, **overrides) -> StackSettings:
    """A test stack: free ports, a data directory of its own, short leases."""
    settings = dict(
        data_dir=data_dir,
        **ANY_PORT,
        mongo_storage="memory",
        partitions=4,
        service_env={
            "lease_s": str(LEASE_S),
            "group_session_timeout_s": str(SESSION_TIMEOUT_S),
            "progress_interval_s": "0.3",
            "api_keys": API_KEYS,
            "commit_interval_s": "0.1",
            "worker_beat_s": "0.5",
            "job_log_lines": str(LOG_LINES),
            "retention": f"retention={RETENTION}",
            "retention_sweep_s": "0.5",
            "hold_new_ms": str(HOLD_NEW_MS),
        },
    )
    settings.update(overrides)
    return StackSettings(**settings)


@pytest.fixture(scope="session")
async def stack(tmp_path_factory) -> AsyncIterator[EmbeddedStack]:
    # As `make run` runs it: the processor's decider feeds its own runner in memory.
    # Tests of runner-only processes start them (stack.start_runner).
    stack = EmbeddedStack(stack_settings(tmp_path_factory.mktemp("stack")))
    await stack.start()
    try:
        yield stack
    finally:
        await asyncio.to_thread(stack.stop)


@pytest.fixture(scope="session")
async def db(stack):
    client = AsyncMongoClient(stack.settings.mongo_url, tz_aware=True)
    yield client[stack.settings.mongo_db]
    await client.close()


@pytest.fixture(scope="session")
async def producer(stack) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()
