"""Ingest's wiring: settings, adapters and job types, built once per process.

Routes receive an :class:`Ingest` (``Depends(ingest_of)``) and nothing else,
so a test can hand them another one (``app.dependency_overrides``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from pymongo import AsyncMongoClient

from schemas.jobtypes import JobTypes
from services.adapters.artifacts import ArtifactStore
from services.adapters.log import MAX_BATCH_BYTES
from services.adapters.rdproducer import RdProducer
from services.adapters.readmodel import ReadModel, connect
from services.adapters.secrets import Sealer
from services.adapters.service_registry import ServiceRegistry
from services.adapters.worker_table import WorkerTable
from services.common.modules import load_job_types
from services.ingest.accepted import AcceptedElsewhere, AcceptedJobs, AcceptedSchedules
from services.ingest.lag import ConsumerLag
from services.ingest.settings import IngestSettings
from services.ingest.watch import JobWatch


@dataclass
class Ingest:
    """Everything a route needs."""

    settings: IngestSettings
    job_types: JobTypes
    read_model: ReadModel
    producer: RdProducer
    watch: JobWatch
    mongo: AsyncMongoClient
    accepted: AcceptedJobs
    lag: ConsumerLag | None = None
    """Consumer lag for ``GET /status``, measured at most once a second."""
    artifacts: ArtifactStore | None = None
    """The S3 store of large results; ``None`` when ``s3_endpoint`` is empty."""
    accepted_schedules: AcceptedSchedules = field(default_factory=AcceptedSchedules)
    elsewhere: AcceptedElsewhere | None = None
    """With several ingest replicas: the submissions the others accept."""
    idempotency_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    """One lock per idempotent job id being submitted, so a key's racing repeats create one job."""
    services: ServiceRegistry = field(init=False)
    """Every tenant's registered services, folded from ``jobs.services`` (started by :func:`bootstrap`)."""
    workers: WorkerTable = field(init=False)
    """The live runners, folded from ``jobs.workers`` (started by :func:`bootstrap`)."""

    sealer: Sealer = field(init=False)
    """Seals the credentials a service registration gives (``JOBLEDGER_SECRET_KEY``)."""

    def __post_init__(self) -> None:
        self.services = ServiceRegistry(self.settings)
        self.workers = WorkerTable(self.settings)
        self.sealer = Sealer(self.settings.secret_key)


async def bootstrap(settings: IngestSettings) -> Ingest:
    """Build and start the adapters."""
    mongo = connect(settings)
    ingest = Ingest(
        settings=settings,
        job_types=load_job_types(settings.job_type_modules),
        read_model=ReadModel(mongo[settings.mongo_db]),
        producer=RdProducer(settings, MAX_BATCH_BYTES, delivery_timeout_s=settings.produce_timeout_s),
        watch=JobWatch(settings, settings.stream_poll_s),
        mongo=mongo,
        accepted=AcceptedJobs(settings.accepted_cache_size),
        lag=ConsumerLag(settings),
    )
    await ingest.producer.start()
    await ingest.watch.start()
    if settings.unknown_job_wait_s:
        ingest.elsewhere = AcceptedElsewhere(settings, ingest.accepted)
        await ingest.elsewhere.start()
    await ingest.services.start()
    await ingest.workers.start()
    if settings.s3_endpoint:
        ingest.artifacts = await ArtifactStore(settings).start()
    return ingest


async def shutdown(ingest: Ingest) -> None:
    await ingest.workers.stop()
    await ingest.services.stop()
    await ingest.watch.stop()
    if ingest.elsewhere is not None:
        await ingest.elsewhere.stop()
    await ingest.producer.stop()
    await ingest.mongo.close()
    if ingest.artifacts is not None:
        await ingest.artifacts.stop()


async def ingest_of(request: Request) -> Ingest:
    """The dependency every route takes. A coroutine: FastAPI runs a plain
    function dependency in a worker thread, a hand-off that cost every request
    a fifth of ingest's busy time."""
    return request.app.state.ingest


IngestDep = Annotated[Ingest, Depends(ingest_of)]
"""A route's parameter ``state: IngestDep`` receives the process's :class:`Ingest`."""
