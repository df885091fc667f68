"""Job handlers: what a job type does, declared once with the payload it takes.

    from services.processor.handlers import handler

    class ResizePayload(BaseModel):
        url: str
        width: int = Field(gt=0)

    @handler("resize", payload=ResizePayload)
    async def resize(ctx: JobContext, payload: ResizePayload) -> dict:
        ...

Ingest validates submitted payloads against the same declaration, so a job
that was accepted can always be run. A handler returns the job's result (any
JSON value) or raises; the runner turns either into a command. Raising
:class:`PermanentError` fails the job at once, whatever attempts are left.

A handler learns about its job through :class:`JobContext`: ``ctx.attempt``,
``await ctx.progress(percent, message)``, and ``ctx.cancelled`` (``True``
once someone asked to cancel the job; stop soon, the attempt is cancelled
after the grace period anyway).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from schemas import JobledgerError


class EmptyPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UnknownJobType(JobledgerError):
    def __init__(self, job_type: str, known: Iterable[str]) -> None:
        self.job_type = job_type
        self.known = sorted(known)
        super().__init__(f"unknown job type {job_type!r}; known types: {', '.join(self.known)}")


class PermanentError(JobledgerError):
    """Raise from a handler to fail the job now: retrying would not help."""


@dataclass
class JobContext:
    """What a running handler knows about its job, and how it talks back."""

    job_id: str
    attempt: int
    tenant: str
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    latest_progress: tuple[float, str | None] | None = None
    """Set by :meth:`progress`; the runner sends it on, coalesced (see docs)."""

    @property
    def cancelled(self) -> bool:
        """True once a cancel was requested: finish up and return or raise."""
        return self.cancel_requested.is_set()

    async def progress(self, percent: float, message: str | None = None) -> None:
        """Report how far the job is (0–100). Cheap: call it as often as you like."""
        if not 0 <= percent <= 100:
            raise ValueError(f"progress must be within 0..100, got {percent}")
        self.latest_progress = (float(percent), message)
        await asyncio.sleep(0)


Handler = Callable[[JobContext, Any], Awaitable[Any]]


@dataclass(frozen=True)
class JobHandler:
    name: str
    payload: type[BaseModel]
    run: Handler


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, JobHandler] = {}

    def handler(self, name: str, *, payload: type[BaseModel] = EmptyPayload) -> Callable[[Handler], Handler]:
        """Register ``func`` as the handler of job type ``name``."""
        if not name or not isinstance(name, str):
            raise ValueError("a job type needs a non-empty name")
        if not (isinstance(payload, type) and issubclass(payload, BaseModel)):
            raise TypeError(f"payload of job type {name!r} must be a pydantic model class")

        def register(func: Handler) -> Handler:
            if name in self._handlers and self._handlers[name].run is not func:
                raise ValueError(f"job type {name!r} already has a handler")
            self._handlers[name] = JobHandler(name, payload, func)
            return func

        return register

    def get(self, name: str) -> JobHandler:
        try:
            return self._handlers[name]
        except KeyError:
            raise UnknownJobType(name, self._handlers) from None

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def validate(self, name: str, payload: dict[str, Any]) -> BaseModel:
        """The typed payload; raises UnknownJobType or pydantic.ValidationError."""
        return self.get(name).payload.model_validate(payload)


registry = HandlerRegistry()
handler = registry.handler


def load_handlers(modules: Iterable[str]) -> HandlerRegistry:
    """Import the modules that declare handlers; return the registry they filled."""
    for module in modules:
        importlib.import_module(module)
    return registry
