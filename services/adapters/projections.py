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

**Holding a new job** (``hold_new_s``, the live projector's
``JOBLEDGER_HOLD_NEW_MS``): a job new in a batch that has not ended is not
written yet; its events are. Its document is inserted once it ends or once
it has been held that long, whichever comes first, so a short job costs one
insert instead of an insert and a replacement (a replacement costs the
database several inserts: docs/performance.md). Held states are pending
writes, not cache: :meth:`forget` keeps them. The caller must not count a
held job's events as durable (:attr:`held`; the projector keeps its position
before the first of them), so a crash reads them again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from pymongo import InsertOne, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from schemas import TERMINAL, AnyEvent, Job, SequenceGap, apply_next
from services.adapters.job_logs import JOB_LOGS
from services.adapters.readmodel import JOB_EVENTS, JOBS, event_document, job_document, job_from_document, job_history

DUPLICATE_KEY = 11000
HOLD_MAX_JOBS = 10_000
"""At most this many jobs held at once; past it a new job is written at once (memory, and how far a restart reads back)."""
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
    def __init__(
        self,
        db: AsyncDatabase,
        cache_jobs: int = 50_000,
        jobs: str = JOBS,
        job_events: str = JOB_EVENTS,
        hold_new_s: float = 0.0,
    ) -> None:
        self._db = db
        self._cache: OrderedDict[str, Job] = OrderedDict()
        self._cache_jobs = cache_jobs
        self._jobs = db[jobs]
        self._events = db[job_events]
        self._logs = db[JOB_LOGS]
        self._hold_new_s = hold_new_s
        self._held: dict[str, tuple[Job, float]] = {}
        """New jobs not ended whose document is not written yet: their state, and since when (monotonic)."""

    @property
    def held(self) -> Mapping[str, tuple[Job, float]]:
        """The jobs whose document is held back (their events are written)."""
        return self._held

    def forget(self) -> None:
        """Drop cached states, e.g. when partitions move to another projector.
        Held jobs stay: their documents are writes still owed (see :meth:`drop`)."""
        self._cache.clear()

    def drop(self, job_ids: Iterable[str]) -> None:
        """Give up held jobs without writing them: their partition went to another
        projector, which reads their events again from before the first."""
        for job_id in job_ids:
            self._held.pop(job_id, None)

    async def apply(self, events: list[AnyEvent]) -> BatchOutcome:
        outcome = BatchOutcome()
        first_seq: dict[str, int] = {}
        for event in events:
            first_seq.setdefault(event.job_id, event.seq)
        states = await self._states(first_seq)
        new = {job_id for job_id, seq in first_seq.items() if seq == 1 and job_id not in states}
        new.update(job_id for job_id in first_seq if job_id in self._held)  # never written: still an insert
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
        now = time.monotonic()
        for job_id, (job, since) in self._held.items():
            if job_id not in changed and now - since >= self._hold_new_s:  # held long enough: written as it is
                states[job_id] = job
                changed[job_id] = []
                new.add(job_id)
        if not changed:
            return outcome

        hold: dict[str, float] = {}  # jobs to hold, and since when they are held
        room = HOLD_MAX_JOBS - len(self._held)
        for job_id in changed:
            if job_id in new and states[job_id].status not in TERMINAL:
                since = self._held[job_id][1] if job_id in self._held else now
                if now - since < self._hold_new_s and (job_id in self._held or len(hold) < room):
                    hold[job_id] = since
        refused = await self._write(states, changed, new, hold)
        await self._forget_deleted([states[job_id] for job_id in changed if job_id not in refused])
        for job_id, applied in changed.items():
            if job_id in refused:
                outcome.rejected.extend((event, refused[job_id]) for event in applied)
                self._cache.pop(job_id, None)
                self._held.pop(job_id, None)
            elif job_id in hold:
                outcome.applied += len(applied)
                self._held[job_id] = (states[job_id], hold[job_id])
            else:
                outcome.applied += len(applied)
                self._held.pop(job_id, None)
                self._remember(states[job_id])
        return outcome

    async def _states(self, first_seq: dict[str, int]) -> dict[str, Job]:
        """Held, cached or stored states of the jobs whose first event in the batch is not seq 1."""
        states = {job_id: self._held[job_id][0] for job_id in first_seq if job_id in self._held}
        states.update((job_id, self._cache[job_id]) for job_id in first_seq if job_id in self._cache and job_id not in states)
        missing = [job_id for job_id, seq in first_seq.items() if job_id not in states and seq > 1]
        if missing:
            async for document in self._jobs.find({"_id": {"$in": missing}}):
                states[document["_id"]] = job_from_document(document)
        return states

    async def _write(
        self, states: dict[str, Job], changed: dict[str, list[AnyEvent]], new: set[str], hold: Mapping[str, float]
    ) -> dict[str, str]:
        """Write events, then the documents of the jobs not held; return job ids the database refused, with why."""
        event_ops, event_jobs = [], []
        for job_id, applied in changed.items():
            for event in applied:
                event_ops.append(InsertOne(event_document(event)))
                event_jobs.append(job_id)
        refused, _ = await _bulk(self._events, event_ops, event_jobs)

        job_ids = [job_id for job_id in changed if job_id not in refused and job_id not in hold]
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
