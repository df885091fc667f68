"""The pure decider: ``decide`` turns a command into events, ``evolve`` folds them.

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
from collections.abc import Iterable

from schemas.chain import GENESIS, event_hash
from schemas.commands import (
    AnyCommand,
    AttemptCommand,
    CancelJob,
    Command,
    CompleteJob,
    ExpireAttempt,
    ExpiryReason,
    FailJob,
    GrantSlot,
    Heartbeat,
    RefuseSlot,
    ReportProgress,
    RetryJob,
    StartJob,
    SubmitJob,
    WakeJob,
)
from schemas.errors import (
    CONCURRENCY_LIMIT_REACHED,
    InvalidTransition,
    JobAlreadyExists,
    JobNotFound,
    NotDue,
    SequenceGap,
    StaleAttempt,
)
from schemas.events import (
    AnyEvent,
    Event,
    EventData,
    JobCancelled,
    JobCancelledData,
    JobCancelRequested,
    JobCancelRequestedData,
    JobFailed,
    JobFailedData,
    JobProgressed,
    JobProgressedData,
    JobQueued,
    JobQueuedData,
    JobRetried,
    JobRetriedData,
    JobRetryScheduled,
    JobRetryScheduledData,
    JobRejected,
    JobRejectedData,
    JobSlotRequested,
    JobSlotRequestedData,
    JobStarted,
    JobStartedData,
    JobSubmitted,
    JobSubmittedData,
    JobSucceeded,
    JobSucceededData,
)
from schemas.job import AttemptError, Job, JobStatus, timeout_error
from schemas.options import retry_at
from schemas.values import later

_EVENT_ID_NAMESPACE = uuid.UUID("6f1c1d2e-4b7a-5c3e-9a2f-0b1e2d3c4f5a")
Emitted = tuple[type[Event], EventData]


def decide(command: AnyCommand, job: Job | None) -> list[AnyEvent]:
    """The events ``command`` causes on ``job`` (``None``: no such job yet).

    Raises a :class:`schemas.errors.Rejection` when the command is impossible.
    """
    if job is not None and job.applied(command.command_id):
        return []
    if isinstance(command, SubmitJob):
        if job is not None:
            raise JobAlreadyExists(command.job_id, f"job {command.job_id} already exists")
        return _emit(command, None, *_submitted(command))
    if job is None:
        raise JobNotFound(command.job_id, f"job {command.job_id} does not exist")
    rule = _RULES.get(type(command))
    if rule is None:
        raise TypeError(f"unknown command {type(command).__name__}")
    return _emit(command, job, *rule(command, job))


def _submitted(command: SubmitJob) -> list[Emitted]:
    options = command.options
    submitted = JobSubmittedData(
        job_type=command.job_type,
        payload=command.payload,
        options=options,
        idempotency_key=command.idempotency_key,
        request_hash=command.request_hash,
    )
    emitted: list[Emitted] = [(JobSubmitted, submitted)]
    if options.due(command.issued_at) is None:
        emitted.append(_next_attempt(command.job_id, command.job_type, command.payload, options, 1, holds_slot=False))
    return emitted


def _next_attempt(job_id: str, job_type: str, payload: dict, options, attempt: int, holds_slot: bool) -> Emitted:
    """Queue the attempt, or first ask for a slot of the job's concurrency key."""
    if options.concurrency_key is not None and not holds_slot:
        return (JobSlotRequested, JobSlotRequestedData(concurrency_key=options.concurrency_key, limit=options.concurrency_limit))
    return _queued(job_id, job_type, payload, options, attempt)


def _queued(job_id: str, job_type: str, payload: dict, options, attempt: int) -> Emitted:
    return (
        JobQueued,
        JobQueuedData(
            attempt=attempt,
            job_type=job_type,
            payload=payload,
            priority=options.priority,
            timeout_s=options.timeout_s,
        ),
    )


def _wake(command: WakeJob, job: Job) -> list[Emitted]:
    _require_status(job, command, JobStatus.PENDING)
    if job.due_at is None or command.issued_at < job.due_at:
        raise NotDue(job.job_id, f"job {job.job_id} is not due")
    return [_next_attempt(job.job_id, job.job_type, job.payload, job.options, job.attempt + 1, job.holds_slot)]


def _grant(command: GrantSlot, job: Job) -> list[Emitted]:
    _require_status(job, command, JobStatus.PENDING)
    if not job.awaiting_slot:
        raise InvalidTransition(job.job_id, f"job {job.job_id} is not waiting for a slot")
    return [_queued(job.job_id, job.job_type, job.payload, job.options, attempt=job.attempt + 1)]


def _refuse(command: RefuseSlot, job: Job) -> list[Emitted]:
    _require_status(job, command, JobStatus.PENDING)
    if not job.awaiting_slot:
        raise InvalidTransition(job.job_id, f"job {job.job_id} is not waiting for a slot")
    return [(JobRejected, JobRejectedData(reason=CONCURRENCY_LIMIT_REACHED, detail=command.detail))]


