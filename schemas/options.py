"""How a job wants to be run: attempts, backoff, timeout, start time, priority, labels.

A producer sets these on submit; they travel in ``SubmitJob`` and
``JobSubmitted`` and the decider applies them. Every rule that uses time takes
``now`` as an argument: nothing here reads a clock.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.values import Moment, label_key_problem, later

MAX_LABELS = 32


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 runs first."""
        return _RANK[self]


_RANK = {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 2}


class Backoff(BaseModel):
    """Exponential backoff with jitter between attempts.

    The delay before attempt ``n + 1`` is ``min(max_s, base_s * factor ** (n - 1))``,
    then scaled by a factor in ``[1 - jitter, 1]``. The jitter is derived from the
    job id and attempt, so the decider stays deterministic while retries of many
    jobs that failed together still spread out.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_s: float = Field(1.0, ge=0, le=86_400, description="delay after the first failed attempt")
    factor: float = Field(2.0, ge=1, le=10, description="growth per further attempt")
    max_s: float = Field(300.0, ge=0, le=7 * 86_400, description="longest delay")
    jitter: float = Field(0.2, ge=0, le=1, description="fraction of the delay drawn at random")

    def delay_s(self, job_id: str, failed_attempt: int) -> float:
        exponent = min(failed_attempt - 1, 64)
        delay = min(self.max_s, self.base_s * self.factor**exponent)
        return delay * (1 - self.jitter * _unit(f"{job_id}/{failed_attempt}"))


class OnConflict(StrEnum):
    """What a submit does when its concurrency key has no free slot."""

    QUEUE = "queue"
    """wait PENDING for a slot, in submit order"""
    REJECT = "reject"
    """be refused (409, the job REJECTED) while the key is full"""


class JobOptions(BaseModel):
    """Options of ``POST /jobs``; every one has a default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(3, ge=1, le=100, description="attempts before the job ends FAILED")
    backoff: Backoff = Field(default_factory=Backoff, description="delay between attempts")
    timeout_s: float | None = Field(
        None, gt=0, le=7 * 86_400, description="an attempt running longer is failed (error_type timeout) and retried"
    )
    run_at: Moment | None = Field(None, description="time (with a zone) before which the job stays PENDING")
    priority: Priority = Field(Priority.NORMAL, description="with a backlog, high starts before normal before low")
    labels: dict[str, str] = Field(default_factory=dict, description="string map for filtering, e.g. {'team': 'ml'}")
    concurrency_key: str | None = Field(
        None, min_length=1, max_length=200, description="jobs sharing this key (per tenant) are limited in how many run at once"
    )
    concurrency_limit: int = Field(1, ge=1, le=10_000, description="how many jobs with the key may hold a slot at once")
    on_conflict: OnConflict = Field(
        OnConflict.QUEUE,
        description="queue: wait PENDING for a slot, in submit order; reject: refuse the submit (409) while the key is full",
    )

    @model_validator(mode="after")
    def _concurrency(self) -> "JobOptions":
        if self.concurrency_key is None and (self.concurrency_limit != 1 or self.on_conflict != OnConflict.QUEUE):
            raise ValueError("concurrency_limit and on_conflict need a concurrency_key")
        return self

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        if len(labels) > MAX_LABELS:
            raise ValueError(f"at most {MAX_LABELS} labels")
        for key, value in labels.items():
            problem = label_key_problem(key)
            if problem is not None:
                raise ValueError(problem)
            if len(value) > 256:
                raise ValueError(f"label {key!r} is longer than 256 characters")
        return labels

    def due(self, now: datetime) -> datetime | None:
        """When a new job may be queued, or ``None`` if it may be queued at once."""
        if self.run_at is not None and self.run_at > now:
            return self.run_at
        return None


def retry_at(options: JobOptions, job_id: str, failed_attempt: int, now: datetime) -> datetime:
    return later(now, options.backoff.delay_s(job_id, failed_attempt))


def _unit(text: str) -> float:
    """A number in [0, 1) that depends only on ``text``."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
