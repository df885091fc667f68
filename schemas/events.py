"""Events: the job log on ``jobs.events``, the public contract of jobledger.

Every record is a CloudEvents 1.0 event in structured mode: the whole event is
one JSON object (Kafka header ``content-type: application/cloudevents+json``).
Python field names are snake_case; on the wire they use the CloudEvents names
(``id``, ``subject``, ``time``) and lowercase extension attributes (``seq``,
``schemaversion``, ``causationid``, ``correlationid``, ``tenant``, ``prevhash``,
``hash``).

Per job, ``seq`` runs 1, 2, 3… without gaps, and ``hash`` chains each event to
the one before it (see :mod:`schemas.chain`), so a consumer deduplicates by
``(job_id, seq)`` and an auditor can prove the history was not altered.
"""

from __future__ import annotations

from datetime import timezone
from typing import Annotated, Any, ClassVar, Literal, Union

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
)

SOURCE = "/jobledger/processor"
"""CloudEvents ``source`` of every job event: the decider is their only writer."""


class EventData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Event(BaseModel):
    """The envelope shared by every job event."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    event_id: str = Field(alias="id")
    source: str = SOURCE
    type: str
    job_id: str = Field(alias="subject")
    occurred_at: AwareDatetime = Field(alias="time")
    datacontenttype: Literal["application/json"] = "application/json"
    schema_version: int = Field(alias="schemaversion", ge=1)
    seq: int = Field(ge=1)
    tenant: str
    causation_id: str = Field(alias="causationid")
    correlation_id: str = Field(alias="correlationid")
    prev_hash: str = Field(alias="prevhash")
    hash: str
    data: EventData

    SCHEMA_VERSION: ClassVar[int] = 1

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        return value.astimezone(timezone.utc)

    def wire_dict(self) -> dict[str, Any]:
        """The event as its CloudEvents JSON object."""
        return self.model_dump(mode="json", by_alias=True)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.wire_dict())


class JobSubmittedData(EventData):
    job_type: str
    payload: dict[str, Any]


class JobQueuedData(EventData):
    """A job is ready to run. It carries the work, so runners need no lookup."""

    attempt: int = Field(ge=1)
    job_type: str
    payload: dict[str, Any]


class JobStartedData(EventData):
    attempt: int = Field(ge=1)
    runner_id: str


class JobSucceededData(EventData):
    attempt: int = Field(ge=1)
    result: Any = None


class JobFailedData(EventData):
    attempt: int = Field(ge=1)
    error: str
    error_type: str | None = None


class JobSubmitted(Event):
    type: Literal["jobledger.job.submitted"] = "jobledger.job.submitted"
    data: JobSubmittedData


class JobQueued(Event):
    type: Literal["jobledger.job.queued"] = "jobledger.job.queued"
    data: JobQueuedData


class JobStarted(Event):
    type: Literal["jobledger.job.started"] = "jobledger.job.started"
    data: JobStartedData


class JobSucceeded(Event):
    type: Literal["jobledger.job.succeeded"] = "jobledger.job.succeeded"
    data: JobSucceededData


class JobFailed(Event):
    type: Literal["jobledger.job.failed"] = "jobledger.job.failed"
    data: JobFailedData


EVENT_TYPES: tuple[type[Event], ...] = (
    JobSubmitted,
    JobQueued,
    JobStarted,
    JobSucceeded,
    JobFailed,
)

AnyEvent = Annotated[
    Union[JobSubmitted, JobQueued, JobStarted, JobSucceeded, JobFailed],
    Field(discriminator="type"),
]
_EVENT = TypeAdapter(AnyEvent)


def event_type_name(cls: type[Event]) -> str:
    """The wire ``type`` of an event class, e.g. ``jobledger.job.queued``."""
    return cls.model_fields["type"].default


def parse_event(raw: bytes | str | dict[str, Any]) -> AnyEvent:
    """Decode one ``jobs.events`` record into its typed event.

    Raises ``pydantic.ValidationError`` for anything that is not a job event.
    """
    if isinstance(raw, dict):
        return _EVENT.validate_python(raw)
    return _EVENT.validate_json(raw)
