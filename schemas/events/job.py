"""The events about a job as a whole: submitted, queued, its attempts, its end;
a pipeline's run (``jobledger.job.*``, ``jobledger.pipeline.*``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, Field

from schemas.artifacts import ArtifactRef
from schemas.events.envelope import Event, EventData
from schemas.options import JobOptions, Priority
from schemas.pipelines import PipelineStep


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


class JobUpdatedData(EventData):
    """A job that had not started was changed: what is not null is its new value."""

    priority: Priority | None = None
    run_at: AwareDatetime | None = Field(None, description="its new run_at: it is queued then")


class JobDeletedData(EventData):
    """A finished job was deleted: the read models forget it; the log keeps every event of it, this one too."""

    reason: str | None = None


class PipelineStartedData(EventData):
    """A run of a pipeline begins (its first, or one after a retry): every step waits again."""

    attempt: int = Field(ge=1, description="the pipeline's run")


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


class JobUpdated(Event):
    type: Literal["jobledger.job.updated"] = "jobledger.job.updated"
    data: JobUpdatedData


class JobDeleted(Event):
    type: Literal["jobledger.job.deleted"] = "jobledger.job.deleted"
    data: JobDeletedData
