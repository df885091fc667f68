"""The pure decider: ``decide`` turns a command into events (the fold that
applies them is :mod:`schemas.fold`).

No I/O and no clock: time arrives inside the command. The processor runs
``decide`` then ``evolve``; the projector, replay and ``as_of`` queries run
``evolve`` alone. One fold, everywhere.

``decide`` is deterministic: event ids derive from the command id, ``seq`` and
the hash chain from the state. A command redelivered after a crash re-emits
identical events (consumers drop them by ``(job_id, seq)``); a command whose id
the job already remembers emits nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from schemas.artifacts import ArtifactRef
from schemas.attempt_rules import RULES as ATTEMPT_RULES
from schemas.attempt_rules import Attempts, Emitted
from schemas.chain import GENESIS, event_hash
from schemas.commands import (
    AdvancePipeline,
    CancelJob,
    Command,
    DeleteJob,
    GrantSlot,
    RefuseSlot,
    RetryJob,
    SubmitJob,
    UpdateJob,
    WakeJob,
)
from schemas.errors import (
    CONCURRENCY_LIMIT_REACHED,
    InvalidTransition,
    JobAlreadyExists,
    JobNotFound,
)
from schemas.events import (
    AnyEvent,
    JobCancelled,
    JobCancelledData,
    JobCancelRequested,
    JobCancelRequestedData,
    JobDeleted,
    JobDeletedData,
    JobFailed,
    JobFailedData,
    JobProgressed,
    JobProgressedData,
    JobQueued,
    JobQueuedData,
    JobRejected,
    JobRejectedData,
    JobReleased,
    JobReleasedData,
    JobRetried,
    JobRetriedData,
    JobRetryScheduled,
    JobRetryScheduledData,
    JobSlotRequested,
    JobSlotRequestedData,
    JobStarted,
    JobStartedData,
    JobSubmitted,
    JobSubmittedData,
    JobSucceeded,
    JobSucceededData,
    JobUpdated,
    JobUpdatedData,
    PipelineStarted,
    PipelineStartedData,
    StepQueuedData,
)
from schemas.fold import fold
from schemas.job import Job, JobStatus, StepPhase, StepStatus
from schemas.options import retry_at
from schemas.pipeline_rules import STEP_RULES, advance, check_plan, step_work
from schemas.values import later

_EVENT_ID_NAMESPACE = uuid.UUID("6f1c1d2e-4b7a-5c3e-9a2f-0b1e2d3c4f5a")


def decide(command: Command, job: Job | None) -> list[AnyEvent]:
    """The events ``command`` causes on ``job`` (``None``: no such job yet).

    Raises a :class:`schemas.errors.Rejection` when the command is impossible.
    """
    if job is not None and job.applied(command.command_id):
        return []
    if isinstance(command, SubmitJob):
        if job is not None:
            raise JobAlreadyExists(command.job_id, f"job {command.job_id} already exists")
        if command.steps is None:
            return _emit(command, None, *_submitted(command))
        check_plan(command)
        return _advanced(command, None, _submitted(command))
    if job is None:
        raise JobNotFound(command.job_id, f"job {command.job_id} does not exist")
    if job.deleted_at is not None:
        raise JobNotFound(command.job_id, f"job {command.job_id} was deleted")
    if not job.is_pipeline:
        if isinstance(command, AdvancePipeline):
            raise InvalidTransition(job.job_id, f"job {job.job_id} is no pipeline")
        rule = _RULES.get(type(command))
        if rule is None:
            raise TypeError(f"unknown command {type(command).__name__}")
        if getattr(command, "step", None) is not None:
            raise InvalidTransition(job.job_id, f"job {job.job_id} is no pipeline: it has no steps")
        return _emit(command, job, *rule(command, job))
    name = getattr(command, "step", None)
    if name is None:
        rule = _PIPELINE_RULES.get(type(command))
        if rule is None:
            raise InvalidTransition(job.job_id, f"{command.type} must name a step of pipeline {job.job_id}")
        return _advanced(command, job, rule(command, job))
    step = job.step(name)
    if step is None:
        raise InvalidTransition(job.job_id, f"pipeline {job.job_id} has no step {name!r}")
    step_rule = STEP_RULES.get(type(command))
    if step_rule is None:
        raise InvalidTransition(job.job_id, f"{command.type} is not for a step (step {name!r} of pipeline {job.job_id})")
    return _advanced(command, job, step_rule(command, job, step))


def _submitted(command: SubmitJob) -> list[Emitted]:
    options = command.options
    submitted = JobSubmittedData(
        job_type=command.job_type,
        payload=command.payload,
        options=options,
        idempotency_key=command.idempotency_key,
        request_hash=command.request_hash,
        steps=command.steps,
    )
    emitted: list[Emitted] = [(JobSubmitted, submitted)]
    if options.due(command.issued_at) is None:
        pipeline = command.steps is not None
        emitted.append(_next_attempt(command.job_id, command.job_type, command.payload, options, 1, False, pipeline))
    return emitted


def _next_attempt(
    job_id: str, job_type: str, payload: dict, options, attempt: int, holds_slot: bool, pipeline: bool = False
) -> Emitted:
    """Queue the attempt, or first ask for a slot of the job's concurrency key;
    a pipeline's next attempt is its next run, which queues its steps."""
    if pipeline:
        return (PipelineStarted, PipelineStartedData(attempt=attempt))
    if options.concurrency_key is not None and not holds_slot:
        return (JobSlotRequested, JobSlotRequestedData(concurrency_key=options.concurrency_key, limit=options.concurrency_limit))
    return _queued(job_id, job_type, payload, options, attempt)


