"""Lists within one ingest see the jobs it accepted a moment ago: the read model's
page, with those jobs as the log's tail knows them (the projector holds a new job's
document back for seconds)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from schemas import CompleteJob, JobStatus, StartJob, SubmitJob, decide, fold
from schemas.options import JobOptions
from services.adapters.readmodel import JobFilter, matches
from services.ingest.accepted import AcceptedJobs
from services.ingest.settings import IngestSettings
from services.ingest.store import as_stored, list_jobs
from services.ingest.watch import JobWatch

T0 = datetime(2026, 12, 5, 12, tzinfo=timezone.utc)
TENANT = "acme"


class Record:
    def __init__(self, event) -> None:
        self.key = event.job_id.encode()
        self.value = event.to_bytes()


class Page:
    """A read model answering one fixed list, filtered as the database would."""

    def __init__(self, jobs) -> None:
        self.documents = jobs

    async def jobs(self, wanted: JobFilter, limit: int):
        found = [job for job in self.documents if matches(job, wanted)]
        return sorted(found, key=lambda job: (job.created_at, job.job_id), reverse=True)[:limit]


def submitted(job_id: str, second: int, **options) -> SubmitJob:
    return SubmitJob(
        command_id=f"{job_id}-submit",
        job_id=job_id,
        tenant=TENANT,
        issued_at=T0 + timedelta(seconds=second),
        job_type="noop",
        payload={},
        options=JobOptions(**options),
    )


def run(command: SubmitJob, *steps: type) -> list:
    """The events of ``command`` and then of each step (start, complete), as the decider emits them."""
    events = decide(command, None)
    for step in steps:
        job = fold(events)
        common = dict(command_id=f"{command.job_id}-{step.__name__}", job_id=command.job_id, tenant=TENANT, issued_at=T0)
        events += decide(step(**common, attempt=job.attempt, runner_id="r"), job)
    return events


def ingest(accepted: list[SubmitJob], heard: list, read_model: list):
    state = SimpleNamespace(accepted=AcceptedJobs(100), watch=JobWatch(IngestSettings(), poll_s=1.0), read_model=Page(read_model))
    for command in accepted:
        state.accepted.remember(command)
    for event in heard:
        state.watch._hand_over(Record(event))
    return state


def listing(state, limit: int = 10, **wanted) -> list[tuple[str, str]]:
    jobs = asyncio.run(list_jobs(state, JobFilter(tenant=TENANT, **wanted), limit))
    return [(job.job_id, job.status.value) for job in jobs]


def test_a_list_shows_the_jobs_accepted_here_as_the_tail_knows_them_newest_first():
    old = fold(run(submitted("old", 0), StartJob, CompleteJob))  # long ended: in the read model only
    done, queued, silent = submitted("done", 10), submitted("queued", 11), submitted("silent", 12, labels={"team": "ml"})
    done_events = run(done, StartJob, CompleteJob)
    stale = fold(done_events[:2])  # its document was written while it waited, then it ran and ended
    state = ingest([done, queued, silent], done_events + run(queued), [old, stale])

    everything = listing(state)
    pending = listing(state, status=JobStatus.PENDING)
    queued_only = listing(state, status=JobStatus.QUEUED)
    labelled = listing(state, labels={"team": "ml"})

    assert everything == [("silent", "PENDING"), ("queued", "QUEUED"), ("done", "SUCCEEDED"), ("old", "SUCCEEDED")]
    assert pending == [("silent", "PENDING")], "accepted, nothing heard yet: as accepted"
    assert queued_only == [("queued", "QUEUED")], "the read model's QUEUED document of 'done' is stale: left out"
    assert labelled == [("silent", "PENDING")]


def test_a_page_full_of_stale_documents_is_filled_from_the_read_model_past_them():
    ended = [submitted(f"ended-{n}", 10 + n) for n in range(3)]
    history = [run(command, StartJob, CompleteJob) for command in ended]
    waiting = [fold(events[:2]) for events in history]  # the read model has each QUEUED
    older = fold(run(submitted("older", 1)))  # QUEUED, accepted elsewhere: as the read model has it
    state = ingest(ended, [event for events in history for event in events], [*waiting, older])

    assert listing(state, limit=2, status=JobStatus.QUEUED) == [("older", "QUEUED")]


def test_another_tenants_jobs_and_later_pages_follow_the_filter_and_cursor():
    mine, theirs = submitted("mine", 20), submitted("theirs", 21).model_copy(update={"tenant": "other"})
    state = ingest([mine, theirs], [], [])
    page = asyncio.run(list_jobs(state, JobFilter(tenant=TENANT), 10))

    assert [job.job_id for job in page] == ["mine"]
    assert listing(state, after=(page[0].created_at, page[0].job_id)) == [], "past the cursor: nothing"


def test_pages_of_jobs_accepted_in_another_order_than_their_ids_hold_each_once():
    at = T0 + timedelta(seconds=30, microseconds=123_456)  # the database keeps milliseconds
    batch = [submitted(f"job-{n:02d}", 0).model_copy(update={"issued_at": at}) for n in (7, 2, 11, 0, 9, 4, 1, 10, 3, 8, 6, 5)]
    projected = [as_stored(fold(run(command))) for command in batch[:6]]  # half of them in the read model too
    state = ingest(batch, [], projected)

    seen, after = [], None
    while True:
        jobs = asyncio.run(list_jobs(state, JobFilter(tenant=TENANT, after=after), 5 + 1))
        seen += [job.job_id for job in jobs[:5]]
        if len(jobs) <= 5:
            break
        after = (jobs[4].created_at, jobs[4].job_id)

    assert seen == [f"job-{n:02d}" for n in reversed(range(12))]
