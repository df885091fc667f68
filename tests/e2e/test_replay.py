"""Replay: the read models rebuilt from the log equal the live ones, and can replace them.

The log also holds whatever the other end-to-end tests ran before (successes,
retries, cancels, failures, schedules); each test drains the consumer groups
before it compares, so it depends on no other test.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import drained, jobledger, wait_for_job

pytestmark = pytest.mark.e2e


async def test_replay_rebuilds_identical_read_models_and_swaps_them_in(api, stack, db):
    mixed = [
        {"type": "noop"},
        {"type": "flaky", "payload": {"failures": 1}, "backoff": {"base_s": 0}},
        {"type": "fail", "max_attempts": 2, "backoff": {"base_s": 0}},
        {"type": "sleep", "payload": {"seconds": 30}},
    ]
    ids = [(await api.post("/jobs", json=body)).json()["id"] for body in mixed]
    await wait_for_job(api, ids[3], states={"RUNNING"})
    await api.post(f"/jobs/{ids[3]}/cancel")
    before = {job_id: (await wait_for_job(api, job_id)) for job_id in ids}
    assert [before[i]["state"] for i in ids] == ["SUCCEEDED", "SUCCEEDED", "FAILED", "CANCELLED"]
    await drained(stack)

    checked = await asyncio.to_thread(jobledger, stack, "replay")

    assert checked.returncode == 0, checked.stderr
    assert "identical" in checked.stderr and "0 differing, 0 missing live" in checked.stderr
    assert "jobs_replay" not in await db.list_collection_names(), "the rebuilt collections are dropped"

    swapped = await asyncio.to_thread(jobledger, stack, "replay", "--swap")

    assert swapped.returncode == 0, swapped.stderr
    assert "swapped" in swapped.stderr
    for job_id in ids:
        after = (await api.get(f"/jobs/{job_id}")).json()
        assert after == before[job_id]
    assert len((await api.get(f"/jobs/{ids[1]}/events")).json()["items"]) == before[ids[1]]["version"]
    later = (await api.post("/jobs", json={"type": "noop"})).json()["id"]
    assert (await wait_for_job(api, later))["state"] == "SUCCEEDED", "the projector goes on after the swap"