def _queued(job_id: str, job_type: str, payload: dict, options, attempt: int) -> Emitted:
    return (JobQueued, _queued_data(job_id, job_type, payload, options, attempt))


def _queued_data(job_id: str, job_type: str, payload: dict, options, attempt: int) -> JobQueuedData:
    return JobQueuedData(
        attempt=attempt, job_type=job_type, payload=payload, priority=options.priority, timeout_s=options.timeout_s
    )


def queued_work(job: Job) -> list[JobQueuedData | StepQueuedData]:
    """The work of each of ``job``'s attempts that is QUEUED now: what its
    ``job.queued`` (``step.queued``) carried, rebuilt from the state by the
    rules that queued it. A runner handed a job's state rather than its events
    (its process restarted, say) runs the attempt from this."""
    if job.is_pipeline:
        if job.status is not JobStatus.RUNNING:
            return []
        return [
            step_work(job, step, step.phase == StepPhase.COMPENSATE, step.attempt)
            for step in job.steps
            if step.status is StepStatus.QUEUED
        ]
    if job.status is not JobStatus.QUEUED:
        return []
    return [_queued_data(job.job_id, job.job_type, job.payload, job.options, job.attempt)]


class JobAttempts(Attempts):
    """A job's attempts, for the rules of :mod:`schemas.attempt_rules`."""

    kind = "job"

    def __init__(self, job: Job) -> None:
        super().__init__(job, job)

    def __str__(self) -> str:
        return f"job {self.job.job_id}"

    def cancelling(self) -> bool:
        return self.job.cancel_requested_at is not None

    def retry_time(self, now: datetime) -> datetime | None:
        job = self.job
        return retry_at(job.options, job.job_id, job.attempt, now) if job.attempts_left > 0 else None

    def timeout_s(self) -> float | None:
        return self.job.options.timeout_s

    def cancel_deadline(self) -> datetime | None:
        return self.job.cancel_deadline

    def started(self, runner_id: str) -> Emitted:
        return (JobStarted, JobStartedData(attempt=self.attempt, runner_id=runner_id))

    def progressed(self, percent: float, message: str | None) -> Emitted:
        return (JobProgressed, JobProgressedData(attempt=self.attempt, percent=percent, message=message))

    def succeeded(self, result: Any, artifact: ArtifactRef | None) -> Emitted:
        return (JobSucceeded, JobSucceededData(attempt=self.attempt, result=result, artifact=artifact))

    def retry_scheduled(self, failure: dict[str, Any], when: datetime) -> Emitted:
        return (JobRetryScheduled, JobRetryScheduledData(**failure, retry_at=when))

    def failed(self, failure: dict[str, Any]) -> Emitted:
        return (JobFailed, JobFailedData(**failure))

    def cancelled(self) -> Emitted:
        return (JobCancelled, JobCancelledData(attempt=self.attempt, reason=self.job.cancel_reason))

    def released(self, reason: str | None) -> Emitted:
        return (JobReleased, JobReleasedData(attempt=self.attempt, reason=reason))

    def queued_again(self) -> Emitted:
        job = self.job
        return _queued(job.job_id, job.job_type, job.payload, job.options, job.attempt + 1)

    def next_attempt(self) -> Emitted:
        job = self.job
        return _next_attempt(job.job_id, job.job_type, job.payload, job.options, job.attempt + 1, job.holds_slot, job.is_pipeline)


def _grant(command: GrantSlot, job: Job) -> list[Emitted]:
    attempts = JobAttempts(job)
    attempts.require(command, JobStatus.PENDING)
    if not job.awaiting_slot:
        raise InvalidTransition(job.job_id, f"job {job.job_id} is not waiting for a slot")
    return [attempts.queued_again()]


def _refuse(command: RefuseSlot, job: Job) -> list[Emitted]:
    JobAttempts(job).require(command, JobStatus.PENDING)
    if not job.awaiting_slot:
        raise InvalidTransition(job.job_id, f"job {job.job_id} is not waiting for a slot")
    return [(JobRejected, JobRejectedData(reason=CONCURRENCY_LIMIT_REACHED, detail=command.detail))]