def _start(command: StartJob, job: Job) -> list[Emitted]:
    _require_status(job, command, JobStatus.QUEUED)
    _require_attempt(job, command)
    return [(JobStarted, JobStartedData(attempt=command.attempt, runner_id=command.runner_id))]


def _heartbeat(command: Heartbeat, job: Job) -> list[Emitted]:
    _require_lease(job, command)
    return []


def _progress(command: ReportProgress, job: Job) -> list[Emitted]:
    _require_lease(job, command)
    if (command.percent, command.message) == (job.progress, job.progress_message):
        return []
    return [
        (JobProgressed, JobProgressedData(attempt=command.attempt, percent=command.percent, message=command.message))
    ]


def _complete(command: CompleteJob, job: Job) -> list[Emitted]:
    _require_lease(job, command)
    return [(JobSucceeded, JobSucceededData(attempt=command.attempt, result=command.result))]


def _fail(command: FailJob, job: Job) -> list[Emitted]:
    _require_lease(job, command)
    return _attempt_failed(job, command, command.error, command.error_type, command.retryable)


def _expire(command: ExpireAttempt, job: Job) -> list[Emitted]:
    _require_status(job, command, JobStatus.RUNNING)
    _require_attempt(job, command)
    now = command.issued_at
    if command.reason is ExpiryReason.TIMEOUT:
        timeout_s = job.options.timeout_s
        if timeout_s is None or job.started_at is None or now < later(job.started_at, timeout_s):
            raise NotDue(job.job_id, f"attempt {job.attempt} of job {job.job_id} has not timed out")
        return _attempt_failed(job, command, timeout_error(timeout_s), ExpiryReason.TIMEOUT.value, True)
    if command.reason is ExpiryReason.CANCELLED:
        if job.cancel_deadline is None or now < job.cancel_deadline:
            raise NotDue(job.job_id, f"job {job.job_id} is still within its cancel grace period")
        return [(JobCancelled, JobCancelledData(attempt=job.attempt, reason=job.cancel_reason))]
    return _attempt_failed(
        job, command, f"runner {job.runner_id} stopped sending heartbeats; the attempt is lost", ExpiryReason.LOST.value, True
    )


def _attempt_failed(job: Job, command: Command, error: str, error_type: str | None, retryable: bool) -> list[Emitted]:
    if job.cancel_requested_at is not None:
        return [(JobCancelled, JobCancelledData(attempt=job.attempt, reason=job.cancel_reason))]
    if retryable and job.attempts_left > 0:
        when = retry_at(job.options, job.job_id, job.attempt, command.issued_at)
        return [
            (
                JobRetryScheduled,
                JobRetryScheduledData(attempt=job.attempt, error=error, error_type=error_type, retry_at=when),
            )
        ]
    return [(JobFailed, JobFailedData(attempt=job.attempt, error=error, error_type=error_type))]


def _cancel(command: CancelJob, job: Job) -> list[Emitted]:
    if job.status.terminal:
        raise InvalidTransition(job.job_id, f"job {job.job_id} is {job.status}: there is nothing to cancel")
    if job.status is JobStatus.RUNNING:
        if job.cancel_requested_at is not None:
            return []
        deadline = later(command.issued_at, command.grace_s)
        return [
            (JobCancelRequested, JobCancelRequestedData(attempt=job.attempt, reason=command.reason, deadline=deadline))
        ]
    return [(JobCancelled, JobCancelledData(attempt=job.attempt, reason=command.reason))]


def _retry(command: RetryJob, job: Job) -> list[Emitted]:
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.REJECTED):
        raise InvalidTransition(
            job.job_id, f"only a FAILED, CANCELLED or REJECTED job can be retried; job {job.job_id} is {job.status}"
        )
    attempt = job.attempt + 1
    return [
        (JobRetried, JobRetriedData(attempt=attempt)),
        _next_attempt(job.job_id, job.job_type, job.payload, job.options, attempt, holds_slot=False),
    ]


_RULES = {
    WakeJob: _wake,
    GrantSlot: _grant,
    RefuseSlot: _refuse,
    StartJob: _start,
    Heartbeat: _heartbeat,
    ReportProgress: _progress,
    CompleteJob: _complete,
    FailJob: _fail,
    ExpireAttempt: _expire,
    CancelJob: _cancel,
    RetryJob: _retry,
}


