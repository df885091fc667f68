"""Errors: typed rejections (why the decider refused a command) and fold errors.

They are values the caller can act on. The API turns a ``Rejection`` into a
409 problem document; the processor logs it and moves on.
"""

from __future__ import annotations

CONCURRENCY_LIMIT_REACHED = "concurrency-limit-reached"
"""Why a job with ``on_conflict: reject`` was refused (the ``reason`` of its ``jobledger.job.rejected``)."""


class JobledgerError(Exception):
    """Base of every error jobledger raises on purpose."""


class Rejection(JobledgerError):
    """A command that is impossible against the job's current state."""

    code: str = "rejected"

    def __init__(self, job_id: str, detail: str) -> None:
        super().__init__(detail)
        self.job_id = job_id
        self.detail = detail


class JobNotFound(Rejection):
    code = "job-not-found"


class JobAlreadyExists(Rejection):
    code = "job-already-exists"


class InvalidTransition(Rejection):
    code = "invalid-transition"


class InvalidPipeline(Rejection):
    """A pipeline's steps do not form a runnable graph (ingest answers 422 before it gets here)."""

    code = "invalid-pipeline"


class StaleAttempt(Rejection):
    """A runner reported on an attempt that is not the job's current one."""

    code = "stale-attempt"


class NotDue(Rejection):
    """A timer command arrived before its time (or its deadline moved)."""

    code = "not-due"


class SequenceGap(JobledgerError):
    """An event is not the next one for its job: an earlier event is missing."""

    def __init__(self, job_id: str, expected: int, got: int) -> None:
        super().__init__(f"job {job_id}: expected seq {expected}, got {got}")
        self.job_id = job_id
        self.expected = expected
        self.got = got
