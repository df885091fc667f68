"""The ingest service: FastAPI app factory."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.responses import Response

from services.common.kafka import make_producer
from services.common.readmodel import connect
from services.ingest import problems
from services.ingest.accepted import AcceptedJobs
from services.ingest.problems import Problem
from services.ingest.routes import router
from services.ingest.schedules import AcceptedSchedules
from services.ingest.schedules import router as schedule_router
from services.ingest.settings import IngestSettings
from services.processor.handlers import load_handlers


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state = app.state
        state.settings = settings
        state.registry = load_handlers(settings.handler_modules)
        state.accepted = AcceptedJobs(settings.accepted_cache_size)
        state.idempotency_locks = {}
        state.accepted_schedules = AcceptedSchedules()
        state.mongo = connect(settings)
        state.db = state.mongo[settings.mongo_db]
        state.producer = make_producer(settings)
        await state.producer.start()
        try:
            yield
        finally:
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

    @app.middleware("http")
    async def limit_body(request: Request, call_next) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_body_bytes:
            return Problem(
                413, "too-large", "Request body too large", f"The limit is {settings.max_body_bytes} bytes."
            ).response(request.url.path)
        return await call_next(request)

    app.include_router(router)
    app.include_router(schedule_router)
    return app
