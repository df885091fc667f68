"""Each job's log lines in the read models (collection ``job_logs``), capped per job.

One projector member owns a job's partition of ``jobs.logs`` at a time, so it
numbers the job's lines as they arrive (``index``, from 1) and stops at the
cap with one line saying so. A line delivered twice is stored once (its
``_id`` is :attr:`~schemas.logs.JobLogLine.line_id`); its second delivery
leaves a gap in the numbers, which a cursor skips."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from schemas.logs import JobLogLine, LogLevel, StoredLogLine

JOB_LOGS = "job_logs"
DUPLICATE_KEY = 11000
CACHED_JOBS = 10_000
"""Jobs whose line count is kept in memory; another job's is read from the database when its next line comes."""


async def ensure_log_indexes(db: AsyncDatabase) -> None:
    await db[JOB_LOGS].create_index([("job_id", ASCENDING), ("index", ASCENDING)])


class JobLogStore:
    def __init__(self, db: AsyncDatabase, cap: int) -> None:
        self._lines = db[JOB_LOGS]
        self._cap = cap
        self._counts: OrderedDict[str, int] = OrderedDict()
        """job id → the index of its last stored line"""

    def forget(self) -> None:
        self._counts.clear()

    async def add(self, lines: list[JobLogLine]) -> int:
        """Store ``lines`` (in arrival order) up to each job's cap; how many were stored."""
        documents = []
        for line in lines:
            count = await self._count(line.job_id)
            if count > self._cap:
                continue  # past the cap, and the cap's own line is stored
            count += 1
            documents.append(_document(line, count) if count <= self._cap else _cap_reached(line, count, self._cap))
            self._counts[line.job_id] = count
            self._counts.move_to_end(line.job_id)
        while len(self._counts) > CACHED_JOBS:
            self._counts.popitem(last=False)
        if not documents:
            return 0
        try:
            await self._lines.insert_many(documents, ordered=False)
        except BulkWriteError as error:  # lines delivered again after a restart: stored already
            if any(failure.get("code") != DUPLICATE_KEY for failure in error.details.get("writeErrors", [])):
                raise
            return len(documents) - len(error.details.get("writeErrors", []))
        return len(documents)

    async def _count(self, job_id: str) -> int:
        if job_id not in self._counts:
            last = await self._lines.find_one({"job_id": job_id}, sort=[("index", DESCENDING)], projection={"index": 1})
            self._counts[job_id] = last["index"] if last else 0
        return self._counts[job_id]


async def job_log_page(db: AsyncDatabase, job_id: str, tenant: str, after: int, limit: int) -> list[StoredLogLine]:
    """The job's lines numbered past ``after``, at most ``limit``, in order."""
    query = {"job_id": job_id, "tenant": tenant, "index": {"$gt": after}}
    cursor = db[JOB_LOGS].find(query, sort=[("index", ASCENDING)], limit=limit)
    return [StoredLogLine.model_validate(document) async for document in cursor]


def _document(line: JobLogLine, index: int) -> dict[str, Any]:
    return {
        "_id": line.line_id,
        "job_id": line.job_id,
        "tenant": line.tenant,
        "index": index,
        "attempt": line.attempt,
        "step": line.step,
        "runner_id": line.runner_id,
        "level": line.level.value,
        "message": line.message,
        "fields": line.fields,
        "at": line.at,
    }


def _cap_reached(line: JobLogLine, index: int, cap: int) -> dict[str, Any]:
    note = line.model_copy(
        update={"level": LogLevel.WARNING, "message": f"the job's log keeps {cap} lines: later lines are dropped", "fields": {}}
    )
    return {**_document(note, index), "_id": f"{line.job_id}:cap", "at": datetime.now(timezone.utc)}
