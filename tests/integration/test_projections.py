"""The projection's writes against the real database: a new job's document is
inserted, and a batch read again after a crash (the insert finds the job there
already) still leaves the document at the log's latest version, never behind."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import pytest

from schemas import CompleteJob, JobStatus, StartJob, SubmitJob, decide, fold
from services.adapters.projections import JobProjection

pytestmark = pytest.mark.integration


def _history() -> list:
    """A no-op job's four events, as the decider emits them."""
    now = datetime.now(timezone.utc)
    job_id = f"projection-{uuid.uuid4()}"
    common = {"job_id": job_id, "tenant": "projection-test", "issued_at": now}
    events = decide(SubmitJob(command_id=str(uuid.uuid4()), job_type="noop", **common), None)
    for command_class in (StartJob, CompleteJob):
        job = fold(events)
        command = command_class(command_id=str(uuid.uuid4()), attempt=job.attempt, runner_id="r", **common)
        events += decide(command, job)
    return events


async def _stored(db, collections: dict, job_id: str) -> tuple[dict, int]:
    document = await db[collections["jobs"]].find_one({"_id": job_id})
    return document, await db[collections["job_events"]].count_documents({"job_id": job_id})


@pytest.fixture
def collections() -> dict:
    suffix = uuid.uuid4().hex[:8]
    return {"jobs": f"test_jobs_{suffix}", "job_events": f"test_job_events_{suffix}"}


async def test_a_batch_read_again_after_a_crash_reaches_the_latest_version(db, collections):
    events = _history()
    job_id = events[0].job_id
    await JobProjection(db, **collections).apply(events[:1])
    assert (await _stored(db, collections, job_id))[0]["version"] == 1

    # A fresh projector (nothing cached) reads the batch again, with more after it.
    outcome = await JobProjection(db, **collections).apply(events)

    document, stored_events = await _stored(db, collections, job_id)
    assert (document["version"], document["status"]) == (4, JobStatus.SUCCEEDED.value)
    assert stored_events == 4
    assert not outcome.rejected and not outcome.gaps


async def test_a_stale_read_never_moves_a_document_back(db, collections):
    events = _history()
    job_id = events[0].job_id
    await JobProjection(db, **collections).apply(events)

    await JobProjection(db, **collections).apply(events[:2])

    document, stored_events = await _stored(db, collections, job_id)
    assert (document["version"], document["status"]) == (4, JobStatus.SUCCEEDED.value)
    assert stored_events == 4


async def test_a_new_job_held_until_it_ends_is_written_once_with_its_end(db, collections):
    events = _history()
    job_id = events[0].job_id
    projection = JobProjection(db, **collections, hold_new_s=60)

    await projection.apply(events[:2])
    held_document, events_written = await _stored(db, collections, job_id)
    projection.forget()  # (a retry after a database error): a held job is a write still owed, not cache
    await projection.apply(events[2:])

    assert held_document is None and events_written == 2, "its events are written at once, its document held"
    document, stored_events = await _stored(db, collections, job_id)
    assert (document["version"], document["status"]) == (4, JobStatus.SUCCEEDED.value)
    assert stored_events == 4 and not projection.held


async def test_a_job_held_long_enough_is_written_by_the_next_batch_even_an_empty_one(db, collections):
    events = _history()
    job_id = events[0].job_id
    projection = JobProjection(db, **collections, hold_new_s=0.05)

    await projection.apply(events[:2])
    assert set(projection.held) == {job_id}
    await asyncio.sleep(0.06)
    await projection.apply([])
    document, _ = await _stored(db, collections, job_id)
    await projection.apply(events[2:])  # its end: a replacement now

    assert document["version"] == 2 and not projection.held
    assert (await _stored(db, collections, job_id))[0]["version"] == 4


async def test_a_dropped_hold_is_rebuilt_by_whoever_reads_the_events_again(db, collections):
    events = _history()
    job_id = events[0].job_id
    first = JobProjection(db, **collections, hold_new_s=60)
    await first.apply(events[:2])
    first.drop([job_id])  # its partition went to another projector, which reads from before the first event

    await JobProjection(db, **collections).apply(events)

    assert not first.held
    document, stored_events = await _stored(db, collections, job_id)
    assert (document["version"], stored_events) == (4, 4)
