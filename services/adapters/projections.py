"""JobProjection: folds batches of job events into the MongoDB read models.

The same ``apply_next`` fold as the processor and replay. One ``find`` for the
jobs a batch touches that are neither cached nor new, then one ``bulk_write``
per collection. A job whose first event in the batch is its first event of all
(seq 1) needs no lookup: its fold starts from nothing, and its document is
inserted rather than replaced (an insert costs the database a fraction of a
replacement). Writes are idempotent:

- a ``job_events`` document's ``_id`` is its ``(job_id, seq)``, so a
  redelivered event is a duplicate-key no-op;
- a job document is only replaced by one with a higher ``version``. Every
  writer's document is the exact fold of the log up to its version, so the
  highest version wins and a stale write is a duplicate-key no-op. An insert
  that finds the job already there (the batch is read again after a crash) is
  sent again as that guarded replacement.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import structlog
from pymongo import InsertOne, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from schemas import AnyEvent, Job, SequenceGap, apply_next
from services.adapters.job_logs import JOB_LOGS
from services.adapters.readmodel import JOB_EVENTS, JOBS, event_document, job_document, job_from_document, job_history

DUPLICATE_KEY = 11000
log = structlog.get_logger(component="projection")


@dataclass
class BatchOutcome:
    applied: int = 0
    duplicates: int = 0
    gaps: list[SequenceGap] = field(default_factory=list)
    rejected: list[tuple[Any, str]] = field(default_factory=list)
    """Items (events, schedule commands) refused for good, with the reason: for the dead-letter topic."""

    def add(self, other: "BatchOutcome") -> None:
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.gaps.extend(other.gaps)
        self.rejected.extend(other.rejected)


class JobProjection:
    def __init__(self, db: AsyncDatabase, cache_jobs: int = 50_000, jobs: str = JOBS, job_events: str = JOB_EVENTS) -> None:
        self._db = db
        self._cache: OrderedDict[str, Job] = OrderedDict()
        self._cache_jobs = cache_jobs
        self._jobs = db[jobs]
        self._events = db[job_events]
        self._logs = db[JOB_LOGS]

    def forget(self) -> None:
        """Drop cached states, e.g. when partitions move to another projector."""
        self._cache.clear()

    async def apply(self, events: list[AnyEvent]) -> BatchOutcome:
        outcome = BatchOutcome()
        first_seq: dict[str, int] = {}
        for event in events:
            first_seq.setdefault(event.job_id, event.seq)
        states = await self._states(first_seq)
        new = {job_id for job_id, seq in first_seq.items() if seq == 1 and job_id not in states}
        changed: dict[str, list[AnyEvent]] = {}
        for event in events:
            try:
                job = apply_next(states.get(event.job_id), event)
            except SequenceGap as gap:
                outcome.gaps.append(gap)
                continue
            if job is None:
                outcome.duplicates += 1
                continue
            states[event.job_id] = job
            changed.setdefault(event.job_id, []).append(event)
        if not changed:
            return outcome

        refused = await self._write(states, changed, new)
        await self._forget_deleted([states[job_id] for job_id in changed if job_id not in refused])
        for job_id, applied in changed.items():
            if job_id in refused:
                outcome.rejected.extend((event, refused[job_id]) for event in applied)
                self._cache.pop(job_id, None)
            else:
                outcome.applied += len(applied)
                self._remember(states[job_id])
        return outcome

    async def _states(self, first_seq: dict[str, int]) -> dict[str, Job]:
        """Cached or stored states of the jobs whose first event in the batch is not seq 1."""
        states = {job_id: self._cache[job_id] for job_id in first_seq if job_id in self._cache}
        missing = [job_id for job_id, seq in first_seq.items() if job_id not in states and seq > 1]
        if missing:
            async for document in self._jobs.find({"_id": {"$in": missing}}):
                states[document["_id"]] = job_from_document(document)
        return states

    async def _write(self, states: dict[str, Job], changed: dict[str, list[AnyEvent]], new: set[str]) -> dict[str, str]:
        """Write events then job documents; return job ids the database refused, with why."""
        event_ops, event_jobs = [], []
        for job_id, applied in changed.items():
            for event in applied:
                event_ops.append(InsertOne(event_document(event)))
                event_jobs.append(job_id)
        refused, _ = await _bulk(self._events, event_ops, event_jobs)

        job_ids = [job_id for job_id in changed if job_id not in refused]
        ops = [InsertOne(job_document(states[job_id])) if job_id in new else self._replace(states[job_id]) for job_id in job_ids]
        refused_jobs, duplicates = await _bulk(self._jobs, ops, job_ids)
        refused.update(refused_jobs)
        there_already = [job_id for job_id in duplicates if job_id in new]
        if there_already:
            more, _ = await _bulk(self._jobs, [self._replace(states[job_id]) for job_id in there_already], there_already)
            refused.update(more)
        return refused

    async def _forget_deleted(self, jobs: list[Job]) -> None:
        """A deleted job's events and log lines leave the read models (its tombstone stays in ``jobs``)."""
        for job in jobs:
            if job.deleted_at is not None:
                await self._events.delete_many({"_id": job_history(job.job_id)})
                await self._logs.delete_many({"job_id": job.job_id})

    @staticmethod
    def _replace(job: Job) -> ReplaceOne:
        """The job's document, unless the stored one is as new already."""
        document = job_document(job)
        del document["_id"]
        return ReplaceOne({"_id": job.job_id, "version": {"$lt": job.version}}, document, upsert=True)

    def _remember(self, job: Job) -> None:
        if self._cache_jobs <= 0:
            return
        self._cache[job.job_id] = job
        self._cache.move_to_end(job.job_id)
        while len(self._cache) > self._cache_jobs:
            self._cache.popitem(last=False)


async def _bulk(collection, ops: list, owners: list[str]) -> tuple[dict[str, str], set[str]]:
    """Run ``ops`` unordered. Returns the owners the database refused, with the
    reason, and the owners whose write was a duplicate key (a success here)."""
    if not ops:
        return {}, set()
    try:
        await collection.bulk_write(ops, ordered=False)
    except BulkWriteError as error:
        refused, duplicates = {}, set()
        for write_error in error.details.get("writeErrors", []):
            owner = owners[write_error["index"]]
            if write_error.get("code") == DUPLICATE_KEY:
                duplicates.add(owner)
            else:
                refused[owner] = write_error.get("errmsg", "write refused")
        if error.details.get("writeConcernErrors"):
            raise
        if refused:
            log.error("read model refused writes", jobs=sorted(refused))
        return refused, duplicates
    return {}, set()
