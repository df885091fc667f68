"""Job handlers: the implementation bound to each declared job type.

    from schemas.builtin import SLEEP            # or your own declarations
    from services.processor.handlers import JobContext, handler

    @handler(SLEEP)
    async def sleep(ctx: JobContext, payload: SleepPayload) -> dict:
        ...

A job type is declared in the contract (:mod:`schemas.jobtypes`) so ingest can
validate payloads without loading job code. ``@handler("name", payload=Model)``
declares and binds in one step, for a type only this process needs to know.
A handler returns the job's result (any JSON value) or raises; the runner
turns either into a command. Raising :class:`PermanentError` fails the job at
once, whatever attempts are left.

A handler learns about its job through :class:`JobContext`: ``ctx.attempt``,
``await ctx.progress(percent, message)``, and ``ctx.cancelled`` (``True``
once someone asked to cancel the job; stop soon, the attempt is cancelled
after the grace period anyway), and ``ctx.log.info(message, **fields)`` for
the job's own log (``GET /jobs/{id}/logs``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel

from schemas import JobledgerError
from schemas.artifacts import UPLOAD_PREFIX
from schemas.jobtypes import ByJobType, EmptyPayload, JobType, UnknownJobType, catalog
from schemas.logs import DEFAULT_LINES_PER_JOB, LogLevel, clipped
from services.common.modules import import_modules

__all__ = [
    "EmptyPayload",
    "HandlerRegistry",
    "JobContext",
    "JobLog",
    "PermanentError",
    "RetryLater",
    "UnknownJobType",
    "handler",
    "load_handlers",
]


class PermanentError(JobledgerError):
    """Raise from a handler to fail the job now: retrying would not help."""


class RetryLater(JobledgerError):
    """Raise from a handler: this attempt failed, and the next one should come
    no sooner than ``after_s`` seconds (a service's ``Retry-After``). The job's
    backoff still applies, and so does its attempt budget."""

    def __init__(self, message: str, after_s: float) -> None:
        super().__init__(message)
        self.after_s = after_s


@dataclass
class JobLog:
    """``ctx.log``: lines for the job's log (``GET /jobs/{id}/logs``), not the
    process's. ``ctx.log.info("resized", width=640)``; each level takes a
    message and any JSON-able fields. Writing is cheap: the runner ships the
    lines in the background. Past ``cap`` lines an attempt's further lines are
    dropped and counted (the last line says how many)."""

    cap: int = DEFAULT_LINES_PER_JOB
    written: int = 0
    dropped: int = 0
    _pending: list[tuple[int, LogLevel, str, dict[str, Any], datetime]] = field(default_factory=list)

    def debug(self, message: str, **fields: Any) -> None:
        self.write(LogLevel.DEBUG, message, fields)

    def info(self, message: str, **fields: Any) -> None:
        self.write(LogLevel.INFO, message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        self.write(LogLevel.WARNING, message, fields)

    def error(self, message: str, **fields: Any) -> None:
        self.write(LogLevel.ERROR, message, fields)

    def write(self, level: LogLevel, message: str, fields: dict[str, Any]) -> None:
        if self.written >= self.cap:
            self.dropped += 1
            return
        self.written += 1
        self._pending.append((self.written, LogLevel(level), clipped(str(message)), fields, datetime.now(timezone.utc)))

    def close(self) -> None:
        """The attempt ended: say how many lines the cap dropped, if any."""
        if self.dropped:
            self.written += 1
            note = f"{self.dropped} more lines were dropped: an attempt keeps {self.cap}"
            self._pending.append((self.written, LogLevel.WARNING, note, {}, datetime.now(timezone.utc)))
            self.dropped = 0

    def take(self) -> list[tuple[int, LogLevel, str, dict[str, Any], datetime]]:
        """The lines written since the last call: (number, level, message, fields, time)."""
        taken, self._pending = self._pending, []
        return taken


@dataclass
class JobContext:
    """What a running handler knows about its job, and how it talks back."""

    job_id: str
    attempt: int
    tenant: str
    step: str | None = None
    """The pipeline step this attempt runs (``None``: a plain job)."""
    inputs: dict[str, Any] = field(default_factory=dict)
    """A step's view of the steps it depends on: their results by step name (a
    compensation: the result of the step it undoes)."""
    compensating: bool = False
    """True when this attempt runs a step's compensation."""
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    latest_progress: tuple[float, str | None] | None = None
    """Set by :meth:`progress`; the runner sends it on, coalesced (see docs)."""
    uploads: Callable[[str, str], Awaitable[bytes]] | None = None
    """Set by the runner when it has an artifact store: reads a tenant's upload by id."""
    log: JobLog = field(default_factory=JobLog)
    """The job's own log: ``ctx.log.info("message", key=value)``."""

    @property
    def cancelled(self) -> bool:
        """True once a cancel was requested: finish up and return or raise."""
        return self.cancel_requested.is_set()

    async def upload(self, ref: str) -> bytes:
        """The bytes of a file uploaded with ``POST /uploads``, named in the
        payload as ``upload:<id>`` (checked against its sha256)."""
        if self.uploads is None:
            raise PermanentError("this runner has no artifact store (JOBLEDGER_S3_ENDPOINT): it cannot read uploads")
        if not ref.startswith(UPLOAD_PREFIX):
            raise PermanentError(f"{ref[:100]!r} names no upload: an upload is upload:<id> (POST /uploads)")
        return await self.uploads(self.tenant, ref.removeprefix(UPLOAD_PREFIX))

    async def progress(self, percent: float, message: str | None = None) -> None:
        """Report how far the job is (0–100). Cheap: call it as often as you like."""
        if not 0 <= percent <= 100:
            raise ValueError(f"progress must be within 0..100, got {percent}")
        self.latest_progress = (float(percent), message)
        await asyncio.sleep(0)


Handler = Callable[[JobContext, Any], Awaitable[Any]]


@dataclass(frozen=True)
class JobHandler:
    job_type: JobType
    run: Handler

    @property
    def name(self) -> str:
        return self.job_type.name


class HandlerRegistry(ByJobType[JobHandler]):
    """The handler bound to each job type this process runs."""

    def handler(self, job_type: JobType | str, *, payload: type[BaseModel] | None = None) -> Callable[[Handler], Handler]:
        """Bind ``func`` to ``job_type``: a declared :class:`JobType`, or a name
        (declared here when ``payload`` is given or the name is not declared yet)."""
        if isinstance(job_type, str):
            if payload is None and job_type in catalog:
                job_type = catalog.get(job_type)
            else:
                job_type = catalog.declare(job_type, payload=payload or EmptyPayload)

        def register(func: Handler) -> Handler:
            known = self._by_name.get(job_type.name)
            if known is not None and known.run is not func:
                raise ValueError(f"job type {job_type.name!r} already has a handler")
            self._by_name[job_type.name] = JobHandler(job_type, func)
            return func

        return register


registry = HandlerRegistry()
handler = registry.handler


def load_handlers(modules: Iterable[str]) -> HandlerRegistry:
    """Import the modules that bind handlers; return the registry they filled."""
    import_modules(modules)
    return registry
