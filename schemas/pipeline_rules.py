"""The decider's rules for pipelines: what each command does to a step, and
what the pipeline does next.

A pipeline job runs its steps, not an attempt of its own: it is RUNNING from
``PipelineStarted`` until every step succeeded (``JobSucceeded``) or, after a
step failed for good or a cancel, until what had succeeded is compensated in
reverse completion order (``JobFailed`` / ``JobCancelled`` with
``compensated``). A step's attempts follow the very rules of a job's —
claim, lease, progress, retry with backoff, timeout, release — written once
in :mod:`schemas.attempt_rules` and applied to the step through
:class:`StepAttempts` (within its own attempt budget, a compensation
included). Each command decides its step's event; then :func:`advance` says what the pipeline does
next from the state that event leads to (:func:`schemas.decider.decide` joins
the two). Pure, like the rest of the decider.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from schemas import topics
from schemas.artifacts import ArtifactRef
from schemas.attempt_rules import RULES as ATTEMPT_RULES
from schemas.attempt_rules import Attempts, Emitted
from schemas.commands import Command, SubmitJob
from schemas.errors import InvalidPipeline, InvalidTransition
from schemas.events import (
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
from schemas.job import STEP_ACTIVE, Job, JobStatus, Step, StepPhase, StepStatus
from schemas.options import retry_at
from schemas.pipelines import PIPELINE, Operations, PipelineSpec, PlanError, plan

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
    steps = command.steps or ()
    try:
        plan(PipelineSpec(steps=steps), Operations())
    except PlanError as error:
        raise InvalidPipeline(command.job_id, error.message) from None
    nested = [step.name for step in steps if step.type == PIPELINE]
    if nested:
        raise InvalidPipeline(command.job_id, f"step {nested[0]!r} is a pipeline; pipelines do not nest")


class StepAttempts(Attempts):
    """One step's attempts (its work's, or its compensation's), for the rules of :mod:`schemas.attempt_rules`."""

    kind = "step"

    def __init__(self, job: Job, step: Step) -> None:
        super().__init__(job, step)
        self.step = step
        self.compensating = step.phase == StepPhase.COMPENSATE

    def __str__(self) -> str:
        return f"step {self.step.name!r} of job {self.job.job_id}"

    def require(self, command: Command, status: str) -> None:
        if self.job.status is not JobStatus.RUNNING:
            raise InvalidTransition(
                self.job.job_id, f"{command.type} needs a RUNNING pipeline; job {self.job.job_id} is {self.job.status}"
            )
        super().require(command, status)

    def cancelling(self) -> bool:
        """A cancel stops a step's work; a compensation runs to its end."""
        return not self.compensating and self.job.cancel_requested_at is not None

    def retry_time(self, now: datetime) -> datetime | None:
        step, job = self.step, self.job
        tried = step.attempt - step.budget_start + 1
        if tried < (step.max_phase_attempts or job.options.max_attempts):
            return retry_at(job.options, f"{job.job_id}/{step.name}", tried, now)
        return None

    def timeout_s(self) -> float | None:
        return step_timeout(self.job, self.step)

    def cancel_deadline(self) -> datetime | None:
        return None if self.compensating else self.job.cancel_deadline

    def started(self, runner_id: str) -> Emitted:
        return (StepStarted, StepStartedData(step=self.step.name, attempt=self.attempt, runner_id=runner_id))

    def progressed(self, percent: float, message: str | None) -> Emitted:
        return (StepProgressed, StepProgressedData(step=self.step.name, attempt=self.attempt, percent=percent, message=message))

    def succeeded(self, result: Any, artifact: ArtifactRef | None) -> Emitted:
        done = dict(step=self.step.name, attempt=self.attempt, result=result, artifact=artifact)
        if self.compensating:
            return (StepCompensated, StepCompensatedData(**done))
        return (StepSucceeded, StepSucceededData(**done))

    def retry_scheduled(self, failure: dict[str, Any], when: datetime) -> Emitted:
        return (StepRetryScheduled, StepRetryScheduledData(**failure, step=self.step.name, retry_at=when))

    def failed(self, failure: dict[str, Any]) -> Emitted:
        if self.compensating:
            return (StepCompensationFailed, StepCompensationFailedData(**failure, step=self.step.name))
        return (StepFailed, StepFailedData(**failure, step=self.step.name))

    def cancelled(self) -> Emitted:
        return (StepCancelled, StepCancelledData(step=self.step.name, attempt=self.attempt))

    def released(self, reason: str | None) -> Emitted:
        return (StepReleased, StepReleasedData(step=self.step.name, attempt=self.attempt, reason=reason))

    def queued_again(self) -> Emitted:
        return _step_queued(self.job, self.step, compensation=self.compensating)

    def next_attempt(self) -> Emitted:
        return _step_queued(self.job, self.step, compensation=self.compensating)


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
        if step.compensate is None:
            raise ValueError(f"step {step.name!r} of job {job.job_id} has no compensation")
        job_type, payload, sources = step.compensate.type, step.compensate.payload, [step]
        timeout_s = job.options.timeout_s
    else:
        job_type, payload = step.type, step.payload or {}
        sources = [job.named_step(dependency) for dependency in step.depends_on]
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
        step = job.named_step(name)
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
    failed = job.named_step(job.failed_step)
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


def _of_step(rule: Callable[[Any, Attempts], list[Emitted]]) -> Callable[[Any, Job, Step], list[Emitted]]:
    return lambda command, job, step: rule(command, StepAttempts(job, step))


STEP_RULES: dict[type[Command], Callable[[Any, Job, Step], list[Emitted]]] = {
    command: _of_step(rule) for command, rule in ATTEMPT_RULES.items()
}
"""The commands that name a step, and the rule for each."""
