"""The decider's rules for pipelines: what each command does to a step, and
what the pipeline does next.

A pipeline job runs its steps, not an attempt of its own: it is RUNNING from
``PipelineStarted`` until every step succeeded (``JobSucceeded``) or, after a
step failed for good or a cancel, until what had succeeded is compensated in
reverse completion order (``JobFailed`` / ``JobCancelled`` with
``compensated``). A step's attempts follow the rules of a job's — claim,
lease, progress, retry with backoff, timeout — within the step. Each command
decides its step's event; then :func:`advance` says what the pipeline does
next from the state that event leads to (:func:`schemas.decider.decide` joins
the two). Pure, like the rest of the decider.
"""

from __future__ import annotations

from typing import Any

import orjson

from schemas import topics
from schemas.commands import (
    AttemptCommand,
    Command,
    CompleteJob,
    ExpireAttempt,
    ExpiryReason,
    FailJob,
    Heartbeat,
    ReleaseJob,
    ReportProgress,
    StartJob,
    SubmitJob,
    WakeJob,
)
from schemas.errors import InvalidPipeline, InvalidTransition, NotDue, StaleAttempt
from schemas.events import (
    Event,
    EventData,
    JobCancelled,
    JobCancelledData,
    JobFailed,
    JobFailedData,
    JobSucceeded,
    JobSucceededData,
    StepCancelled,
    StepCancelledData,
    StepCompensated,
    StepCompensatedData,
    StepCompensationFailed,
    StepCompensationFailedData,
    StepFailed,
    StepFailedData,
    StepProgressed,
    StepProgressedData,
    StepQueued,
    StepQueuedData,
    StepReleased,
    StepReleasedData,
    StepRetryScheduled,
    StepRetryScheduledData,
    StepSkipped,
    StepSkippedData,
    StepStarted,
    StepStartedData,
    StepSucceeded,
    StepSucceededData,
)
from schemas.job import STEP_ACTIVE, Job, JobStatus, Step, StepPhase, StepStatus, timeout_error
from schemas.options import retry_at
from schemas.pipelines import PIPELINE, Operations, PipelineSpec, PlanError, plan
from schemas.values import later

Emitted = tuple[type[Event], EventData]

INLINE_BUDGET_BYTES = 512 * 1024
"""The most a pipeline's result (its final steps' results) carries inline;
beyond, it is ``None`` and each result is on its step."""
QUEUED_BUDGET_BYTES = topics.MAX_RECORD_BYTES - 16 * 1024
"""The most a ``step.queued`` may carry of payload and inputs (the results it
depends on are copied into it) so that it stays one record. Results larger
than the runner's artifact threshold (64 KiB) travel as references, so this
binds only a step depending on many steps."""
INPUTS_TOO_LARGE = "InputsTooLarge"


def check_plan(command: SubmitJob) -> None:
    """A pipeline's plan checked again (ingest checked it; a command may come from elsewhere)."""
    try:
        plan(PipelineSpec(steps=command.steps), Operations())
    except PlanError as error:
        raise InvalidPipeline(command.job_id, error.message) from None
    nested = [step.name for step in command.steps if step.type == PIPELINE]
    if nested:
        raise InvalidPipeline(command.job_id, f"step {nested[0]!r} is a pipeline; pipelines do not nest")


def _step_start(command: StartJob, job: Job, step: Step) -> list[Emitted]:
    _require_step(job, step, command, StepStatus.QUEUED)
    return [(StepStarted, StepStartedData(step=step.name, attempt=command.attempt, runner_id=command.runner_id))]


def _step_heartbeat(command: Heartbeat, job: Job, step: Step) -> list[Emitted]:
    _require_step_lease(job, step, command)
    return []


def _step_progress(command: ReportProgress, job: Job, step: Step) -> list[Emitted]:
    _require_step_lease(job, step, command)
    if (command.percent, command.message) == (step.progress, step.progress_message):
        return []
    data = StepProgressedData(step=step.name, attempt=command.attempt, percent=command.percent, message=command.message)
    return [(StepProgressed, data)]


def _step_complete(command: CompleteJob, job: Job, step: Step) -> list[Emitted]:
    _require_step_lease(job, step, command)
    if step.phase == StepPhase.COMPENSATE:
        data = StepCompensatedData(step=step.name, attempt=command.attempt, result=command.result, artifact=command.artifact)
        return [(StepCompensated, data)]
    data = StepSucceededData(step=step.name, attempt=command.attempt, result=command.result, artifact=command.artifact)
    return [(StepSucceeded, data)]


def _step_fail(command: FailJob, job: Job, step: Step) -> list[Emitted]:
    _require_step_lease(job, step, command)
    return _step_attempt_failed(job, step, command, command.error, command.error_type, command.retryable, command.traceback)


