"""The read model's queries against the real database, on a database of their
own filled by the projection (the projector's own fold)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from aiokafka import TopicPartition

from schemas import CompleteJob, FailJob, JobOptions, JobStatus, Priority, StartJob, SubmitJob, decide, fold, topics
from services.adapters import positions
from services.adapters.projections import JobProjection
from services.adapters.readmodel import JOB_EVENTS, JOBS, LAYOUT, JobFilter, ReadModel, ensure_indexes, ensure_layout

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)


def history(tenant: str, n: int, *, fails: bool = False, **options) -> list:
    """Job ``n``'s events: submitted at T0 + n s, then run to its end."""
    at = T0 + timedelta(seconds=n)
    common = {"job_id": f"job-{n:02d}", "tenant": tenant, "issued_at": at}
    events = decide(
        SubmitJob(command_id=str(uuid.uuid4()), job_type="noop", options=JobOptions(max_attempts=1, **options), **common), None
    )
    job = fold(events)
    events += decide(StartJob(command_id=str(uuid.uuid4()), attempt=1, runner_id="r", **common), job)
    job = fold(events)
    end = (
        FailJob(command_id=str(uuid.uuid4()), attempt=1, runner_id="r", error="no", **common)
        if fails
        else CompleteJob(command_id=str(uuid.uuid4()), attempt=1, runner_id="r", **common)
    )
    return events + decide(end, job)


@pytest.fixture
async def read_model(db):
    own = db.client[f"it_readmodel_{uuid.uuid4().hex[:8]}"]
    await ensure_indexes(own)
    events = []
    for n in range(6):
        priority = Priority.HIGH if n < 2 else Priority.NORMAL
        events += history("acme", n, fails=n % 3 == 0, priority=priority, labels={"team": "ml" if n % 2 else "web"})
    events += history("other", 9)
    await JobProjection(own).apply(events)
    yield ReadModel(own)
    await db.client.drop_database(own.name)


async def test_jobs_are_listed_newest_first_filtered_and_paged(read_model):
    first = await read_model.jobs(JobFilter(tenant="acme"), limit=4)
    last = first[-1]
    rest = await read_model.jobs(JobFilter(tenant="acme", after=(last.created_at, last.job_id)), limit=4)

    assert [job.job_id for job in first + rest] == [f"job-{n:02d}" for n in (5, 4, 3, 2, 1, 0)]
    failed = await read_model.jobs(JobFilter(tenant="acme", status=JobStatus.FAILED), limit=10)
    assert [job.job_id for job in failed] == ["job-03", "job-00"]
    ml_high = await read_model.jobs(JobFilter(tenant="acme", labels={"team": "ml"}, priority=Priority.HIGH), limit=10)
    assert [job.job_id for job in ml_high] == ["job-01"]
    between = JobFilter(tenant="acme", created_after=T0 + timedelta(seconds=2), created_before=T0 + timedelta(seconds=4))
    window = await read_model.jobs(between, limit=10)
    assert [job.job_id for job in window] == ["job-03", "job-02"]


async def test_a_job_and_its_events_are_found_only_for_its_tenant(read_model):
    job = await read_model.job("job-01", "acme")
    events = [event async for event in read_model.job_events("job-01", "acme")]
    up_to_2 = [event["seq"] async for event in read_model.job_events("job-01", "acme", up_to_seq=2)]
    after_2 = [event["seq"] async for event in read_model.job_events("job-01", "acme", after_seq=2)]

    assert job.status is JobStatus.SUCCEEDED
    assert [event["seq"] for event in events] == list(range(1, job.version + 1))
    assert up_to_2 == [1, 2] and after_2 == list(range(3, job.version + 1))
    assert await read_model.job("job-01", "other") is None
    assert [event async for event in read_model.job_events("job-01", "other")] == []


async def test_jobs_are_counted_per_state_for_one_tenant(read_model):
    counts = await read_model.count_by_status("acme")

    assert counts["SUCCEEDED"] == 4 and counts["FAILED"] == 2
    assert set(counts) == {status.value for status in JobStatus}


async def test_read_models_in_an_older_layout_are_kept_aside_and_rebuilt_from_the_log(db):
    own = db.client[f"it_layout_{uuid.uuid4().hex[:8]}"]
    await own[JOBS].insert_one({"_id": "job-01", "version": 4})
    await own[JOB_EVENTS].insert_one({"_id": "an-event-id", "job_id": "job-01", "seq": 1})
    await positions.save(own, {TopicPartition(topics.EVENTS, 0): 120, TopicPartition(topics.SCHEDULES, 0): 7})

    assert await ensure_layout(own) is True

    assert await own[f"{JOBS}_layout1"].count_documents({}) == 1, "kept as a backup"
    assert await own[f"{JOB_EVENTS}_layout1"].count_documents({}) == 1
    assert await own[JOBS].count_documents({}) == 0 and await own[JOB_EVENTS].count_documents({}) == 0
    stored = await positions.load(own, [TopicPartition(topics.EVENTS, 0), TopicPartition(topics.SCHEDULES, 0)])
    assert stored == {TopicPartition(topics.EVENTS, 0): 0, TopicPartition(topics.SCHEDULES, 0): 7}, (
        "jobs.events is read again from its start"
    )
    assert await ensure_layout(own) is False, "once in the current layout, nothing more happens"


async def test_a_fresh_database_is_in_the_current_layout_at_once(db):
    own = db.client[f"it_layout_{uuid.uuid4().hex[:8]}"]
    assert await ensure_layout(own) is False
    assert (await own["read_model"].find_one({"_id": "layout"}))["version"] == LAYOUT
