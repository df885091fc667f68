"""Every job event type, listed once, and reading one from the log: the
discriminated union, the upcasters that lift older versions, ``parse_event``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, Union

import orjson
from pydantic import Field, TypeAdapter

from schemas.events.envelope import Event
from schemas.events.job import (
    JobCancelled,
    JobCancelRequested,
    JobDeleted,
    JobFailed,
    JobProgressed,
    JobQueued,
    JobRejected,
    JobReleased,
    JobRetried,
    JobRetryScheduled,
    JobSlotRequested,
    JobStarted,
    JobSubmitted,
    JobSucceeded,
    JobUpdated,
    PipelineStarted,
)
from schemas.events.step import STEP_ENDED, STEP_EVENTS, StepQueued

ATTEMPT_ENDED: tuple[type[Event], ...] = (JobSucceeded, JobFailed, JobRetryScheduled, JobCancelled, JobReleased, *STEP_ENDED)
"""The events that end a job's (or, with ``data.step``, a step's) current attempt:
after one, no report of that attempt counts."""


EVENT_TYPES: tuple[type[Event], ...] = (
    JobSubmitted,
    JobSlotRequested,
    JobQueued,
    JobStarted,
    JobProgressed,
    JobSucceeded,
    JobRetryScheduled,
    JobFailed,
    JobCancelRequested,
    JobCancelled,
    JobRetried,
    JobRejected,
    JobReleased,
    PipelineStarted,
    JobUpdated,
    JobDeleted,
    *STEP_EVENTS,
)
"""Every job event type, each once: the members of :data:`AnyEvent`."""

QUEUED: tuple[type[JobQueued], type[StepQueued]] = (JobQueued, StepQueued)
"""The events that hand an attempt to the runners."""

if TYPE_CHECKING:
    AnyEvent: TypeAlias = Event  # a union built from a tuple is beyond a type checker
else:
    AnyEvent = Annotated[Union[EVENT_TYPES], Field(discriminator="type")]
"""Any job event, told apart by ``type``: the classes of ``EVENT_TYPES``, listed once."""
_EVENT = TypeAdapter(AnyEvent)


def event_type_name(cls: type[Event]) -> str:
    """The wire ``type`` of an event class, e.g. ``jobledger.job.queued``."""
    return cls.model_fields["type"].default


def _submitted_v1_to_v2(event: dict[str, Any]) -> dict[str, Any]:
    """v1 knew no options: the job ran with what are now the defaults, and had no
    idempotency key. (The defaults are spelled out, not taken from JobOptions,
    so a later change of a default does not change how old jobs replay.)"""
    data = dict(event["data"])
    data.setdefault(
        "options",
        {"max_attempts": 1, "backoff": {"base_s": 1.0, "factor": 2.0, "max_s": 300.0, "jitter": 0.2}, "priority": "normal"},
    )
    data.setdefault("idempotency_key", None)
    data.setdefault("request_hash", None)
    return {**event, "schemaversion": 2, "data": data}


def _adding(version: int, **defaults: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An upcaster to ``version`` for a version that only added fields: older
    records get them with the value that means what the older form meant."""

    def lift(event: dict[str, Any]) -> dict[str, Any]:
        return {**event, "schemaversion": version, "data": {**defaults, **event["data"]}}

    return lift


UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("jobledger.job.submitted", 1): _submitted_v1_to_v2,
    ("jobledger.job.submitted", 2): _adding(3, steps=None),
    ("jobledger.job.failed", 1): _adding(2, step=None, compensated=None),
    ("jobledger.job.failed", 2): _adding(3, traceback=None),
    ("jobledger.job.retry_scheduled", 1): _adding(2, traceback=None),
    ("jobledger.step.retry_scheduled", 1): _adding(2, traceback=None),
    ("jobledger.step.failed", 1): _adding(2, traceback=None),
    ("jobledger.step.compensation_failed", 1): _adding(2, traceback=None),
    ("jobledger.job.cancelled", 1): _adding(2, compensated=None),
    ("jobledger.job.succeeded", 1): _adding(2, artifact=None),
}
"""(type, version) → function lifting a recorded event one version up. Old
records are upcast when read; the log keeps them as they were written."""


def upcast(event: dict[str, Any]) -> dict[str, Any]:
    """Lift a decoded event to the version this code reads, step by step."""
    while True:
        version: tuple[Any, Any] = (event.get("type"), event.get("schemaversion"))  # anything, in a record not yet checked
        step = UPCASTERS.get(version)
        if step is None:
            return event
        event = step(event)


def parse_event(raw: bytes | str | dict[str, Any]) -> AnyEvent:
    """Decode one ``jobs.events`` record into its typed event, upcasting older versions.

    Raises ``pydantic.ValidationError`` for anything that is not a job event.
    """
    if isinstance(raw, (bytes, str)):
        event = _EVENT.validate_json(raw)
        if event.schema_version == type(event).SCHEMA_VERSION:
            return event  # the common case: one pass, no upcasting
        decoded: dict[str, Any] = orjson.loads(raw)
    else:
        decoded = raw
    current = upcast(decoded)
    event = _EVENT.validate_python(current)
    if current is not decoded:
        event._recorded = decoded
    return event
