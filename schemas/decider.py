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
from schemas.commands import AnyCommand, Command, CompleteJob, FailJob, StartJob, SubmitJob
from schemas.errors import (
    InvalidTransition,
    JobAlreadyExists,
    JobNotFound,
    SequenceGap,
    StaleAttempt,
)
from schemas.events import (
    AnyEvent,
    Event,
    EventData,
    JobFailed,
    JobFailedData,
    JobQueued,
    JobQueuedData,
    JobStarted,
    JobStartedData,
    JobSubmitted,
    JobSubmittedData,
    JobSucceeded,
    JobSucceededData,
)
from schemas.job import Job, JobStatus

_EVENT_ID_NAMESPACE = uuid.UUID("6f1c1d2e-4b7a-5c3e-9a2f-0b1e2d3c4f5a")


def decide(command: AnyCommand, job: Job | None) -> list[AnyEvent]:
    """The events ``command`` causes on ``job`` (``None``: no such job yet).

    Raises a :class:`schemas.errors.Rejection` when the command is impossible.
    """
    if job is not None and job.applied(command.command_id):
        return []
    if isinstance(command, SubmitJob):
        if job is not None:
            raise JobAlreadyExists(command.job_id, f"job {command.job_id} already exists")
        return _emit(
            command,
            None,
            (JobSubmitted, JobSubmittedData(job_type=command.job_type, payload=command.payload)),
            (
                JobQueued,
                JobQueuedData(attempt=1, job_type=command.job_type, payload=command.payload),
            ),
        )
    if job is None:
        raise JobNotFound(command.job_id, f"job {command.job_id} does not exist")
    if isinstance(command, StartJob):
        _require(job, command, JobStatus.QUEUED)
        return _emit(
            command, job, (JobStarted, JobStartedData(attempt=command.attempt, runner_id=command.runner_id))
        )
    if isinstance(command, CompleteJob):
        _require(job, command, JobStatus.RUNNING)
        return _emit(
            command, job, (JobSucceeded, JobSucceededData(attempt=command.attempt, result=command.result))
        )
    if isinstance(command, FailJob):
        _require(job, command, JobStatus.RUNNING)
        return _emit(
            command,
            job,
            (
                JobFailed,
                JobFailedData(attempt=command.attempt, error=command.error, error_type=command.error_type),
            ),
        )
    raise TypeError(f"unknown command {type(command).__name__}")


def evolve(job: Job | None, event: AnyEvent) -> Job:
    """The job after ``event``. Does not check ``seq``: see :func:`apply_next`."""
    if isinstance(event, JobSubmitted):
        return Job(
            job_id=event.job_id,
            tenant=event.tenant,
            job_type=event.data.job_type,
            payload=event.data.payload,
            status=JobStatus.PENDING,
            version=event.seq,
            last_hash=event.hash,
            created_at=event.occurred_at,
            updated_at=event.occurred_at,
            recent_commands=(event.causation_id,),
        )
    if job is None:
        raise SequenceGap(event.job_id, 1, event.seq)
    update = job.touched(event.occurred_at, event.seq, event.hash, event.causation_id)
    if isinstance(event, JobQueued):
        update.update(status=JobStatus.QUEUED, attempt=event.data.attempt)
    elif isinstance(event, JobStarted):
        update.update(
            status=JobStatus.RUNNING,
            runner_id=event.data.runner_id,
            started_at=event.occurred_at,
        )
    elif isinstance(event, JobSucceeded):
        update.update(
            status=JobStatus.SUCCEEDED, result=event.data.result, finished_at=event.occurred_at
        )
    elif isinstance(event, JobFailed):
        update.update(
            status=JobStatus.FAILED,
            error=event.data.error,
            error_type=event.data.error_type,
            finished_at=event.occurred_at,
        )
    else:
        raise TypeError(f"unknown event {type(event).__name__}")
    return job.model_copy(update=update)


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


def _require(job: Job, command: StartJob | CompleteJob | FailJob, status: JobStatus) -> None:
    if job.status is not status:
        raise InvalidTransition(
            job.job_id, f"{command.type} needs a {status} job; job {job.job_id} is {job.status}"
        )
    if command.attempt != job.attempt:
        raise StaleAttempt(
            job.job_id,
            f"{command.type} is for attempt {command.attempt}; job {job.job_id} is on attempt {job.attempt}",
        )


def _emit(
    command: Command, job: Job | None, *items: tuple[type[Event], EventData]
) -> list[AnyEvent]:
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

