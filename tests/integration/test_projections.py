"""The projection's writes against the real database: a new job's document is
inserted, and a batch read again after a crash (the insert finds the job there
already) still leaves the document at the log's latest version, never behind."""

from __future__ import annotations

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
