"""The projector's hold across a rebalance: a new job's document is held back
until the job ends (JOBLEDGER_HOLD_NEW_MS); when a second projector joins or
leaves, the partitions that move are read again from before the first event
of every job held there, so no document is lost or left behind its events."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from services.adapters.readmodel import JOB_EVENTS
from services.common.settings import PROJECTOR_GROUP
from tests.e2e.conftest import drained, eventually, wait_for_job, waiting_jobs

pytestmark = pytest.mark.e2e


async def listed(api, label: str) -> dict[str, dict]:
    page = (await api.get("/jobs", params={"label": f"hold:{label}", "limit": 1000})).json()
    return {job["id"]: job for job in page["items"]}


async def test_jobs_held_while_a_projector_joins_and_leaves_are_all_written_once_with_every_event(api, stack, db):
    label = uuid.uuid4().hex
    ids = await waiting_jobs(api, {"hold": label}, 16)
    stack.start_projector("projector-2")
    try:
        await eventually(lambda: _two_members(stack), timeout_s=60)  # both hold partitions now
        ids += await waiting_jobs(api, {"hold": label}, 16)
        both = await eventually(lambda: _all_listed(api, label, ids), timeout_s=60)
    finally:
        stack.stop_service("projector-2")
    ids += await waiting_jobs(api, {"hold": label}, 8)  # held while the partitions move back
    alone = await eventually(lambda: _all_listed(api, label, ids), timeout_s=60)
    for job_id in ids:
        assert (await api.post(f"/jobs/{job_id}/cancel")).status_code == 202
    cancelled = [await wait_for_job(api, job_id) for job_id in ids]
    await drained(stack)
    final = await listed(api, label)

    assert {job["state"] for job in both.values()} == {"PENDING"} and len(both) == 32
    assert {job["state"] for job in alone.values()} == {"PENDING"} and len(alone) == 40
    assert {job["state"] for job in cancelled} == {"CANCELLED"}
    assert {job_id: job["state"] for job_id, job in final.items()} == dict.fromkeys(ids, "CANCELLED")
    for job in cancelled:
        events = await db[JOB_EVENTS].count_documents({"job_id": job["id"]})
        assert events == job["version"] == final[job["id"]]["version"], job["id"]


async def _all_listed(api, label: str, ids: list[str]) -> dict[str, dict] | None:
    found = await listed(api, label)
    return found if set(found) == set(ids) else None


async def _two_members(stack) -> bool:
    """Whether the projectors' group is stable with two members."""
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.settings.kafka_bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_consumer_groups([PROJECTOR_GROUP])
        error, _, state, *_, members = described.groups[0][:6]
        return not error and state == "Stable" and len(members) == 2
    finally:
        await admin.close()
