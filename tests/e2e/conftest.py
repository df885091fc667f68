"""What the end-to-end tests share on top of the session's stack
(``tests/conftest.py``): HTTP clients, waits that hear the server, drains."""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from schemas import TERMINAL, JobStatus
from services.adapters.broker import READ_MODEL_GROUPS, drain
from services.adapters.consumer_runtime import open_consumer
from services.embedded.stack import EmbeddedStack
from services.ingest.settings import DEV_API_KEY
from tests.conftest import API_KEYS, FUZZ_KEY, LEASE_S, stack_settings  # noqa: F401  (the e2e tests import them from here)

JOB_TIMEOUT_S = 90.0


@pytest.fixture(scope="session")
async def api(stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {DEV_API_KEY}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="session")
async def anonymous(stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as client:
        yield client


async def read_topic(stack: EmbeddedStack, topic: str, until, timeout_s: float = JOB_TIMEOUT_S) -> list:
    """Records of ``topic`` from the start, until ``until(records)`` holds."""
    consumer = open_consumer(stack.settings.kafka_bootstrap, fetch_max_wait_ms=50)
    consumer.subscribe([topic])
    await consumer.start()
    records: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while not until(records):
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: condition not met after {len(records)} records")
            batches = await consumer.getmany(timeout_ms=200)
            records.extend(record for batch in batches.values() for record in batch)
        return records
    finally:
        await consumer.stop()


async def wait_for_job(api: httpx.AsyncClient, job_id: str, states=TERMINAL, timeout_s: float = JOB_TIMEOUT_S) -> dict:
    """The job once it is in one of ``states``."""
    wanted = {JobStatus(state).value for state in states}
    return await wait_until(api, job_id, lambda job: job["state"] in wanted, timeout_s)


async def wait_until(
    api: httpx.AsyncClient, job_id: str, condition, timeout_s: float = JOB_TIMEOUT_S, headers: dict[str, str] | None = None
) -> dict:
    """The job once ``condition(job)`` holds. Each read waits on the server for
    the job's next version (``?wait_s=``), so nothing here sleeps and polls."""
    deadline = time.monotonic() + timeout_s
    params: dict = {}
    while True:
        response = await api.get(f"/jobs/{job_id}", params=params, headers=headers)
        assert response.status_code == 200, response.text
        job = response.json()
        if condition(job):
            return job
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"job {job_id} still {job['state']} (version {job['version']}) after {timeout_s}s")
        params = {"wait_s": round(min(5.0, left), 3), "after_version": job["version"]}


async def waiting_jobs(api: httpx.AsyncClient, labels: dict[str, str], count: int) -> list[str]:
    """``count`` no-op jobs waiting an hour for their run_at, with ``labels``:
    they never end (nor emit anything) while a test runs; the ids."""
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    ids = []
    for _ in range(count):
        response = await api.post("/jobs", json={"type": "noop", "run_at": later, "labels": labels})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


async def cancel_unfinished(api: httpx.AsyncClient, stack: EmbeddedStack, headers: dict[str, str]) -> None:
    """Cancel, without grace, every job of the tenant of ``headers`` that has
    not ended, and wait until each has. Drained first: the projector holds a
    new job's document back for a moment, and lists are read models."""
    await drained(stack)
    unfinished = []
    for state in ("PENDING", "QUEUED", "RUNNING"):
        response = await api.get("/jobs", params={"state": state, "limit": 1000}, headers=headers)
        assert response.status_code == 200, response.text
        unfinished += [job["id"] for job in response.json()["items"]]
    for job_id in unfinished:
        response = await api.post(f"/jobs/{job_id}/cancel", json={"grace_s": 0}, headers=headers)
        assert response.status_code in (202, 409), response.text  # 409: it ended meanwhile
    ended = {status.value for status in TERMINAL}
    for job_id in unfinished:
        await wait_until(api, job_id, lambda job: job["state"] in ended, headers=headers)


async def drained(stack: EmbeddedStack) -> None:
    """Wait until the decider and the projector have processed their topics
    (``jobledger drain --read-model``): then the read models hold everything
    the log does."""
    await drain(stack.settings, timeout_s=JOB_TIMEOUT_S, groups=READ_MODEL_GROUPS)


async def eventually(probe, timeout_s: float = JOB_TIMEOUT_S, every_s: float = 0.2):
    """Call ``probe()`` (awaiting it if it is a coroutine function's call) until
    it returns something true, and return that; fails the test after
    ``timeout_s``. For what the API cannot wait on."""
    deadline = time.monotonic() + timeout_s

    async def value_of_probe():
        value = probe()
        return await value if inspect.isawaitable(value) else value

    while not (value := await value_of_probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{getattr(probe, '__name__', 'condition')} not met after {timeout_s}s")
        await asyncio.sleep(every_s)
    return value


def jobledger(
    stack: EmbeddedStack, *args: str, timeout_s: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the ``jobledger`` command line against the test stack (``env``: more variables)."""
    env = {
        **os.environ,
        "JOBLEDGER_KAFKA_BOOTSTRAP": stack.settings.kafka_bootstrap,
        "JOBLEDGER_MONGO_URL": stack.settings.mongo_url,
        "JOBLEDGER_MONGO_DB": stack.settings.mongo_db,
        "JOBLEDGER_URL": stack.api_url,
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True, timeout=timeout_s
    )
