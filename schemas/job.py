"""The job aggregate: what the fold of a job's events says about it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.chain import GENESIS


class JobStatus(StrEnum):
    PENDING = "PENDING"
    """Accepted; waiting to be queued."""
    QUEUED = "QUEUED"
    """Ready for a runner."""
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

RECENT_COMMANDS_KEPT = 32
"""How many applied command ids a job remembers to drop redelivered commands."""


class Job(BaseModel):
    """One job as of its ``version``-th event. Immutable: ``evolve`` returns a new one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    tenant: str
    job_type: str
    payload: dict[str, Any]
    status: JobStatus
    version: int = Field(ge=0, description="seq of the last applied event")
    last_hash: str = GENESIS
    attempt: int = 0
    runner_id: str | None = None
    result: Any = None
    error: str | None = None
    error_type: str | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    recent_commands: tuple[str, ...] = ()

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