def _step_release(command: ReleaseJob, job: Job, step: Step) -> list[Emitted]:
    _require_step_lease(job, step, command)
    if step.phase == StepPhase.RUN and job.cancel_requested_at is not None:  # it was asked to stop anyway
        return [(StepCancelled, StepCancelledData(step=step.name, attempt=step.attempt))]
    released = StepReleasedData(step=step.name, attempt=step.attempt, reason=command.reason)
    return [(StepReleased, released), _step_queued(job, step, compensation=step.phase == StepPhase.COMPENSATE)]


def _step_expire(command: ExpireAttempt, job: Job, step: Step) -> list[Emitted]:
    _require_step(job, step, command, StepStatus.RUNNING)
    now = command.issued_at
    if command.reason is ExpiryReason.TIMEOUT:
        timeout_s = step_timeout(job, step)
        if timeout_s is None or step.started_at is None or now < later(step.started_at, timeout_s):
            raise NotDue(job.job_id, f"attempt {step.attempt} of step {step.name!r} has not timed out")
        return _step_attempt_failed(job, step, command, timeout_error(timeout_s), ExpiryReason.TIMEOUT.value, True)
    if command.reason is ExpiryReason.CANCELLED:
        if step.phase == StepPhase.COMPENSATE or job.cancel_deadline is None or now < job.cancel_deadline:
            raise NotDue(job.job_id, f"step {step.name!r} of job {job.job_id} is not past a cancel's grace")
        return [(StepCancelled, StepCancelledData(step=step.name, attempt=step.attempt))]
    error = f"runner {step.runner_id} stopped sending heartbeats; the attempt is lost"
    return _step_attempt_failed(job, step, command, error, ExpiryReason.LOST.value, True)


def _step_wake(command: WakeJob, job: Job, step: Step) -> list[Emitted]:
    _require_step(job, step, command, StepStatus.PENDING)
    if step.due_at is None or command.issued_at < step.due_at:
        raise NotDue(job.job_id, f"step {step.name!r} of job {job.job_id} is not due")
    return [_step_queued(job, step, compensation=step.phase == StepPhase.COMPENSATE)]


def _step_attempt_failed(
    job: Job, step: Step, command: Command, error: str, error_type: str | None, retryable: bool, traceback: str | None = None
) -> list[Emitted]:
    failure = dict(step=step.name, attempt=step.attempt, error=error, error_type=error_type, traceback=traceback)
    if step.phase == StepPhase.RUN and job.cancel_requested_at is not None:
        return [(StepCancelled, StepCancelledData(step=step.name, attempt=step.attempt))]
    tried = step.attempt - step.budget_start + 1
    if retryable and tried < (step.max_phase_attempts or job.options.max_attempts):
        when = retry_at(job.options, f"{job.job_id}/{step.name}", tried, command.issued_at)
        return [(StepRetryScheduled, StepRetryScheduledData(**failure, retry_at=when))]
    if step.phase == StepPhase.COMPENSATE:
        return [(StepCompensationFailed, StepCompensationFailedData(**failure))]
    return [(StepFailed, StepFailedData(**failure))]


def _step_queued(job: Job, step: Step, compensation: bool = False) -> Emitted:
    """The next attempt of ``step``: its work, or its compensation's (given the
    result it undoes). Inputs too large for one record fail it at once instead."""
    data = step_work(job, step, compensation, step.attempt + 1)
    size = _inline_size(data.inputs) + _inline_size(data.payload)
    if size > QUEUED_BUDGET_BYTES:
        failure = dict(
            step=step.name,
            attempt=data.attempt,
            error_type=INPUTS_TOO_LARGE,
            error=f"its payload and inputs take {size:,} bytes, more than one event may carry ({QUEUED_BUDGET_BYTES:,}): "
            "store large results as artifacts (JOBLEDGER_ARTIFACT_THRESHOLD_BYTES) or depend on fewer steps",
        )
        if compensation:
            return (StepCompensationFailed, StepCompensationFailedData(**failure))
        return (StepFailed, StepFailedData(**failure))
    return (StepQueued, data)


def step_work(job: Job, step: Step, compensation: bool, attempt: int) -> StepQueuedData:
    """What attempt ``attempt`` of ``step`` (or of its compensation) runs: the
    data of its ``step.queued``. The inputs are the results of the steps it
    depends on (a compensation: of the step it undoes), which no later event
    changes, so the same work is rebuilt from any state where it is queued."""
    if compensation:
        job_type, payload, sources = step.compensate.type, step.compensate.payload, [step]
        timeout_s = job.options.timeout_s
    else:
        job_type, payload = step.type, step.payload or {}
        sources = [job.step(dependency) for dependency in step.depends_on]
        timeout_s = step_timeout(job, step)
    return StepQueuedData(
        step=step.name,
        attempt=attempt,
        job_type=job_type,
        payload=payload,
        inputs={source.name: source.result for source in sources},
        input_artifacts={source.name: source.artifact for source in sources if source.artifact is not None},
        compensation=compensation,
        priority=job.options.priority,
        timeout_s=timeout_s,
    )