def evolve(job: Job | None, event: AnyEvent) -> Job:
    """The job after ``event``. Does not check ``seq``: see :func:`apply_next`."""
    if isinstance(event, JobSubmitted):
        data = event.data
        return Job(
            job_id=event.job_id,
            tenant=event.tenant,
            job_type=data.job_type,
            payload=data.payload,
            options=data.options,
            idempotency_key=data.idempotency_key,
            request_hash=data.request_hash,
            status=JobStatus.PENDING,
            due_at=data.options.run_at,
            version=event.seq,
            last_hash=event.hash,
            created_at=event.occurred_at,
            updated_at=event.occurred_at,
            recent_commands=(event.causation_id,),
        )
    if job is None:
        raise SequenceGap(event.job_id, 1, event.seq)
    update = job.touched(event.occurred_at, event.seq, event.hash, event.causation_id)
    at = event.occurred_at
    ended = {"finished_at": at, "holds_slot": False, "awaiting_slot": False}
    if isinstance(event, JobSlotRequested):
        update.update(due_at=None, awaiting_slot=True)
    elif isinstance(event, JobQueued):
        update.update(
            status=JobStatus.QUEUED, attempt=event.data.attempt, due_at=None, runner_id=None,
            progress=None, progress_message=None, started_at=None,
            awaiting_slot=False, holds_slot=job.options.concurrency_key is not None,
        )
    elif isinstance(event, JobStarted):
        update.update(status=JobStatus.RUNNING, runner_id=event.data.runner_id, started_at=at)
    elif isinstance(event, JobProgressed):
        update.update(progress=event.data.percent, progress_message=event.data.message)
    elif isinstance(event, JobSucceeded):
        update.update(status=JobStatus.SUCCEEDED, result=event.data.result, progress=100.0, **ended)
    elif isinstance(event, JobRetryScheduled):
        update.update(status=JobStatus.PENDING, due_at=event.data.retry_at, errors=_with_error(job, event, at))
    elif isinstance(event, JobFailed):
        update.update(
            status=JobStatus.FAILED,
            error=event.data.error,
            error_type=event.data.error_type,
            errors=_with_error(job, event, at),
            **ended,
        )
    elif isinstance(event, JobCancelRequested):
        update.update(cancel_requested_at=at, cancel_deadline=event.data.deadline, cancel_reason=event.data.reason)
    elif isinstance(event, JobCancelled):
        update.update(status=JobStatus.CANCELLED, due_at=None, cancel_reason=event.data.reason, **ended)
    elif isinstance(event, JobRejected):
        update.update(status=JobStatus.REJECTED, due_at=None, error=event.data.detail, error_type=event.data.reason, **ended)
    elif isinstance(event, JobRetried):
        update.update(
            status=JobStatus.PENDING, budget_start=event.data.attempt, result=None, error=None, error_type=None,
            finished_at=None, cancel_requested_at=None, cancel_deadline=None, cancel_reason=None,
        )
    else:
        raise TypeError(f"unknown event {type(event).__name__}")
    return job.model_copy(update=update)


def _with_error(job: Job, event: JobRetryScheduled | JobFailed, at) -> tuple[AttemptError, ...]:
    data = event.data
    return job.errors + (AttemptError(attempt=data.attempt, error=data.error, error_type=data.error_type, at=at),)


def apply_next(job: Job | None, event: AnyEvent) -> Job | None:
    """``evolve`` for consumers of the log: the new job if ``event`` is the next
    one, ``None`` if it was applied already (a redelivery). Raises
    :class:`SequenceGap` when an earlier event is missing."""
    version = job.version if job is not None else 0
    if event.seq <= version:
        return None
    if event.seq != version + 1:
        raise SequenceGap(event.job_id, version + 1, event.seq)
    return evolve(job, event)


def fold(events: Iterable[AnyEvent], job: Job | None = None) -> Job | None:
    """The job after a history of events, skipping redelivered ones."""
    for event in events:
        job = apply_next(job, event) or job
    return job


def _require_status(job: Job, command: Command, status: JobStatus) -> None:
    if job.status is not status:
        raise InvalidTransition(
            job.job_id, f"{command.type} needs a {status} job; job {job.job_id} is {job.status}"
        )


def _require_attempt(job: Job, command: AttemptCommand | ExpireAttempt) -> None:
    if command.attempt != job.attempt:
        raise StaleAttempt(
            job.job_id,
            f"{command.type} is for attempt {command.attempt}; job {job.job_id} is on attempt {job.attempt}",
        )


def _require_lease(job: Job, command: AttemptCommand) -> None:
    """Only the runner whose StartJob won may report on the running attempt."""
    _require_status(job, command, JobStatus.RUNNING)
    _require_attempt(job, command)
    if command.runner_id != job.runner_id:
        raise StaleAttempt(
            job.job_id, f"attempt {job.attempt} of job {job.job_id} is held by runner {job.runner_id}, not {command.runner_id}"
        )


def _emit(command: Command, job: Job | None, *items: Emitted) -> list[AnyEvent]:
    seq = job.version if job is not None else 0
    prev_hash = job.last_hash if job is not None else GENESIS
    tenant = job.tenant if job is not None else command.tenant
    events: list[AnyEvent] = []
    for index, (event_class, data) in enumerate(items):
        seq += 1
        draft = event_class(
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

