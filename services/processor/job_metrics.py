"""What the decider's events say about jobs, as Prometheus metrics (services.common.metrics).

Measured on the events' own times (the decider's clock, which stamped them
all), so a queue wait or an attempt's duration is the same whichever runner
ran it and however late the metric is read."""

from __future__ import annotations

from datetime import datetime

from schemas import Event, Job
from schemas.events import (
    JobCancelled,
    JobFailed,
    JobQueued,
    JobRejected,
    JobRetryScheduled,
    JobStarted,
    JobSubmitted,
    JobSucceeded,
)
from services.common.metrics import (
    ATTEMPT_DURATION,
    ATTEMPT_FAILURES,
    JOBS_FINISHED,
    JOBS_SUBMITTED,
    QUEUE_WAIT,
    RETRIES,
)

PROCESSOR_REASONS = frozenset({"timeout", "lost"})
"""The ``error_type`` of an attempt the processor ended; any other is the handler's error."""
FINISHED = {JobSucceeded: "succeeded", JobFailed: "failed", JobCancelled: "cancelled", JobRejected: "rejected"}


class JobMeter:
    """Counts and times the jobs of the partitions this decider owns."""

    def __init__(self) -> None:
        self._queued: dict[str, datetime] = {}
        """Jobs queued and not started yet: since when."""
        self._started: dict[str, datetime] = {}
        """Jobs whose attempt runs: since when."""

    def observe(self, events: list[Event], job: Job) -> None:
        """One decision's events; ``job``: the state they lead to."""
        for event in events:
            kind = type(event)
            if kind is JobSubmitted:
                JOBS_SUBMITTED.labels(job.tenant, job.job_type).inc()
            elif kind is JobQueued:
                self._queued[job.job_id] = event.occurred_at
            elif kind is JobStarted:
                queued = self._queued.pop(job.job_id, None)
                if queued is not None:
                    QUEUE_WAIT.labels(job.job_type).observe(_seconds(queued, event.occurred_at))
                self._started[job.job_id] = event.occurred_at
            elif kind is JobRetryScheduled:
                RETRIES.labels(job.tenant, job.job_type).inc()
                self._attempt_ended(job, event, "failed")
            if kind in FINISHED:
                JOBS_FINISHED.labels(job.tenant, job.job_type, FINISHED[kind]).inc()
                self._attempt_ended(job, event, "succeeded" if kind is JobSucceeded else "failed")
                self._queued.pop(job.job_id, None)

    def _attempt_ended(self, job: Job, event: Event, outcome: str) -> None:
        started = self._started.pop(job.job_id, None)
        if started is not None:
            ATTEMPT_DURATION.labels(job.job_type, outcome).observe(_seconds(started, event.occurred_at))
        if isinstance(event, (JobRetryScheduled, JobFailed)) and not job.is_pipeline:
            error_type = event.data.error_type
            ATTEMPT_FAILURES.labels(job.tenant, job.job_type, error_type if error_type in PROCESSOR_REASONS else "error").inc()

    def forget(self, job_ids) -> None:
        """Jobs of partitions no longer owned here."""
        for job_id in job_ids:
            self._queued.pop(job_id, None)
            self._started.pop(job_id, None)


def _seconds(since: datetime, until: datetime) -> float:
    return max(0.0, (until - since).total_seconds())
