"""Retention: a tenant's finished jobs leave the read models once they are older than its setting.

``JOBLEDGER_RETENTION`` (``acme=30d,*=90d``; unset: keep everything). A job
that ended (SUCCEEDED, FAILED, CANCELLED, REJECTED) before the cutoff is
removed with its events and log lines; the log keeps every event, so
``jobledger replay --swap`` brings them back (and the next sweep removes
them again), ``jobledger audit`` reads them, and the replay's comparison
counts a job missing for this reason as swept, not as a difference."""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from schemas import TERMINAL
from services.adapters.job_logs import JOB_LOGS
from services.adapters.readmodel import JOB_EVENTS, JOBS
from services.common.settings import ALL_TENANTS, ConnectionSettings

SWEEP_BATCH = 1000
"""Jobs removed per round of a sweep: each round is three deletes."""


async def sweep(db: AsyncDatabase, settings: ConnectionSettings, now: datetime) -> int:
    """Remove every job past its tenant's retention from the read models; how many."""
    if not settings.retention:
        return 0
    tenants = set(settings.retention) - {ALL_TENANTS}
    if ALL_TENANTS in settings.retention:
        tenants |= set(await db[JOBS].distinct("tenant"))
    swept = 0
    for tenant in sorted(tenants):
        keep = settings.retention_of(tenant)
        if keep is None:
            continue
        while True:
            query = {
                "tenant": tenant,
                "status": {"$in": [status.value for status in TERMINAL]},
                "finished_at": {"$lt": now - keep},
            }
            ids = [document["_id"] async for document in db[JOBS].find(query, {"_id": 1}, limit=SWEEP_BATCH)]
            if not ids:
                break
            # Events and lines first: a sweep cut short leaves the job, and the next one finishes it.
            await db[JOB_EVENTS].delete_many({"job_id": {"$in": ids}})
            await db[JOB_LOGS].delete_many({"job_id": {"$in": ids}})
            await db[JOBS].delete_many({"_id": {"$in": ids}})
            swept += len(ids)
            if len(ids) < SWEEP_BATCH:
                break
    return swept


def past_retention(settings: ConnectionSettings, document: dict, now: datetime) -> bool:
    """Whether a job (its read-model document) is one a sweep removes."""
    ended = document.get("status") in {status.value for status in TERMINAL}
    return ended and settings.past_retention(document.get("tenant", ""), document.get("finished_at"), now)
