"""Replay: rebuild the read models from the logs into fresh collections —
``jobs`` and ``job_events`` from ``jobs.events``, ``schedules`` from
``jobs.schedules`` — compare them with the live ones, and swap them in.

The folds are the projector's own :class:`JobProjection` and
:class:`ScheduleProjection`, pointed at other collections: there is no second
implementation to drift. The swap renames
each rebuilt collection over the live one (``dropTarget``), which is atomic
per collection, so the API keeps serving throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from schemas import parse_event, topics
from schemas.schedules import ScheduleCommand, parse_schedule_command
from services.adapters.log import log_records
from services.adapters.projections import JobProjection
from services.adapters.readmodel import JOB_EVENTS, JOBS, SCHEDULES, ensure_indexes
from services.adapters.retention import past_retention
from services.adapters.schedule_projection import ScheduleProjection
from services.common.settings import ConnectionSettings

BATCH = 2000


@dataclass
class Comparison:
    identical: int = 0
    differing: list[tuple[str, list[str]]] = field(default_factory=list)
    """(job id, fields that differ)"""
    missing_live: list[str] = field(default_factory=list)
    """jobs the log has and the live read model lacks"""
    only_live: list[str] = field(default_factory=list)
    """jobs the live read model has and the log does not: written by something other than the log"""
    newer_live: list[str] = field(default_factory=list)
    """jobs the live model has at a later version, or that were created after the replay read the log"""
    events_replayed: int = 0
    events_live: int = 0
    events_differing: list[str] = field(default_factory=list)
    """ids of rebuilt job events that the live ``job_events`` lacks or holds otherwise"""
    schedules_differing: list[str] = field(default_factory=list)
    swept: int = 0
    """jobs the live read models lack because their tenant's retention removed them (JOBLEDGER_RETENTION)"""

    @property
    def same(self) -> bool:
        return not (self.differing or self.missing_live or self.only_live or self.events_differing or self.schedules_differing)


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
    await discard(db, suffix)
    await ensure_indexes(db, jobs, job_events)
    read = await fold_log(
        settings, JobProjection(db, cache_jobs=200_000, jobs=jobs, job_events=job_events), progress, ends_out=ends
    )
    await db[SCHEDULES + suffix].create_index([("tenant", 1), ("created_at", -1)])  # exists even when empty
    schedules = ScheduleProjection(db, SCHEDULES + suffix)
    commands: list[ScheduleCommand] = []
    async for raw in log_records(settings, topic=topics.SCHEDULES):
        try:
            commands.append(parse_schedule_command(raw))
        except (ValidationError, ValueError, TypeError):
            pass
    await schedules.apply(commands)
    return read


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


async def compare(db: AsyncDatabase, suffix: str, settings: ConnectionSettings, ends: dict[int, int]) -> Comparison:
    """The rebuilt read models against the live ones, both ways: every rebuilt
    job and event must be live and equal, and every live job must come from the
    log (read up to ``ends`` by the rebuild, or appended since)."""
    result = Comparison()
    rebuilt = db[JOBS + suffix]
    now = datetime.now(timezone.utc)
    swept: set[str] = set()
    result.events_replayed = await db[JOB_EVENTS + suffix].count_documents({})
    result.events_live = await db[JOB_EVENTS].count_documents({})

    async def check_jobs(documents: list[dict[str, Any]]) -> None:
        live = {doc["_id"]: doc async for doc in db[JOBS].find({"_id": {"$in": [d["_id"] for d in documents]}})}
        for document in documents:
            other = live.get(document["_id"])
            if other is None and past_retention(settings, document, now):
                swept.add(document["_id"])
            elif other is None:
                result.missing_live.append(document["_id"])
            elif other.get("version", 0) > document.get("version", 0):
                result.newer_live.append(document["_id"])
            elif other == document:
                result.identical += 1
            else:
                fields = sorted(k for k in document.keys() | other.keys() if document.get(k) != other.get(k))
                result.differing.append((document["_id"], fields))

    async def check_events(documents: list[dict[str, Any]]) -> None:
        live = {doc["_id"]: doc async for doc in db[JOB_EVENTS].find({"_id": {"$in": [d["_id"] for d in documents]}})}
        result.events_differing.extend(d["_id"] for d in documents if live.get(d["_id"]) != d and d["job_id"] not in swept)

    unknown: list[str] = []

    async def check_live(documents: list[dict[str, Any]]) -> None:
        ids = [d["_id"] for d in documents]
        known = {doc["_id"] async for doc in rebuilt.find({"_id": {"$in": ids}}, {"_id": 1})}
        unknown.extend(job_id for job_id in ids if job_id not in known)

    await _in_chunks(rebuilt.find({}).sort("_id", 1), check_jobs)
    result.swept = len(swept)
    await _in_chunks(db[JOB_EVENTS + suffix].find({}).sort("_id", 1), check_events)
    await _in_chunks(db[JOBS].find({}, {"_id": 1}).sort("_id", 1), check_live)
    if unknown:
        since = await jobs_in_log(settings, start=ends)
        result.newer_live.extend(job_id for job_id in unknown if job_id in since)
        result.only_live.extend(job_id for job_id in unknown if job_id not in since)
    live_schedules = {doc["_id"]: doc async for doc in db[SCHEDULES].find({})}
    async for document in db[SCHEDULES + suffix].find({}):
        if _schedule_differs(document, live_schedules.get(document["_id"])):
            result.schedules_differing.append(document["_id"])
    return result


async def _in_chunks(cursor, check: Callable[[list[dict[str, Any]]], Any], size: int = 1000) -> None:
    chunk: list[dict[str, Any]] = []
    async for document in cursor:
        chunk.append(document)
        if len(chunk) >= size:
            await check(chunk)
            chunk = []
    if chunk:
        await check(chunk)


async def jobs_in_log(settings: ConnectionSettings, start: dict[int, int]) -> set[str]:
    """The job ids (``subject``) of the events in ``jobs.events`` from ``start`` on."""
    subjects = set()
    async for raw in log_records(settings, start=start):
        try:
            subjects.add(str(orjson.loads(raw)["subject"]))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            pass
    return subjects


def _schedule_differs(rebuilt: dict[str, Any], live: dict[str, Any] | None) -> bool:
    """Differs, unless the live one only ticked on after the replay read the log."""
    if live is None:
        return True
    if live == rebuilt:
        return False
    mine, theirs = rebuilt["schedule"], live["schedule"]
    ticked_on = (theirs.get("last_tick") is not None) and (
        mine.get("last_tick") is None or theirs["last_tick"] >= mine["last_tick"]
    )
    return not ticked_on or {**mine, "last_tick": None} != {**theirs, "last_tick": None}


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
    await db[SCHEDULES + suffix].rename(SCHEDULES, dropTarget=True)
    await ensure_indexes(db)
    return await fold_log(settings, JobProjection(db, cache_jobs=0), progress, start=ends)


async def discard(db: AsyncDatabase, suffix: str) -> None:
    for name in (JOBS, JOB_EVENTS, SCHEDULES):
        await db[name + suffix].drop()
