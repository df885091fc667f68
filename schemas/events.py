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

from collections.abc import Callable
from datetime import timezone
from typing import Annotated, Any, ClassVar, Literal, Union

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    field_validator,
)

from schemas.artifacts import ArtifactRef
from schemas.options import JobOptions, Priority
from schemas.pipelines import PipelineStep

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
    """Version of this type's ``data`` that the decider writes now."""

    _recorded: dict[str, Any] | None = PrivateAttr(default=None)

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        return value.astimezone(timezone.utc)

    def wire_dict(self) -> dict[str, Any]:
        """The event as its CloudEvents JSON object."""
        return self.model_dump(mode="json", by_alias=True)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.wire_dict())

    def recorded(self) -> dict[str, Any]:
        """The event as the log holds it: for an upcast event, the older form it
        was written in (its ``hash`` covers that form; the log is never rewritten)."""
        return self._recorded if self._recorded is not None else self.wire_dict()


class JobSubmittedData(EventData):
    job_type: str
    payload: dict[str, Any]
    options: JobOptions = Field(default_factory=JobOptions)
    idempotency_key: str | None = None
    request_hash: str | None = None
    steps: tuple[PipelineStep, ...] | None = Field(
        None, description="a pipeline's steps, prerequisites added, each with its payload; none for a plain job"
    )


class JobQueuedData(EventData):
    """An attempt is ready to run. It carries the work, so runners need no lookup."""

    attempt: int = Field(ge=1)
    job_type: str
    payload: dict[str, Any]
    priority: Priority = Priority.NORMAL
    timeout_s: float | None = None


class JobSlotRequestedData(EventData):
    """The job waits PENDING for a slot of its concurrency key."""

    concurrency_key: str
    limit: int = Field(ge=1)


class JobStartedData(EventData):
    """``runner_id`` holds the attempt's lease; only its reports count."""

    attempt: int = Field(ge=1)
    runner_id: str


class JobProgressedData(EventData):
    attempt: int = Field(ge=1)
    percent: float = Field(ge=0, le=100)
    message: str | None = None


class JobSucceededData(EventData):
    attempt: int = Field(ge=1)
    result: Any = None
    artifact: ArtifactRef | None = Field(None, description="a result too large for the log, stored in the artifact store")


class AttemptFailure(EventData):
    """Why an attempt failed. ``error_type`` is the handler's exception class,
    or ``timeout`` / ``lost`` when the processor ended the attempt."""

    attempt: int = Field(ge=1)
    error: str
    error_type: str | None = None
    traceback: str | None = Field(
        None,
        description="the handler's traceback: its own frames, the last 8,000 characters; null when the processor ended the attempt",
    )


class JobRetryScheduledData(AttemptFailure):
    """The attempt failed with attempts left: the next one is queued at ``retry_at``."""

    retry_at: AwareDatetime


class JobFailedData(AttemptFailure):
    """The attempt failed and it was the last one (or the error was not retryable).

    A pipeline fails once a step failed for good and the steps that had
    succeeded were compensated: ``step`` names the step, ``attempt`` is the
    pipeline's run."""

    step: str | None = None
    compensated: bool | None = Field(
        None, description="pipelines: true if every compensation succeeded, false if one failed, none if none was needed"
    )


class JobCancelRequestedData(EventData):
    """The running attempt is asked to stop; it is cancelled at ``deadline`` at the latest."""

    attempt: int = Field(ge=1)
    reason: str | None = None
    deadline: AwareDatetime


class JobCancelledData(EventData):
    attempt: int = Field(ge=0, description="the attempt that was running or queued; 0 if none had begun")
    reason: str | None = None
    compensated: bool | None = Field(None, description="pipelines: as in JobFailed")


class JobRejectedData(EventData):
    """The job was refused before it ran: its concurrency key was full and it
    asked for ``on_conflict: reject``."""

    reason: str = Field(description="a code, e.g. concurrency-limit-reached")
    detail: str


class JobReleasedData(EventData):
    """Its runner handed the running attempt back unfinished (it was stopping).
    The attempt does not count: the next one, queued in the same decision,
    leaves the job as many attempts as before."""

    attempt: int = Field(ge=1, description="the attempt handed back")
    reason: str


class JobRetriedData(EventData):
    """A finished job was sent round again by hand; attempts count from ``attempt``."""

    attempt: int = Field(ge=1, description="the first attempt of the fresh budget")


