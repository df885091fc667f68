"""The read models in MongoDB: collection names, documents, indexes.

``jobs`` holds one document per job, the fold of its events (``version`` is
the seq of the last applied event). ``job_events`` holds every event once,
unique on ``(job_id, seq)``, so a redelivered event is a no-op.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from schemas import AnyEvent, Job
from schemas.schedules import Schedule
from services.common.settings import ConnectionSettings

JOBS = "jobs"
JOB_EVENTS = "job_events"
SCHEDULES = "schedules"


def connect(settings: ConnectionSettings) -> AsyncMongoClient:
    return AsyncMongoClient(settings.mongo_url, tz_aware=True, serverSelectionTimeoutMS=5_000)


async def ensure_indexes(db: AsyncDatabase, jobs: str = JOBS, job_events: str = JOB_EVENTS) -> None:
    await db[jobs].create_index([("tenant", ASCENDING), ("created_at", DESCENDING)])
    # GET /jobs?state=…: a rare state (FAILED among millions of SUCCEEDED) would scan the tenant otherwise.
    await db[jobs].create_index([("tenant", ASCENDING), ("status", ASCENDING), ("created_at", DESCENDING)])
    await db[job_events].create_index([("job_id", ASCENDING), ("seq", ASCENDING)], unique=True)
    await db[SCHEDULES].create_index([("tenant", ASCENDING), ("created_at", DESCENDING)])


def job_document(job: Job) -> dict[str, Any]:
    document = job.model_dump()
    document["_id"] = job.job_id
    document["status"] = job.status.value
    document["recent_commands"] = list(job.recent_commands)
    return document


def job_from_document(document: dict[str, Any]) -> Job:
    fields = {key: value for key, value in document.items() if key != "_id"}
    return Job.model_validate(fields)


def event_document(event: AnyEvent) -> dict[str, Any]:
    """An event as stored in ``job_events``: its wire form plus query fields."""
    return {
        "_id": event.event_id,
        "job_id": event.job_id,
        "seq": event.seq,
        "tenant": event.tenant,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "event": event.recorded(),  # as the log holds it, so its hash still verifies
    }


def schedule_document(schedule: Schedule) -> dict[str, Any]:
    return {
        "_id": schedule.schedule_id,
        "tenant": schedule.tenant,
        "created_at": schedule.created_at,
        "deleted": schedule.deleted_at is not None,
        "schedule": schedule.model_dump(),
    }


def schedule_from_document(document: dict[str, Any]) -> Schedule:
    return Schedule.model_validate(document["schedule"])
