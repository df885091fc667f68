"""``python -m services.ingest``: serve the HTTP API until stopped."""

from __future__ import annotations

import uvicorn

from services.common import tracing
from services.common.lifecycle import HttpServer, serve, shared_socket
from services.common.logging import configure_logging
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings


def main() -> None:
    settings = IngestSettings()
    configure_logging(settings, "ingest")
    tracing.configure_tracing("ingest")
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # its records go through jobledger's one format (services.common.logging)
        log_level=None,
        access_log=False,
        http="httptools",
    )

    async def parts() -> list:
        return [HttpServer(config, [shared_socket(settings.host, settings.port)] if settings.reuse_port else None)]

    serve(parts)


if __name__ == "__main__":
    main()
