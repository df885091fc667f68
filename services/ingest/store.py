"""The routes' two ways out: reading a job as this ingest knows it, and
appending a command to the log (answered only once the broker acknowledged it)."""

from __future__ import annotations

import asyncio
import heapq
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from schemas import Command, Job, encode_command, parse_event, topics
from schemas.errors import ProblemCode
from services.adapters.log import read_to_end, topic_partitions
from services.adapters.readmodel import JobFilter, matches
from services.common import tracing
from services.ingest.accepted import FRESH_S
from services.ingest.bootstrap import Ingest
from services.ingest.problems import Problem

ELSEWHERE_POLL_S = 0.05
"""How often a read waiting for a job accepted elsewhere looks again (its submission wakes nothing here)."""


async def find_job(state: Ingest, job_id: str, tenant: str, tail_first: bool = True) -> Job | None:
    """The job as the log's tail has heard it from its first event, if it has
    (no database read at all), or as accepted here moments ago if the tail has
    heard nothing of it yet; else as the read model has it, or as accepted
    here, with what the tail has heard since (read-your-writes within this
    ingest). ``tail_first=False`` reads the read model in any case, for a
    waiter that heard nothing for a while."""
    job = None
    if tail_first:
        job = state.watch.from_start(job_id)
        if job is None and not state.watch.heard_of(job_id):
            job = state.accepted.get(job_id, tenant, within_s=FRESH_S)
    if job is None or job.tenant != tenant:
        job = await state.read_model.job(job_id, tenant) or state.accepted.get(job_id, tenant)
        if job is not None:
            state.watch.served(job_id, job.version)
    caught_up = state.watch.catch_up(job_id, job)
    return caught_up if caught_up is not None and caught_up.tenant == tenant else job


LIST_FRESH_S = 10.0
"""How far back a list looks at the jobs this ingest accepted: the projector holds
the document of a new job that has not ended back for up to JOBLEDGER_HOLD_NEW_MS
(5 s), so without them a list would leave out what its caller submitted a moment ago."""
LIST_FRESH_MAX = 2_000
"""At most this many of them are looked at for one list (the last accepted)."""
ACCEPTED_DISORDER = timedelta(seconds=1)
"""How far the order in which submissions were accepted (acknowledged) may stray from
the order of their creation times (taken before the broker's acknowledgement)."""


async def list_jobs(state: Ingest, wanted: JobFilter, limit: int) -> list[Job]:
    """Up to ``limit`` jobs ``wanted`` matches, newest first: the read model's, with the
    jobs this ingest accepted lately as the log's tail knows them now (:func:`with_fresh`)."""
    asked = limit
    while True:
        listed = await state.read_model.jobs(wanted, asked)
        jobs, dropped = with_fresh(state, wanted, listed, asked)
        if not dropped or len(listed) < asked:
            return jobs[:limit]
        asked += dropped  # the read model's page lost some: ask for as many more


def with_fresh(state: Ingest, wanted: JobFilter, listed: list[Job], enough: int) -> tuple[list[Job], int]:
    """``listed`` (read-model jobs, newest first) with the jobs this ingest accepted
    lately as the log's tail knows them now: a newer version replaces the read model's
    (or drops it, if it no longer matches), and one the read model lacks joins where its
    creation time puts it; and how many were dropped. Read-your-writes for lists within
    one ingest, as for single-job reads. The accepted jobs are looked at from the last
    accepted on, until ``enough`` of them match and the rest are older than all of those
    (by more than :data:`ACCEPTED_DISORDER`): they would fall past the page."""
    newest = {job.job_id: job for job in listed}
    changed, dropped = False, 0
    page: list[tuple[datetime, str]] = []  # the ``enough`` newest matching (created_at, id), a min-heap
    for command in state.accepted.recent(wanted.tenant, LIST_FRESH_S, LIST_FRESH_MAX):
        if len(page) >= enough and command.issued_at < page[0][0] - ACCEPTED_DISORDER:
            break
        job_id = command.job_id
        job = state.watch.from_start(job_id) or state.watch.catch_up(job_id, state.accepted.get(job_id, wanted.tenant))
        known = newest.get(job_id)
        if job is None:
            continue
        job = as_stored(job)
        if matches(job, wanted):
            (heapq.heappush if len(page) < enough else heapq.heappushpop)(page, (job.created_at, job_id))
            if known is None or known.version < job.version:
                newest[job_id], changed = job, True
            continue
        if known is not None and known.version < job.version:
            del newest[job_id]
            changed, dropped = True, dropped + 1
    if not changed:
        return listed, 0
    return sorted(newest.values(), key=lambda job: (job.created_at, job.job_id), reverse=True), dropped


