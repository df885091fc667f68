"""The job aggregate: what the fold of a job's events says about it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.chain import GENESIS
from schemas.options import JobOptions


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
    at: AwareDatetime


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
    recent_commands: tuple[str, ...] = ()

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
