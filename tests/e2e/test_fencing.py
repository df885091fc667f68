"""A zombie decider is fenced: two processors share the partitions; one is
paused (SIGSTOP) while its runner runs jobs, past the group's session timeout,
so the other takes its partitions over and finishes those jobs; then it is
resumed, its runner's reports in hand. Whatever it decides then, the broker
refuses: no event it appends after the pause is in the log, and no (job, seq)
holds two different events."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections import defaultdict
from collections.abc import AsyncIterator

import httpx
import pytest

from schemas import parse_event
from services.adapters.log import log_entries
from services.embedded.stack import EmbeddedStack
from services.ingest.settings import DEV_API_KEY
from services.processor.decider import DECIDER_HEADER
from tests.e2e.conftest import eventually, stack_settings, wait_for_job

pytestmark = pytest.mark.e2e

SESSION_TIMEOUT_S = 6.0
"""The deciders' group session: a member silent this long loses its partitions (the broker's least)."""


@pytest.fixture(scope="module")
async def pair(tmp_path_factory) -> AsyncIterator[EmbeddedStack]:
    settings = stack_settings(tmp_path_factory.mktemp("fencing"), replicas=2)
    settings.service_env["group_session_timeout_s"] = str(SESSION_TIMEOUT_S)
    stack = EmbeddedStack(settings)
    await stack.start()
    try:
        yield stack
    finally:
        for process in stack.processes.values():  # (a test that failed half way may leave one stopped)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGCONT)
        await asyncio.to_thread(stack.stop)


def log_of(stack: EmbeddedStack, name: str) -> str:
    return (stack.logs / f"{name}.log").read_text(errors="replace")


@pytest.mark.timeout(240)
async def test_a_decider_paused_past_its_session_cannot_append_once_resumed(pair):
    zombie = pair.processes["processor-2"]
    identity = f"{socket.gethostname()}:{zombie.pid}"
    async with httpx.AsyncClient(base_url=pair.api_url, headers={"Authorization": f"Bearer {DEV_API_KEY}"}, timeout=30) as api:
        await eventually(lambda: "partitions fenced" in log_of(pair, "processor-2"))
        submitted = [
            (await api.post("/jobs", json={"type": "sleep", "payload": {"seconds": 2}, "max_attempts": 5})).json()["id"]
            for _ in range(12)
        ]

        async def running_on_the_zombie() -> bool:
            for job_id in submitted:
                if (await api.get(f"/jobs/{job_id}")).json()["state"] == "RUNNING":
                    events = (await api.get(f"/jobs/{job_id}/events")).json()["items"]
                    if any(event["data"].get("runner_id") == identity for event in events):
                        return True
            return False

        await eventually(running_on_the_zombie)
        os.killpg(zombie.pid, signal.SIGSTOP)
        paused_at = time.time()
        # The other decider takes the partitions over; the zombie's attempts run out their lease and run again there.
        jobs = await asyncio.gather(*(wait_for_job(api, job_id) for job_id in submitted))
        resumed_at = time.time()
        os.killpg(zombie.pid, signal.SIGCONT)
        await eventually(lambda: "fenced: another decider owns" in log_of(pair, "processor-2") or zombie.poll() is not None)
        await asyncio.sleep(1.0)  # whatever else it had in hand

    events = defaultdict(set)
    late = []
    async for record in log_entries(pair.settings):
        event = parse_event(record.value)
        events[(event.job_id, event.seq)].add(event.hash)
        if dict(record.headers).get(DECIDER_HEADER) == identity.encode() and record.timestamp >= paused_at * 1000:
            late.append((event.job_id, event.seq, event.type))

    assert resumed_at - paused_at > SESSION_TIMEOUT_S
    assert {job["state"] for job in jobs} == {"SUCCEEDED"}
    assert late == [], "the zombie appended after it was paused"
    assert [key for key, hashes in events.items() if len(hashes) > 1] == []