def as_stored(job: Job) -> Job:
    """``job`` with its creation time as the database keeps it (milliseconds): pages
    are cut by it, and a page's cursor must mean the same to both."""
    created = job.created_at.replace(microsecond=job.created_at.microsecond // 1000 * 1000)
    return job if created == job.created_at else job.model_copy(update={"created_at": created})


async def job_events(
    state: Ingest, job_id: str, tenant: str, up_to_seq: int | None = None, up_to_time: datetime | None = None
) -> list[dict[str, Any]]:
    """The job's events as CloudEvents objects, in seq order: the read model's,
    then those the log's tail has heard since, so they agree with :func:`find_job`."""
    recorded = [event async for event in state.read_model.job_events(job_id, tenant, up_to_seq=up_to_seq, up_to_time=up_to_time)]
    for event in state.watch.heard_after(job_id, recorded[-1]["seq"] if recorded else 0):
        if event.tenant != tenant or (up_to_seq is not None and event.seq > up_to_seq):
            break
        if up_to_time is not None and event.occurred_at > up_to_time:
            break
        recorded.append(event.recorded())
    if recorded:
        state.watch.served(job_id, recorded[-1]["seq"])
    return recorded


async def history(
    state: Ingest, job_id: str, tenant: str, up_to_seq: int | None = None, up_to_time: datetime | None = None
) -> list[dict[str, Any]]:
    """The job's events for ``GET /jobs/{id}/events`` and ``as_of``: from the read models, or for a job past
    its retention from the log itself — the job's partition of jobs.events read from its start, so a read
    as slow as that partition is long (an auditor's, not a client's)."""
    try:
        await job_or_404(state, job_id, tenant)
    except Problem as gone:
        if not gone.extensions.get("swept"):
            raise
        return await logged_events(state, job_id, tenant, up_to_seq, up_to_time)
    return await job_events(state, job_id, tenant, up_to_seq, up_to_time)


async def logged_events(
    state: Ingest, job_id: str, tenant: str, up_to_seq: int | None, up_to_time: datetime | None
) -> list[dict[str, Any]]:
    partitions = sorted(tp.partition for tp in await topic_partitions(state.settings, topics.EVENTS))
    partition = DefaultPartitioner()(job_id.encode(), partitions, partitions)  # as the decider's producer placed them
    key, recorded = job_id.encode(), []
    async for records in read_to_end(state.settings, topics.EVENTS, {partition: None}):
        for record in records:
            if record.key != key:
                continue
            event = parse_event(record.value)
            if event.tenant != tenant or (up_to_seq is not None and event.seq > up_to_seq):
                continue
            if up_to_time is None or event.occurred_at <= up_to_time:
                recorded.append(event.recorded())
    return recorded


async def job_or_404(state: Ingest, job_id: str, tenant: str, tail_first: bool = True) -> Job:
    job = await find_job(state, job_id, tenant, tail_first)
    if job is None and state.settings.unknown_job_wait_s:
        job = await accepted_elsewhere(state, job_id, tenant)
    if job is None:
        raise Problem(404, ProblemCode.JOB_NOT_FOUND, "No such job", f"There is no job {job_id!r}.", job_id=job_id)
    if job.deleted_at is not None:
        raise Problem(
            404,
            ProblemCode.JOB_NOT_FOUND,
            "The job was deleted",
            f"Job {job_id!r} was deleted at {job.deleted_at.isoformat()}; the log keeps its history (jobledger audit export).",
            job_id=job_id,
        )
    ended = job.finished_at
    if ended is not None and state.settings.past_retention(tenant, ended, datetime.now(timezone.utc)):
        raise Problem(
            404,
            ProblemCode.JOB_NOT_FOUND,
            "The job is past its retention",
            f"Job {job_id!r} ended at {ended.isoformat()}; finished jobs of this tenant stay "
            f"{state.settings.retention_of(tenant)} in the read models (JOBLEDGER_RETENTION). Its history and "
            "as_of reads come from the log; jobledger replay --swap brings it back.",
            job_id=job_id,
            swept=True,
        )
    return job


async def accepted_elsewhere(state: Ingest, job_id: str, tenant: str) -> Job | None:
    """The job, if it appears within ``unknown_job_wait_s``: accepted by
    another ingest replica a moment ago, its submission reaches this one's
    tail of jobs.commands one hop later (read-your-writes across replicas)."""
    deadline = time.monotonic() + state.settings.unknown_job_wait_s
    async with state.watch.follow(job_id) as follower:  # listening before reading: no event slips between
        while (job := await find_job(state, job_id, tenant)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            await follower.arrival(min(left, ELSEWHERE_POLL_S))
    return job


async def append_command(state: Ingest, command: Command) -> None:
    await append_record(state, topics.COMMANDS, command.job_id, encode_command(command))


async def append_record(state: Ingest, topic: str, key: str, value: bytes) -> int:
    """Append a record and wait for the broker's acknowledgement (its offset), or answer 503."""
    try:
        delivery = await state.producer.send(topic, key=key.encode(), value=value, headers=tracing.headers() or None)
        offset: int = await asyncio.wait_for(delivery, state.settings.produce_timeout_s)
        return offset
    except Exception as error:
        raise Problem(
            503,
            ProblemCode.BROKER_UNAVAILABLE,
            "The job log is unavailable",
            f"The command was not acknowledged ({type(error).__name__}); nothing was accepted. Retry later.",
            headers={"Retry-After": "1"},
        ) from None
