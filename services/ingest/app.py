"""The ingest service: FastAPI app factory."""

from __future__ import annotations

from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from services.ingest import problems
from services.ingest.bootstrap import bootstrap, shutdown
from services.ingest.direct import DirectPaths
from services.ingest.keys import KeyTable
from services.ingest.observed import RequestMetrics
from services.ingest.problems import BodyTooLarge
from services.ingest.routes import ROUTERS
from services.ingest.routes.services import register_files
from services.ingest.settings import IngestSettings

log = structlog.get_logger(component="ingest")


class BodyLimit:
    """413 for a body over ``max_bytes``: at once when its Content-Length says
    so, and as soon as the bytes read pass it when it comes chunked. Plain ASGI
    (``BaseHTTPMiddleware`` costs every request a task), and not the
    framework's ``max_body_size``, which answers a Content-Length over the
    limit in plain text rather than as a problem document."""

    def __init__(self, app, max_bytes: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger or {}
        """Paths that take larger bodies (``/uploads``), and their limit."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.larger.get(scope["path"], self.max_bytes)
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > max_bytes:
                await BodyTooLarge(max_bytes).problem().response(scope["path"])(scope, receive, send)
                return
        read = 0

        async def limited() -> dict:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > max_bytes:
                    raise BodyTooLarge(max_bytes)
            return message

        await self.app(scope, limited, send)


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.ingest = await bootstrap(settings)
        try:
            registered = await register_files(app.state.ingest)
            if registered:
                log.info("services registered from files", services=registered)
            yield
        finally:
            await shutdown(app.state.ingest)

    app = FastAPI(
        title="jobledger",
        version="0.1.0",
        summary="Submit jobs, follow them, replay their history.",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry spans (a server span, one per dependency and serialization) off: the
        # request span is services.ingest.observed's, for the direct paths too, and costs nothing while off.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.settings = settings
    app.state.keys = KeyTable(settings.api_keys)
    problems.install(app)

    app.add_middleware(DirectPaths, keys=app.state.keys)  # inside the body limit: added first
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, larger={"/uploads": settings.max_upload_bytes})
    app.add_middleware(RequestMetrics)  # outermost: it sees every answer
    for router in ROUTERS:
        app.include_router(router)
    return app