class PipelineStartedData(EventData):
    """A run of a pipeline begins (its first, or one after a retry): every step waits again."""

    attempt: int = Field(ge=1, description="the pipeline's run")


class StepData(EventData):
    """A step event names the step and the step's attempt."""

    step: str
    attempt: int = Field(ge=1)


class StepQueuedData(StepData):
    """A step's attempt is ready to run — its own work, or with ``compensation``
    its compensation's. Like JobQueued it carries the work, so runners need no lookup."""

    job_type: str
    payload: dict[str, Any]
    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="the results of the steps it depends on (a compensation: of the step it undoes), by step name",
    )
    input_artifacts: dict[str, ArtifactRef] = Field(
        default_factory=dict,
        description="the inputs stored as artifacts (their entry in inputs is null): the runner fetches them",
    )
    compensation: bool = False
    priority: Priority = Priority.NORMAL
    timeout_s: float | None = None


class StepStartedData(StepData):
    runner_id: str


class StepProgressedData(StepData):
    percent: float = Field(ge=0, le=100)
    message: str | None = None


class StepSucceededData(StepData):
    result: Any = None
    artifact: ArtifactRef | None = Field(None, description="a result too large for the log, stored in the artifact store")


class StepAttemptFailure(StepData):
    error: str
    error_type: str | None = None
    traceback: str | None = Field(
        None,
        description="the handler's traceback: its own frames, the last 8,000 characters; null when the processor ended the attempt",
    )


class StepRetryScheduledData(StepAttemptFailure):
    """The step's attempt (or its compensation's) failed with attempts left."""

    retry_at: AwareDatetime


class StepFailedData(StepAttemptFailure):
    """The step failed for good: the pipeline stops starting steps and compensates."""


class StepCancelledData(StepData):
    """The step was running when the pipeline was cancelled, and stopped (or ran out of grace)."""


class StepReleasedData(StepData):
    """Its runner handed the step's running attempt back unfinished (it was
    stopping). The attempt does not count: the next one, queued in the same
    decision, leaves the step as many attempts as before."""

    reason: str


class StepSkippedData(EventData):
    """The step never ran (or never ran again): the pipeline failed or was cancelled first."""

    step: str
    attempt: int = Field(ge=0, description="the step's latest attempt, queued or failed; 0 if it never had one")


class StepCompensatedData(StepData):
    """The step's compensation succeeded: what the step did is undone."""

    result: Any = None
    artifact: ArtifactRef | None = Field(None, description="the compensation's result, when too large for the log")


class StepCompensationFailedData(StepAttemptFailure):
    """The step's compensation failed on its last attempt. Recorded, surfaced on the
    job (``compensated: false``), and the remaining compensations still run."""


class JobSubmitted(Event):
    """Version 2 added ``options``, ``idempotency_key`` and ``request_hash``;
    version 3 ``steps``."""

    type: Literal["jobledger.job.submitted"] = "jobledger.job.submitted"
    data: JobSubmittedData

    SCHEMA_VERSION: ClassVar[int] = 3


class JobQueued(Event):
    type: Literal["jobledger.job.queued"] = "jobledger.job.queued"
    data: JobQueuedData


class JobSlotRequested(Event):
    type: Literal["jobledger.job.slot_requested"] = "jobledger.job.slot_requested"
    data: JobSlotRequestedData


class JobStarted(Event):
    type: Literal["jobledger.job.started"] = "jobledger.job.started"
    data: JobStartedData


class JobProgressed(Event):
    type: Literal["jobledger.job.progressed"] = "jobledger.job.progressed"
    data: JobProgressedData


class JobSucceeded(Event):
    """Version 2 added ``artifact``."""

    type: Literal["jobledger.job.succeeded"] = "jobledger.job.succeeded"
    data: JobSucceededData

    SCHEMA_VERSION: ClassVar[int] = 2


class JobRetryScheduled(Event):
    """Version 2 added ``traceback``."""

    type: Literal["jobledger.job.retry_scheduled"] = "jobledger.job.retry_scheduled"
    data: JobRetryScheduledData

    SCHEMA_VERSION: ClassVar[int] = 2


class JobFailed(Event):
    """Version 2 added ``step`` and ``compensated``; version 3 ``traceback``."""

    type: Literal["jobledger.job.failed"] = "jobledger.job.failed"
    data: JobFailedData

    SCHEMA_VERSION: ClassVar[int] = 3


class JobCancelRequested(Event):
    type: Literal["jobledger.job.cancel_requested"] = "jobledger.job.cancel_requested"
    data: JobCancelRequestedData