def _cancel(command: CancelJob, job: Job) -> list[Emitted]:
    if job.status.terminal:
        raise InvalidTransition(job.job_id, f"job {job.job_id} is {job.status}: there is nothing to cancel")
    if job.status is JobStatus.RUNNING:
        if job.cancel_requested_at is not None:
            return []
        deadline = later(command.issued_at, command.grace_s)
        return [(JobCancelRequested, JobCancelRequestedData(attempt=job.attempt, reason=command.reason, deadline=deadline))]
    return [(JobCancelled, JobCancelledData(attempt=job.attempt, reason=command.reason))]


def _retry(command: RetryJob, job: Job) -> list[Emitted]:
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.REJECTED):
        raise InvalidTransition(
            job.job_id, f"only a FAILED, CANCELLED or REJECTED job can be retried; job {job.job_id} is {job.status}"
        )
    attempt = job.attempt + 1
    return [
        (JobRetried, JobRetriedData(attempt=attempt)),
        _next_attempt(job.job_id, job.job_type, job.payload, job.options, attempt, False, job.is_pipeline),
    ]


def _update(command: UpdateJob, job: Job) -> list[Emitted]:
    if command.priority is None and command.run_at is None:
        return []
    if job.status not in (JobStatus.PENDING, JobStatus.QUEUED):
        raise InvalidTransition(job.job_id, f"job {job.job_id} is {job.status}: only a job that has not started can change")
    if command.run_at is not None and (job.status is not JobStatus.PENDING or job.due_at is None or job.awaiting_slot):
        raise InvalidTransition(
            job.job_id,
            f"job {job.job_id} is {job.status} and waits for no time: run_at changes only while it waits for its "
            "run_at or a backoff",
        )
    return [(JobUpdated, JobUpdatedData(priority=command.priority, run_at=command.run_at))]


def _delete(command: DeleteJob, job: Job) -> list[Emitted]:
    if not job.status.terminal:
        raise InvalidTransition(job.job_id, f"job {job.job_id} is {job.status}: only a job that ended can be deleted")
    return [(JobDeleted, JobDeletedData(reason=command.reason))]


# --- pipelines: the step rules are in schemas.pipeline_rules


def _advanced(command: Command, job: Job | None, emitted: list[Emitted]) -> list[AnyEvent]:
    """The events of ``emitted``, then what the pipeline does next from where
    they lead, until it has nothing more to do (a step failed while being
    queued leads on to compensation in the same decision)."""
    events = _emit(command, job, *emitted)
    after = fold(events, job)
    assert after is not None, "a pipeline's events lead to a pipeline"
    for _ in range(len(after.steps) + 2):  # each round queues, skips or ends something; this bounds a bug
        more = advance(after)
        if not more:
            break
        decided = _emit(command, after, *more, first_index=len(events))
        events += decided
        after = fold(decided, after)
    return events


def _of_job(rule: Callable[[Any, Attempts], list[Emitted]]) -> Callable[[Any, Job], list[Emitted]]:
    return lambda command, job: rule(command, JobAttempts(job))


_RULES: dict[type[Command], Callable[[Any, Job], list[Emitted]]] = {
    **{command: _of_job(rule) for command, rule in ATTEMPT_RULES.items()},
    GrantSlot: _grant,
    RefuseSlot: _refuse,
    CancelJob: _cancel,
    RetryJob: _retry,
    DeleteJob: _delete,
    UpdateJob: _update,
}

_PIPELINE_RULES: dict[type[Command], Callable[[Any, Job], list[Emitted]]] = {
    AdvancePipeline: lambda command, job: [],
    WakeJob: _RULES[WakeJob],
    CancelJob: _cancel,
    RetryJob: _retry,
    DeleteJob: _delete,
    UpdateJob: _update,
}
"""The commands about a pipeline as a whole: the rules of jobs, which start a
pipeline's next run where a job's next attempt. Every other command names a step."""


def _emit(command: Command, job: Job | None, *items: Emitted, first_index: int = 0) -> list[AnyEvent]:
    seq = job.version if job is not None else 0
    prev_hash = job.last_hash if job is not None else GENESIS
    tenant = job.tenant if job is not None else command.tenant
    events: list[AnyEvent] = []
    for index, (event_class, data) in enumerate(items, start=first_index):
        seq += 1
        draft = event_class(  # type: ignore[call-arg]  # each event class fixes its own type
            event_id=str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{command.command_id}/{index}")),
            job_id=command.job_id,
            occurred_at=command.issued_at,
            schema_version=event_class.SCHEMA_VERSION,
            seq=seq,
            tenant=tenant,
            causation_id=command.command_id,
            correlation_id=command.correlation_id or command.command_id,
            prev_hash=prev_hash,
            hash="",
            data=data,
        )
        prev_hash = event_hash(draft.wire_dict())
        events.append(draft.model_copy(update={"hash": prev_hash}))
    return events
