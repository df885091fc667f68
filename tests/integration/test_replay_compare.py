"""Replay's comparison, both ways, on a database of its own: the live read
model must hold exactly what the rebuilt one does — no job the log lacks, no
event altered."""

from __future__ import annotations

import uuid

import pytest

from schemas import topics
from services.adapters.log import make_consumer, topic_partitions
from services.adapters.projections import JobProjection
from services.adapters.readmodel import JOB_EVENTS, JOBS, ensure_indexes
from services.replay import compare
from tests.integration.test_readmodel import history

pytestmark = pytest.mark.integration

SUFFIX = "_replay"


@pytest.fixture
async def rebuilt_and_live(db, stack):
    """The same two jobs projected into the live collections and the rebuilt ones;
    ``ends``: the log's current end, so nothing counts as appended since."""
    own = db.client[f"it_replay_{uuid.uuid4().hex[:8]}"]
    await ensure_indexes(own)
    events = history("acme", 1) + history("acme", 2)
    await JobProjection(own).apply(events)
    await JobProjection(own, jobs=JOBS + SUFFIX, job_events=JOB_EVENTS + SUFFIX).apply(events)
    consumer = make_consumer(stack.settings)
    await consumer.start()
    try:
        ends = {
            tp.partition: offset
            for tp, offset in (await consumer.end_offsets(await topic_partitions(stack.settings, topics.EVENTS))).items()
        }
    finally:
        await consumer.stop()
    yield own, ends
    await db.client.drop_database(own.name)


async def test_identical_read_models_compare_the_same(rebuilt_and_live, stack):
    own, ends = rebuilt_and_live

    result = await compare(own, SUFFIX, stack.settings, ends)

    assert result.same and result.identical == 2


async def test_a_job_only_in_the_live_read_model_and_an_altered_event_are_reported(rebuilt_and_live, stack):
    own, ends = rebuilt_and_live
    real = await own[JOBS].find_one({"_id": "job-01"})
    await own[JOBS].insert_one({**real, "_id": "forged-job", "job_id": "forged-job"})
    first = await own[JOB_EVENTS].find_one({"job_id": "job-02", "seq": 1})
    await own[JOB_EVENTS].update_one({"_id": first["_id"]}, {"$set": {"event.data.payload": {"forged": True}}})

    result = await compare(own, SUFFIX, stack.settings, ends)

    assert not result.same
    assert result.only_live == ["forged-job"]
    assert result.events_differing == [first["_id"]]