class JobCancelled(Event):
    """Version 2 added ``compensated``."""

    type: Literal["jobledger.job.cancelled"] = "jobledger.job.cancelled"
    data: JobCancelledData

    SCHEMA_VERSION: ClassVar[int] = 2


class JobReleased(Event):
    type: Literal["jobledger.job.released"] = "jobledger.job.released"
    data: JobReleasedData


class JobRetried(Event):
    type: Literal["jobledger.job.retried"] = "jobledger.job.retried"
    data: JobRetriedData


class JobRejected(Event):
    type: Literal["jobledger.job.rejected"] = "jobledger.job.rejected"
    data: JobRejectedData


class PipelineStarted(Event):
    type: Literal["jobledger.pipeline.started"] = "jobledger.pipeline.started"
    data: PipelineStartedData


class StepQueued(Event):
    type: Literal["jobledger.step.queued"] = "jobledger.step.queued"
    data: StepQueuedData


class StepStarted(Event):
    type: Literal["jobledger.step.started"] = "jobledger.step.started"
    data: StepStartedData


class StepProgressed(Event):
    type: Literal["jobledger.step.progressed"] = "jobledger.step.progressed"
    data: StepProgressedData


class StepSucceeded(Event):
    type: Literal["jobledger.step.succeeded"] = "jobledger.step.succeeded"
    data: StepSucceededData


class StepRetryScheduled(Event):
    """Version 2 added ``traceback``."""

    type: Literal["jobledger.step.retry_scheduled"] = "jobledger.step.retry_scheduled"
    data: StepRetryScheduledData

    SCHEMA_VERSION: ClassVar[int] = 2


class StepFailed(Event):
    """Version 2 added ``traceback``."""

    type: Literal["jobledger.step.failed"] = "jobledger.step.failed"
    data: StepFailedData

    SCHEMA_VERSION: ClassVar[int] = 2


class StepCancelled(Event):
    type: Literal["jobledger.step.cancelled"] = "jobledger.step.cancelled"
    data: StepCancelledData


class StepReleased(Event):
    type: Literal["jobledger.step.released"] = "jobledger.step.released"
    data: StepReleasedData


class StepSkipped(Event):
    type: Literal["jobledger.step.skipped"] = "jobledger.step.skipped"
    data: StepSkippedData


class StepCompensated(Event):
    type: Literal["jobledger.step.compensated"] = "jobledger.step.compensated"
    data: StepCompensatedData


class StepCompensationFailed(Event):
    """Version 2 added ``traceback``."""

    type: Literal["jobledger.step.compensation_failed"] = "jobledger.step.compensation_failed"
    data: StepCompensationFailedData

    SCHEMA_VERSION: ClassVar[int] = 2


STEP_ENDED: tuple[type[Event], ...] = (
    StepSucceeded,
    StepRetryScheduled,
    StepFailed,
    StepCancelled,
    StepReleased,
    StepSkipped,
    StepCompensated,
    StepCompensationFailed,
)
"""The events that end a step's current attempt."""

ATTEMPT_ENDED: tuple[type[Event], ...] = (JobSucceeded, JobFailed, JobRetryScheduled, JobCancelled, JobReleased, *STEP_ENDED)
"""The events that end a job's (or, with ``data.step``, a step's) current attempt:
after one, no report of that attempt counts."""

STEP_EVENTS: tuple[type[Event], ...] = (StepQueued, StepStarted, StepProgressed, *STEP_ENDED)
"""The events about one step of a pipeline (``data.step`` names it)."""

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
    *STEP_EVENTS,
)
"""Every job event type, each once: the members of :data:`AnyEvent`."""

QUEUED: tuple[type[Event], ...] = (JobQueued, StepQueued)
"""The events that hand an attempt to the runners."""

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
    while (step := UPCASTERS.get((event.get("type"), event.get("schemaversion")))) is not None:
        event = step(event)
    return event


def parse_event(raw: bytes | str | dict[str, Any]) -> AnyEvent:
    """Decode one ``jobs.events`` record into its typed event, upcasting older versions.

    Raises ``pydantic.ValidationError`` for anything that is not a job event.
    """
    if isinstance(raw, (bytes, str)):
        event = _EVENT.validate_json(raw)
        if event.schema_version == type(event).SCHEMA_VERSION:
            return event  # the common case: one pass, no upcasting
        raw = orjson.loads(raw)
    current = upcast(raw)
    event = _EVENT.validate_python(current)
    if current is not raw:
        event._recorded = raw
    return event
