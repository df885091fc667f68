"""Commands: intents sent to ``jobs.commands``, keyed by job id.

A command carries the time it was issued (``issued_at``): the decider has no
clock, so the same command always decides the same way.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from schemas.artifacts import ArtifactRef
from schemas.options import JobOptions, Priority
from schemas.pipelines import PipelineStep
from schemas.values import Moment, storable


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    """Each command class fixes its own (``SubmitJob``, …)."""
    command_id: str
    job_id: str
    tenant: str
    issued_at: Moment
    correlation_id: str | None = None


class SubmitJob(Command):
    type: Literal["SubmitJob"] = "SubmitJob"
    job_type: str = Field(min_length=1, max_length=200)
    payload: dict[str, Any] = Field(default_factory=dict)
    options: JobOptions = Field(default_factory=JobOptions)
    idempotency_key: str | None = Field(None, max_length=255)
    request_hash: str | None = Field(
        None, description="digest of the request, to tell a replay from a misuse of its idempotency key (none without one)"
    )
    steps: tuple[PipelineStep, ...] | None = Field(
        None, description="job_type pipeline: its steps in plan order, prerequisites added, each with its payload"
    )

    _storable_payload = field_validator("payload")(storable)


class AttemptCommand(Command):
    """A report of the runner that holds attempt ``attempt`` of a job."""

    attempt: int = Field(ge=1)
    runner_id: str
    step: str | None = Field(None, description="a pipeline's step the attempt belongs to")


class StartJob(AttemptCommand):
    """A runner asks for the lease on a queued attempt."""

    type: Literal["StartJob"] = "StartJob"


class Heartbeat(AttemptCommand):
    """The runner still works on its attempt. Keeps the lease; emits no event."""

    type: Literal["Heartbeat"] = "Heartbeat"


class ReportProgress(AttemptCommand):
    type: Literal["ReportProgress"] = "ReportProgress"
    percent: float = Field(ge=0, le=100)
    message: str | None = Field(None, max_length=1000)


class CompleteJob(AttemptCommand):
    type: Literal["CompleteJob"] = "CompleteJob"
    result: Any = None
    artifact: ArtifactRef | None = Field(None, description="the result, stored in the artifact store (result is then null)")

    _storable_result = field_validator("result")(storable)


class FailJob(AttemptCommand):
    type: Literal["FailJob"] = "FailJob"
    error: str
    error_type: str | None = None
    traceback: str | None = Field(None, description="the handler's traceback: its own frames, the last 8,000 characters")
    retryable: bool = Field(True, description="False: fail the job now, whatever attempts are left")
    retry_after_s: float | None = Field(
        None, ge=0, le=86_400, description="retry no sooner than this (a service's Retry-After); the backoff still applies"
    )


class ReleaseJob(AttemptCommand):
    """The runner hands its running attempt back unfinished (it is stopping):
    the job is queued again at once, and the attempt does not count against
    its budget."""

    type: Literal["ReleaseJob"] = "ReleaseJob"
    reason: str = Field("the runner stopped before the attempt finished", max_length=1000)


class CancelJob(Command):
    """Cancel a job: at once unless it runs; a running one gets ``grace_s`` to stop."""

    type: Literal["CancelJob"] = "CancelJob"
    reason: str | None = Field(None, max_length=1000)
    grace_s: float = Field(10.0, ge=0, le=3600)


class RetryJob(Command):
    """Run a FAILED or CANCELLED job again, with a fresh attempt budget."""

    type: Literal["RetryJob"] = "RetryJob"


class UpdateJob(Command):
    """Change a job that has not started: its priority (PENDING or QUEUED) or its run_at (while it waits for its time)."""

    type: Literal["UpdateJob"] = "UpdateJob"
    priority: Priority | None = Field(None, description="the new priority; none: unchanged")
    run_at: Moment | None = Field(None, description="the new run_at; none: unchanged")


class DeleteJob(Command):
    """Take a finished job out of the read models; the log keeps its history."""

    type: Literal["DeleteJob"] = "DeleteJob"
    reason: str | None = Field(None, max_length=1000)


class GrantSlot(Command):
    """The slot decider gave the job one of its concurrency key's slots."""

    type: Literal["GrantSlot"] = "GrantSlot"


class RefuseSlot(Command):
    """From the slot decider: the job's concurrency key is full and the job asked
    to be refused rather than wait (``on_conflict: reject``)."""

    type: Literal["RefuseSlot"] = "RefuseSlot"
    detail: str


class WakeJob(Command):
    """Timer: a PENDING job's start time (``run_at`` or backoff) has come —
    or, with ``step``, a pipeline step's backoff."""

    type: Literal["WakeJob"] = "WakeJob"
    step: str | None = None


class AdvancePipeline(Command):
    """Timer: a running pipeline has something to do that no decision did — its
    last decision reached the log only in part (a crash between two of its
    record batches). Emits nothing itself; the pipeline then does what is next."""

    type: Literal["AdvancePipeline"] = "AdvancePipeline"


class ExpiryReason(StrEnum):
    """Why a timer ends a running attempt."""

    TIMEOUT = "timeout"
    """it ran longer than the job's ``timeout_s``"""
    LOST = "lost"
    """its runner sent no heartbeat within the lease"""
    CANCELLED = "cancelled"
    """it was cancelled and did not stop within the grace period"""


class ExpireAttempt(Command):
    """Timer: a running attempt ran out of time.

    ``timeout``: past the job's ``timeout_s``; ``lost``: its runner sent no
    heartbeat within the lease; ``cancelled``: it ignored a cancel past the grace.
    """

    type: Literal["ExpireAttempt"] = "ExpireAttempt"
    attempt: int = Field(ge=1)
    reason: ExpiryReason
    step: str | None = Field(None, description="a pipeline's step whose attempt ran out of time")


AnyCommand = Annotated[
    Union[
        SubmitJob,
        StartJob,
        Heartbeat,
        ReportProgress,
        CompleteJob,
        FailJob,
        ReleaseJob,
        CancelJob,
        RetryJob,
        DeleteJob,
        UpdateJob,
        WakeJob,
        AdvancePipeline,
        ExpireAttempt,
        GrantSlot,
        RefuseSlot,
    ],
    Field(discriminator="type"),
]
_COMMAND = TypeAdapter(AnyCommand)


def parse_command(raw: bytes | str) -> AnyCommand:
    """Decode one ``jobs.commands`` record; raises ``pydantic.ValidationError``."""
    return _COMMAND.validate_json(raw)


def encode_command(command: Command) -> bytes:
    return command.model_dump_json().encode()
