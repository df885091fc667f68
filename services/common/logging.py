"""structlog set up once per process, readable in a terminal or as JSON lines.

Every line of a service has one format, its own and its libraries' alike: the
standard library's records (aiokafka, uvicorn, mode, pymongo) are rendered by
the same structlog renderer. Libraries speak from WARNING up; jobledger's own
loggers at ``settings.log_level``.

Every line carries the service, and where one is at work the job, command,
correlation id and tenant (:func:`job_context`, structlog's contextvars): a
line logged while deciding a command or running an attempt says which,
whoever logged it."""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import Processor

from services.common.settings import ConnectionSettings

LIBRARY_LEVEL = logging.WARNING
"""Below this, libraries narrate their own start-up and group joins: noise to a user of jobledger."""


def configure_logging(settings: ConnectionSettings, service: str) -> structlog.stdlib.BoundLogger:
    level = logging.getLevelName(settings.log_level.upper())
    renderer = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    stamped: list[Processor] = [structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True)]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *stamped, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                *stamped,
                structlog.stdlib.add_logger_name,
                structlog.processors.format_exc_info,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, LIBRARY_LEVEL))
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)  # every line of the process, a library's too
    return structlog.get_logger()


def job_context(job_id: str, tenant: str, correlation_id: str | None, **more: object):
    """Bind a job's identity to every line logged inside (a ``with`` block; a task copies it)."""
    return structlog.contextvars.bound_contextvars(
        job_id=job_id, tenant=tenant, **({"correlation_id": correlation_id} if correlation_id else {}), **more
    )
