"""The fold: ``evolve`` applies one event to a job, ``fold`` a history.

Pure and shared: the decider folds what it decided, and the projector,
replay, ``as_of`` queries, the API's read-your-writes and any downstream
consumer fold the log with these very functions. One fold, everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import overload

from schemas.errors import SequenceGap
from schemas.events import (
    STEP_EVENTS,
    AnyEvent,
    JobCancelled,
    JobCancelRequested,
    JobDeleted,
    JobFailed,
    JobProgressed,
    JobQueued,
    JobRejected,
    JobReleased,
    JobRetried,
    JobRetryScheduled,
    JobSlotRequested,
    JobStarted,
    JobSubmitted,
    JobSucceeded,
    JobUpdated,
    PipelineStarted,
    StepCancelled,
    StepCompensated,
    StepCompensationFailed,
    StepFailed,
    StepProgressed,
    StepQueued,
    StepReleased,
    StepRetryScheduled,
    StepSkipped,
    StepStarted,
    StepSucceeded,
)
from schemas.job import AttemptError, Job, JobStatus, Step, StepPhase, StepStatus
from schemas.pipelines import PipelineStep


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
            steps=tuple(Step(**step.model_dump()) for step in data.steps or ()),
        )
    if job is None:
        raise SequenceGap(event.job_id, 1, event.seq)
    update = job.touched(event.occurred_at, event.seq, event.hash, event.causation_id)
    at = event.occurred_at
    if isinstance(event, STEP_EVENTS):
        return job.model_copy(update=update | _step_evolved(job, event, at))
    ended = {"finished_at": at, "holds_slot": False, "awaiting_slot": False}
    if isinstance(event, JobSlotRequested):
        update.update(due_at=None, awaiting_slot=True)
    elif isinstance(event, JobQueued):
        update.update(
            status=JobStatus.QUEUED,
            attempt=event.data.attempt,
            due_at=None,
            runner_id=None,
            progress=None,
            progress_message=None,
            started_at=None,
            awaiting_slot=False,
            holds_slot=job.options.concurrency_key is not None,
        )
    elif isinstance(event, JobStarted):
        update.update(status=JobStatus.RUNNING, runner_id=event.data.runner_id, started_at=at)
    elif isinstance(event, JobProgressed):
        update.update(progress=event.data.percent, progress_message=event.data.message)
    elif isinstance(event, JobSucceeded):
        update.update(status=JobStatus.SUCCEEDED, result=event.data.result, artifact=event.data.artifact, progress=100.0, **ended)
    elif isinstance(event, JobRetryScheduled):
        update.update(status=JobStatus.PENDING, due_at=event.data.retry_at, errors=_with_error(job.errors, event.data, at))
    elif isinstance(event, JobFailed):
        update.update(
            status=JobStatus.FAILED,
            error=event.data.error,
            error_type=event.data.error_type,
            errors=_with_error(job.errors, event.data, at),
            failed_step=event.data.step,
            compensated=event.data.compensated,
            **ended,
        )
    elif isinstance(event, JobCancelRequested):
        update.update(cancel_requested_at=at, cancel_deadline=event.data.deadline, cancel_reason=event.data.reason)
    elif isinstance(event, JobCancelled):
        update.update(
            status=JobStatus.CANCELLED, due_at=None, cancel_reason=event.data.reason, compensated=event.data.compensated, **ended
        )
    elif isinstance(event, PipelineStarted):
        update.update(
            status=JobStatus.RUNNING,
            attempt=event.data.attempt,
            due_at=None,
            started_at=at,
            progress=0.0,
            progress_message=None,
            completed_steps=(),
            failed_step=None,
            compensated=None,
            steps=tuple(_step_reset(step) for step in job.steps),
        )
    elif isinstance(event, JobDeleted):
        update.update(deleted_at=at)
    elif isinstance(event, JobUpdated):
        changed = {name: value for name, value in event.data.model_dump().items() if value is not None}
        update.update(options=job.options.model_copy(update=changed))
        if event.data.run_at is not None:
            update.update(due_at=event.data.run_at)
    elif isinstance(event, JobRejected):
        update.update(status=JobStatus.REJECTED, due_at=None, error=event.data.detail, error_type=event.data.reason, **ended)
    elif isinstance(event, JobReleased):
        update.update(
            status=JobStatus.PENDING,
            budget_start=job.budget_start + 1,
            runner_id=None,
            progress=None,
            progress_message=None,
        )
    elif isinstance(event, JobRetried):
        update.update(
            status=JobStatus.PENDING,
            budget_start=event.data.attempt,
            result=None,
            artifact=None,
            error=None,
            error_type=None,
            finished_at=None,
            cancel_requested_at=None,
            cancel_deadline=None,
            cancel_reason=None,
        )
    else:
        raise TypeError(f"unknown event {type(event).__name__}")
    return job.model_copy(update=update)


def _step_reset(step: Step) -> Step:
    """A step as a new run of its pipeline finds it: waiting, its attempts numbering on."""
    plan = step.model_dump(include=set(PipelineStep.model_fields))
    return Step(**plan, attempt=step.attempt, budget_start=step.attempt + 1)


def _step_evolved(job: Job, event, at) -> dict:
    """The job fields a step event changes: the step's own, and what the job derives from its steps."""
    data = event.data
    name = data.step
    step = job.step(name)
    if step is None:
        raise ValueError(f"job {job.job_id} has no step {name!r}")
    derived: dict = {}
    if isinstance(event, StepQueued):
        phase = StepPhase.COMPENSATE if data.compensation else StepPhase.RUN
        change = dict(
            status=StepStatus.QUEUED,
            attempt=data.attempt,
            phase=phase,
            due_at=None,
            runner_id=None,
            queued_at=at,
            started_at=None,
            progress=None if phase == StepPhase.RUN else step.progress,
            progress_message=None,
        )
        if phase != step.phase:
            change.update(budget_start=data.attempt)
    elif isinstance(event, StepStarted):
        change = dict(status=StepStatus.RUNNING, runner_id=data.runner_id, started_at=at)
    elif isinstance(event, StepProgressed):
        change = dict(progress=data.percent, progress_message=data.message)
    elif isinstance(event, StepSucceeded):
        change = dict(status=StepStatus.SUCCEEDED, result=data.result, artifact=data.artifact, progress=100.0, finished_at=at)
        derived["completed_steps"] = job.completed_steps + (name,)
    elif isinstance(event, StepRetryScheduled):
        change = dict(status=StepStatus.PENDING, due_at=data.retry_at, errors=_with_error(step.errors, data, at))
    elif isinstance(event, StepFailed):
        change = dict(
            status=StepStatus.FAILED,
            attempt=data.attempt,
            error=data.error,
            error_type=data.error_type,
            errors=_with_error(step.errors, data, at),
            finished_at=at,
        )
        derived["failed_step"] = name
    elif isinstance(event, StepCancelled):
        change = dict(status=StepStatus.CANCELLED, finished_at=at)
    elif isinstance(event, StepReleased):
        change = dict(
            status=StepStatus.PENDING,
            budget_start=step.budget_start + 1,
            runner_id=None,
            progress=None if step.phase == StepPhase.RUN else step.progress,
            progress_message=None,
        )
    elif isinstance(event, StepSkipped):
        change = dict(status=StepStatus.SKIPPED, due_at=None)
    elif isinstance(event, StepCompensated):
        change = dict(
            status=StepStatus.COMPENSATED, compensation_result=data.result, compensation_artifact=data.artifact, finished_at=at
        )
    elif isinstance(event, StepCompensationFailed):
        change = dict(
            status=StepStatus.COMPENSATION_FAILED,
            error=data.error,
            error_type=data.error_type,
            errors=_with_error(step.errors, data, at),
            finished_at=at,
        )
    else:
        raise TypeError(f"unknown step event {type(event).__name__}")
    steps = job.with_step(name, **change)
    return {"steps": steps, "progress": pipeline_progress(steps), **derived}


def pipeline_progress(steps: tuple[Step, ...]) -> float:
    """A pipeline's percent: its steps' run phases, each counting equally."""
    done = 0.0
    for step in steps:
        if step.status in (StepStatus.SUCCEEDED, StepStatus.COMPENSATED, StepStatus.COMPENSATION_FAILED):
            done += 100.0
        elif step.phase == StepPhase.RUN and step.status is StepStatus.RUNNING:
            done += step.progress or 0.0
    return round(done / len(steps), 1)


def _with_error(errors: tuple[AttemptError, ...], data, at) -> tuple[AttemptError, ...]:
    """``errors`` (a job's or a step's) and the failed attempt ``data`` reports."""
    return errors + (
        AttemptError(attempt=data.attempt, error=data.error, error_type=data.error_type, traceback=data.traceback, at=at),
    )


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


@overload
def fold(events: Iterable[AnyEvent], job: Job) -> Job: ...


@overload
def fold(events: Iterable[AnyEvent], job: Job | None = None) -> Job | None: ...


def fold(events: Iterable[AnyEvent], job: Job | None = None) -> Job | None:
    """The job after a history of events, skipping redelivered ones (a job
    given stays a job: no event takes it away)."""
    for event in events:
        job = apply_next(job, event) or job
    return job
