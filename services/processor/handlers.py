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
JSON value) or raises; the runner turns either into a command.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class JobContext:
    """What a running handler knows about its job."""

    job_id: str
    attempt: int
    tenant: str


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