def _inline_size(value: Any) -> int:
    return len(orjson.dumps(value))


def step_timeout(job: Job, step: Step) -> float | None:
    """The timeout of the step's current attempt: its own, else (and for a compensation) the pipeline's."""
    if step.phase == StepPhase.RUN and step.timeout_s is not None:
        return step.timeout_s
    return job.options.timeout_s


def advance(job: Job) -> list[Emitted]:
    """What a RUNNING pipeline does next: queue the steps whose dependencies all
    succeeded, or succeed; once a step failed for good or a cancel came, skip
    what has not begun, let what runs end, then compensate the succeeded steps
    one at a time, latest first, and end."""
    if job.status is not JobStatus.RUNNING:
        return []
    steps = job.steps
    stopping = job.cancel_requested_at is not None or any(
        step.status in (StepStatus.FAILED, StepStatus.CANCELLED) for step in steps
    )
    if not stopping:
        succeeded = {step.name for step in steps if step.status is StepStatus.SUCCEEDED}
        if len(succeeded) == len(steps):
            return [(JobSucceeded, JobSucceededData(attempt=job.attempt, result=_pipeline_result(job)))]
        return [
            _step_queued(job, step)
            for step in steps
            if step.status is StepStatus.WAITING and all(dependency in succeeded for dependency in step.depends_on)
        ]
    unstarted = (StepStatus.WAITING, StepStatus.PENDING, StepStatus.QUEUED)
    skipped = [step for step in steps if step.phase == StepPhase.RUN and step.status in unstarted]
    emitted: list[Emitted] = [(StepSkipped, StepSkippedData(step=step.name, attempt=step.attempt)) for step in skipped]
    if any(step.status in STEP_ACTIVE and step not in skipped for step in steps):
        return emitted  # what runs ends first; compensations run one at a time
    for name in reversed(job.completed_steps):
        step = job.step(name)
        if step.status is StepStatus.SUCCEEDED and step.compensate is not None:
            return emitted + [_step_queued(job, step, compensation=True)]
    return emitted + [_pipeline_ended(job)]


def _pipeline_result(job: Job) -> dict | None:
    """The results of the steps no other step depends on (``None`` when together
    they are too large for one event: each is on its step)."""
    needed = {dependency for step in job.steps for dependency in step.depends_on}
    results = {step.name: step.result for step in job.steps if step.name not in needed}
    return results if _inline_size(results) <= INLINE_BUDGET_BYTES else None


def _pipeline_ended(job: Job) -> Emitted:
    undone = [step for step in job.steps if step.status in (StepStatus.COMPENSATED, StepStatus.COMPENSATION_FAILED)]
    unfinished = [step for step in undone if step.status is StepStatus.COMPENSATION_FAILED]
    compensated = (not unfinished) if undone else None
    if job.cancel_requested_at is not None:
        return (JobCancelled, JobCancelledData(attempt=job.attempt, reason=job.cancel_reason, compensated=compensated))
    failed = job.step(job.failed_step)
    error = f"step {failed.name!r} failed: {failed.error}"
    if unfinished:
        error += "; " + "; ".join(f"compensation of step {step.name!r} failed: {step.error}" for step in unfinished)
    data = JobFailedData(
        attempt=job.attempt,
        error=error,
        error_type=failed.error_type,
        step=failed.name,
        compensated=compensated,
        traceback=failed.errors[-1].traceback if failed.errors else None,
    )
    return (JobFailed, data)


def _require_step(job: Job, step: Step, command: Command, status: StepStatus) -> None:
    if job.status is not JobStatus.RUNNING:
        raise InvalidTransition(job.job_id, f"{command.type} needs a RUNNING pipeline; job {job.job_id} is {job.status}")
    if step.status is not status:
        raise InvalidTransition(
            job.job_id, f"{command.type} needs a {status} step; step {step.name!r} of job {job.job_id} is {step.status}"
        )
    attempt = getattr(command, "attempt", None)
    if attempt is not None and attempt != step.attempt:
        raise StaleAttempt(
            job.job_id,
            f"{command.type} is for attempt {attempt}; step {step.name!r} of job {job.job_id} is on attempt {step.attempt}",
        )


def _require_step_lease(job: Job, step: Step, command: AttemptCommand) -> None:
    _require_step(job, step, command, StepStatus.RUNNING)
    if command.runner_id != step.runner_id:
        raise StaleAttempt(
            job.job_id, f"step {step.name!r} of job {job.job_id} is held by runner {step.runner_id}, not {command.runner_id}"
        )


STEP_RULES = {
    StartJob: _step_start,
    Heartbeat: _step_heartbeat,
    ReportProgress: _step_progress,
    CompleteJob: _step_complete,
    FailJob: _step_fail,
    ReleaseJob: _step_release,
    ExpireAttempt: _step_expire,
    WakeJob: _step_wake,
}
"""The commands that name a step, and the rule for each."""
