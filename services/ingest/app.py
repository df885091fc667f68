"""The ingest service: FastAPI app factory."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from schemas.jobtypes import load_job_types
from services.common.kafka import make_producer
from services.common.readmodel import connect
from services.ingest import problems
from services.ingest.accepted import AcceptedJobs
from services.ingest.problems import BodyTooLarge
from services.ingest.routes import router
from services.ingest.schedules import AcceptedSchedules
from services.ingest.schedules import router as schedule_router
from services.ingest.settings import IngestSettings
from services.ingest.watch import JobWatch


class BodyLimit:
    """413 for a body over ``max_bytes``: at once when its Content-Length says
    so, and as soon as the bytes read pass it when it comes chunked. Plain ASGI
    (``BaseHTTPMiddleware`` costs every request a task), and not the
    framework's ``max_body_size``, which answers a Content-Length over the
    limit in plain text rather than as a problem document."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await BodyTooLarge(self.max_bytes).problem().response(scope["path"])(scope, receive, send)
                return
        read = 0

        async def limited() -> dict:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state = app.state
        state.settings = settings
        state.job_types = load_job_types(settings.job_type_modules)
        state.accepted = AcceptedJobs(settings.accepted_cache_size)
        state.idempotency_locks = {}
        state.accepted_schedules = AcceptedSchedules()
        state.mongo = connect(settings)
        state.db = state.mongo[settings.mongo_db]
        state.producer = make_producer(settings)
        await state.producer.start()
        state.watch = JobWatch(settings, settings.stream_poll_s)
        await state.watch.start()
        try:
            yield
        finally:
            await state.watch.stop()
            await state.producer.stop()
            await state.mongo.close()

    app = FastAPI(
        title="jobledger",
        version="0.1.0",
        summary="Submit jobs, follow them, replay their history.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    problems.install(app)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.include_router(router)
    app.include_router(schedule_router)
    return app
