"""Errors: typed rejections (why the decider refused a command) and fold errors.

They are values the caller can act on. The API turns a ``Rejection`` into a
409 problem document; the processor logs it and moves on.
"""

from __future__ import annotations

from enum import StrEnum


class ProblemCode(StrEnum):
    """Every error the API answers, by the code at the end of its problem
    document's ``type`` (``urn:jobledger:problem:<code>``): what a client
    branches on. The 409s carry the decider's rejection codes."""

    VALIDATION = "validation"
    """422: the request is not valid; ``errors`` names each bad field"""
    UNAUTHORIZED = "unauthorized"
    """401: no API key, or one no tenant has"""
    FORBIDDEN = "forbidden"
    """403: the key lacks the scope the route needs (``scope`` names it)"""
    TOO_LARGE = "too-large"
    """413: the body is over the limit"""
    NOT_FOUND = "not-found"
    """404: no such path"""
    METHOD_NOT_ALLOWED = "method-not-allowed"
    """405: the path does not take this method"""
    HTTP_ERROR = "http-error"
    """another HTTP-level refusal"""
    JOB_NOT_FOUND = "job-not-found"
    """404: no job of yours has this id (or had, at ``as_of``)"""
    SCHEDULE_NOT_FOUND = "schedule-not-found"
    """404: no schedule of yours has this id"""
    SERVICE_NOT_FOUND = "service-not-found"
    """404: no service of yours is registered under this name"""
    ARTIFACT_NOT_FOUND = "artifact-not-found"
    """404: the job has no artifact of that name"""
    IDEMPOTENCY_KEY_REUSED = "idempotency-key-reused"
    """422: the Idempotency-Key was used for a different request"""
    CONCURRENCY_LIMIT_REACHED = "concurrency-limit-reached"
    """409: ``on_conflict: reject`` and the key is full (also the ``reason`` of ``jobledger.job.rejected``)"""
    REJECTED = "rejected"
    """409: the job cannot do that now"""
    JOB_ALREADY_EXISTS = "job-already-exists"
    """409: a job with this id exists"""
    INVALID_TRANSITION = "invalid-transition"
    """409: not in the job's current state (e.g. cancelling a finished job)"""
    INVALID_PIPELINE = "invalid-pipeline"
    """409: the pipeline's plan cannot run"""
    STALE_ATTEMPT = "stale-attempt"
    """409: a report of an attempt that is no longer the current one"""
    NOT_DUE = "not-due"
    """409: a timer's command before its time"""
    BROKER_UNAVAILABLE = "broker-unavailable"
    """503: the log did not acknowledge the command; nothing was accepted"""
    ARTIFACT_STORE_UNAVAILABLE = "artifact-store-unavailable"
    """503: the artifact store did not answer"""
    NOT_READY = "not-ready"
    """503: the broker or the database does not answer (``GET /readyz``)"""
    INTERNAL = "internal"
    """500: an error nobody expected; it was logged"""


CONCURRENCY_LIMIT_REACHED = ProblemCode.CONCURRENCY_LIMIT_REACHED
"""Why a job with ``on_conflict: reject`` was refused (the ``reason`` of its ``jobledger.job.rejected``)."""


class JobledgerError(Exception):
    """Base of every error jobledger raises on purpose."""


class Rejection(JobledgerError):
    """A command that is impossible against the job's current state."""

    code: ProblemCode = ProblemCode.REJECTED

    def __init__(self, job_id: str, detail: str) -> None:
        super().__init__(detail)
        self.job_id = job_id
        self.detail = detail


class JobNotFound(Rejection):
    code = ProblemCode.JOB_NOT_FOUND


class JobAlreadyExists(Rejection):
    code = ProblemCode.JOB_ALREADY_EXISTS


class InvalidTransition(Rejection):
    code = ProblemCode.INVALID_TRANSITION


class InvalidPipeline(Rejection):
    """A pipeline's steps do not form a runnable graph (ingest answers 422 before it gets here)."""

    code = ProblemCode.INVALID_PIPELINE


class StaleAttempt(Rejection):
    """A runner reported on an attempt that is not the job's current one."""

    code = ProblemCode.STALE_ATTEMPT


class NotDue(Rejection):
    """A timer command arrived before its time (or its deadline moved)."""

    code = ProblemCode.NOT_DUE


class SequenceGap(JobledgerError):
    """An event is not the next one for its job: an earlier event is missing."""

    def __init__(self, job_id: str, expected: int, got: int) -> None:
        super().__init__(f"job {job_id}: expected seq {expected}, got {got}")
        self.job_id = job_id
        self.expected = expected
        self.got = got
