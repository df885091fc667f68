"""The job aggregate: what the fold of a job's events says about it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.artifacts import ArtifactRef
from schemas.chain import GENESIS
from schemas.options import JobOptions
from schemas.pipelines import PipelineStep


class JobStatus(StrEnum):
    PENDING = "PENDING"
    """Accepted; waiting to be queued: for ``run_at`` or, between attempts, for the backoff."""
    QUEUED = "QUEUED"
    """Ready for a runner."""
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    """Refused before it ran: its concurrency key was full and it asked for ``on_conflict: reject``."""

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.REJECTED})

RECENT_COMMANDS_KEPT = 32
"""How many applied command ids a job remembers to drop redelivered commands."""


def timeout_error(timeout_s: float) -> str:
    """The error of an attempt that ran past the job's ``timeout_s``: the same
    text whether the runner or the decider's timer noticed first."""
    return f"attempt timed out after {timeout_s:g} s"


class AttemptError(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    attempt: int
    error: str
    error_type: str | None = None
    traceback: str | None = Field(None, description="the handler's traceback, when a handler raised")
    at: AwareDatetime


class StepStatus(StrEnum):
    WAITING = "WAITING"
    """Its dependencies have not all succeeded yet."""
    PENDING = "PENDING"
    """Between attempts, waiting out the backoff."""
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    """Failed for good: the pipeline compensates what succeeded and fails."""
    CANCELLED = "CANCELLED"
    """It was running when the pipeline was cancelled."""
    SKIPPED = "SKIPPED"
    """Never ran: the pipeline failed or was cancelled first."""
    COMPENSATED = "COMPENSATED"
    """It had succeeded; its compensation undid it."""
    COMPENSATION_FAILED = "COMPENSATION_FAILED"
    """It had succeeded; its compensation failed on every attempt."""


STEP_ACTIVE = frozenset({StepStatus.PENDING, StepStatus.QUEUED, StepStatus.RUNNING})
"""A step in one of these has an attempt under way (or about to be)."""


class StepPhase(StrEnum):
    """What a step's attempts do: its own work, or, once the pipeline undoes it, its compensation."""

    RUN = "run"
    COMPENSATE = "compensate"


class Step(PipelineStep):
    """One step of a pipeline job, as of the job's ``version``: its plan and how far it got.

    ``phase`` is ``compensate`` once its compensation began; attempts number on
    through both phases, so ``(job, step, attempt)`` names one attempt.
    """

    status: StepStatus = StepStatus.WAITING
    phase: StepPhase = StepPhase.RUN
    attempt: int = Field(0, description="the current (or last) attempt; 0 before the first")
    budget_start: int = Field(1, description="first attempt of the current phase")
    runner_id: str | None = None
    due_at: AwareDatetime | None = None
    progress: float | None = None
    progress_message: str | None = None
    result: Any = None
    error: str | None = None
    error_type: str | None = None
    errors: tuple[AttemptError, ...] = ()
    artifact: ArtifactRef | None = Field(None, description="the result, when it was too large for the log")
    compensation_result: Any = None
    compensation_artifact: ArtifactRef | None = Field(None, description="the compensation's result, when too large for the log")
    queued_at: AwareDatetime | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None

    @property
    def max_phase_attempts(self) -> int | None:
        """The attempts this phase allows (``None``: the pipeline's ``max_attempts``)."""
        if self.phase == StepPhase.COMPENSATE and self.compensate is not None:
            return self.compensate.max_attempts
        return self.max_attempts


class Job(BaseModel):
    """One job as of its ``version``-th event. Immutable: ``evolve`` returns a new one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    tenant: str
    job_type: str
    payload: dict[str, Any]
    options: JobOptions = Field(default_factory=JobOptions)
    idempotency_key: str | None = None
    request_hash: str | None = None
    status: JobStatus
    version: int = Field(ge=0, description="seq of the last applied event")
    last_hash: str = GENESIS
    attempt: int = Field(0, description="the current (or last) attempt; 0 before the first is queued")
    budget_start: int = Field(1, description="first attempt of the current budget (a manual retry starts a new one)")
    due_at: AwareDatetime | None = Field(None, description="a PENDING job is queued at this time")
    awaiting_slot: bool = Field(False, description="PENDING until the slot decider grants a slot of its concurrency key")
    holds_slot: bool = Field(False, description="holds a slot of its concurrency key (from queued until it ends)")
    runner_id: str | None = None
    progress: float | None = None
    progress_message: str | None = None
    result: Any = None
    artifact: ArtifactRef | None = Field(None, description="the result, when it was too large for the log")
    error: str | None = None
    error_type: str | None = None
    errors: tuple[AttemptError, ...] = Field((), description="every failed attempt, oldest first")
    cancel_requested_at: AwareDatetime | None = None
    cancel_deadline: AwareDatetime | None = None
    cancel_reason: str | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    deleted_at: AwareDatetime | None = Field(None, description="deleted then: the read models forget it")
    recent_commands: tuple[str, ...] = ()
    steps: tuple[Step, ...] = Field((), description="a pipeline's steps in plan order; none for a plain job")
    completed_steps: tuple[str, ...] = Field((), description="a pipeline's succeeded steps, in the order they succeeded")
    failed_step: str | None = Field(None, description="the step whose failure failed the pipeline")
    compensated: bool | None = Field(
        None,
        description="a pipeline that ended early: true when every compensation succeeded, false when one failed; none when nothing needed undoing",
    )

    @property
    def is_pipeline(self) -> bool:
        return bool(self.steps)

    def step(self, name: str) -> Step | None:
        return next((step for step in self.steps if step.name == name), None)

    def named_step(self, name: str | None) -> Step:
        """The step ``name``, which the pipeline must have (a ``KeyError`` says it has not)."""
        step = self.step(name) if name is not None else None
        if step is None:
            raise KeyError(f"job {self.job_id} has no step {name!r}")
        return step

    def with_step(self, name: str, **changes: Any) -> tuple[Step, ...]:
        """The steps with ``name``'s fields changed."""
        return tuple(step.model_copy(update=changes) if step.name == name else step for step in self.steps)

    @property
    def attempts_left(self) -> int:
        """Attempts the current budget still allows after the current one."""
        return self.options.max_attempts - (self.attempt - self.budget_start + 1)

    def applied(self, command_id: str) -> bool:
        return command_id in self.recent_commands

    def touched(self, at: datetime, seq: int, hash_: str, causation_id: str) -> dict[str, Any]:
        """Fields every event updates, for ``model_copy(update=...)``."""
        recent = self.recent_commands
        if causation_id not in recent:
            recent = (recent + (causation_id,))[-RECENT_COMMANDS_KEPT:]
        return {
            "version": seq,
            "last_hash": hash_,
            "updated_at": at,
            "recent_commands": recent,
        }
