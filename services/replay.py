"""Replay: rebuild the job read models from ``jobs.events`` into fresh
collections, compare them with the live ones, and swap them in.

The fold is the projector's own :class:`JobProjection`, pointed at other
collections: there is no second implementation to drift. The swap renames
each rebuilt collection over the live one (``dropTarget``), which is atomic
per collection, so the API keeps serving throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from schemas import parse_event
from services.audit import log_records
from services.common.readmodel import JOB_EVENTS, JOBS, ensure_indexes
from services.common.settings import ConnectionSettings
from services.projector.projection import JobProjection

BATCH = 2000


@dataclass
class Comparison:
    identical: int = 0
    differing: list[tuple[str, list[str]]] = field(default_factory=list)
    """(job id, fields that differ)"""
    missing_live: list[str] = field(default_factory=list)
    """jobs the log has and the live read model lacks"""
    newer_live: list[str] = field(default_factory=list)
    """jobs the live model has at a later version: events that came after the replay read the log"""
    events_replayed: int = 0
    events_live: int = 0

    @property
    def same(self) -> bool:
        return not self.differing and not self.missing_live


async def rebuild(
    settings: ConnectionSettings,
    db: AsyncDatabase,
    suffix: str,
    progress: Callable[[int | None, int], None],
    ends: dict[int, int],
) -> int:
    """Fold the whole log into ``jobs<suffix>`` and ``job_events<suffix>``;
    returns events read and stores the offsets it read up to in ``ends``."""
    jobs, job_events = JOBS + suffix, JOB_EVENTS + suffix
    await db[jobs].drop()
    await db[job_events].drop()
    await ensure_indexes(db, jobs, job_events)
    return await fold_log(settings, JobProjection(db, cache_jobs=200_000, jobs=jobs, job_events=job_events), progress, ends_out=ends)


async def fold_log(
    settings: ConnectionSettings,
    projection: JobProjection,
    progress: Callable[[int | None, int], None],
    start: dict[int, int] | None = None,
    ends_out: dict[int, int] | None = None,
) -> int:
    """Apply the log (from ``start``) to ``projection`` in batches; returns events read."""
    total: list[int | None] = [None]
    read = 0
    batch = []

    def on_total(count: int) -> None:
        total[0] = count
        progress(count, 0)

    async for raw in log_records(settings, on_total, start=start, ends_out=ends_out):
        read += 1
        try:
            batch.append(parse_event(raw))
        except (ValidationError, ValueError, TypeError):
            pass  # not a job event: the projector dead-lettered it
        if len(batch) >= BATCH:
            await projection.apply(batch)
            progress(total[0], len(batch))
            batch = []
    if batch:
        await projection.apply(batch)
        progress(total[0], len(batch))
    return read


async def compare(db: AsyncDatabase, suffix: str) -> Comparison:
    result = Comparison()
    rebuilt = db[JOBS + suffix]
    result.events_replayed = await db[JOB_EVENTS + suffix].count_documents({})
    result.events_live = await db[JOB_EVENTS].count_documents({})
    chunk: list[dict[str, Any]] = []

    async def check(documents: list[dict[str, Any]]) -> None:
        live = {doc["_id"]: doc async for doc in db[JOBS].find({"_id": {"$in": [d["_id"] for d in documents]}})}
        for document in documents:
            other = live.get(document["_id"])
            if other is None:
                result.missing_live.append(document["_id"])
            elif other.get("version", 0) > document.get("version", 0):
                result.newer_live.append(document["_id"])
            elif other == document:
                result.identical += 1
            else:
                fields = sorted(k for k in document.keys() | other.keys() if document.get(k) != other.get(k))
                result.differing.append((document["_id"], fields))

    async for document in rebuilt.find({}).sort("_id", 1):
        chunk.append(document)
        if len(chunk) >= 1000:
            await check(chunk)
            chunk = []
    if chunk:
        await check(chunk)
    return result


async def swap(
    settings: ConnectionSettings,
    db: AsyncDatabase,
    suffix: str,
    ends: dict[int, int],
    progress: Callable[[int | None, int], None],
) -> int:
    """Put the rebuilt collections in place of the live ones, then apply the
    log from ``ends`` (where the rebuild stopped) to the live ones: whatever the
    projector wrote meanwhile into the collections just replaced is written
    again. The fold is idempotent, so overlapping with the projector is safe.
    Returns the events of that tail."""
    await db[JOB_EVENTS + suffix].rename(JOB_EVENTS, dropTarget=True)
    await db[JOBS + suffix].rename(JOBS, dropTarget=True)
    return await fold_log(settings, JobProjection(db, cache_jobs=0), progress, start=ends)


async def discard(db: AsyncDatabase, suffix: str) -> None:
    await db[JOBS + suffix].drop()
    await db[JOB_EVENTS + suffix].drop()
