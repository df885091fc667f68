"""The events about one step of a pipeline (``jobledger.step.*``; ``data.step`` names it)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, Field

from schemas.artifacts import ArtifactRef
from schemas.events.envelope import Event, EventData
from schemas.options import Priority


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

STEP_EVENTS: tuple[type[Event], ...] = (StepQueued, StepStarted, StepProgressed, *STEP_ENDED)
"""The events about one step of a pipeline (``data.step`` names it)."""
