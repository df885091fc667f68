"""Time as commands: when a job next needs the decider, and what to tell it then.

The decider has no clock. The processor keeps an index of these deadlines and,
when one passes, sends the command this module builds, carrying the time it
was issued. The decider checks that the deadline really passed (``NotDue``
otherwise), so a timer that fires early or twice changes nothing.

Command ids derive from the job's version and the reason: a timer that fires
again before the first command was applied sends the very same command, which
the decider drops as already applied.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

from schemas.commands import AdvancePipeline, Command, ExpireAttempt, ExpiryReason, WakeJob
from schemas.job import Job, JobStatus, StepPhase, StepStatus
from schemas.pipeline_rules import advance, step_timeout
from schemas.values import later

_TIMER_NAMESPACE = uuid.UUID("3b0f6a61-8f0a-4f7e-a7f5-5c6e9d2b1c40")


class Due(StrEnum):
    """What a deadline brings about when it is not an attempt's expiry (those are :class:`ExpiryReason`)."""

    WAKE = "wake"
    """The deadline of a PENDING job: its ``run_at`` or its backoff has passed."""
    ADVANCE = "advance"
    """A running pipeline has a next step no decision took (see ``AdvancePipeline``): due at once."""


Deadline = tuple[datetime, Due | ExpiryReason, str | None]
"""When, what it brings about, and the step it is about (``None``: the job)."""

Leases = Mapping[str | None, datetime]
"""When each running attempt's lease ends, by step (``None``: a plain job's attempt)."""


def deadlines(job: Job, leases: Leases | datetime | None = None) -> list[Deadline]:
    """``(when, reason, step)`` for every deadline of ``job``. Leases (when each
    runner's lease ends) come from the processor, which tracks heartbeats, not the log."""
    if isinstance(leases, datetime):
        leases = {None: leases}
    leases = leases or {}
    if job.status is JobStatus.PENDING and job.due_at is not None:
        return [(job.due_at, Due.WAKE, None)]
    if job.status is not JobStatus.RUNNING:
        return []
    if job.is_pipeline:
        return _step_deadlines(job, leases)
    return _attempt_deadlines(job.options.timeout_s, job.started_at, job.cancel_deadline, leases.get(None), None)


def _step_deadlines(job: Job, leases: Leases) -> list[Deadline]:
    """A running pipeline's: each step's backoff, timeout, cancel grace and lease."""
    found: list[Deadline] = []
    if advance(job):  # every whole decision leaves nothing to advance: this one was cut short
        found.append((job.updated_at, Due.ADVANCE, None))
    for step in job.steps:
        if step.status is StepStatus.PENDING and step.due_at is not None:
            found.append((step.due_at, Due.WAKE, step.name))
        elif step.status is StepStatus.RUNNING:
            cancel = job.cancel_deadline if step.phase == StepPhase.RUN else None
            found += _attempt_deadlines(step_timeout(job, step), step.started_at, cancel, leases.get(step.name), step.name)
    return found


def _attempt_deadlines(timeout_s, started_at, cancel_deadline, lease, step) -> list[Deadline]:
    found: list[Deadline] = []
    if timeout_s is not None and started_at is not None:
        found.append((later(started_at, timeout_s), ExpiryReason.TIMEOUT, step))
    if cancel_deadline is not None:
        found.append((cancel_deadline, ExpiryReason.CANCELLED, step))
    if lease is not None:
        found.append((lease, ExpiryReason.LOST, step))
    return found


def running_units(job: Job) -> list[str | None]:
    """What holds a lease: the running steps of a pipeline, or ``[None]`` for a running plain job."""
    if job.status is not JobStatus.RUNNING:
        return []
    if job.is_pipeline:
        return [step.name for step in job.steps if step.status is StepStatus.RUNNING]
    return [None]


def next_deadline(job: Job, leases: Leases | datetime | None = None) -> datetime | None:
    found = deadlines(job, leases)
    return min(when for when, _, _ in found) if found else None


def due_commands(job: Job, now: datetime, lease_expires_at: Leases | datetime | None = None) -> list[Command]:
    """The commands whose deadlines passed by ``now``, earliest first."""
    commands: list[Command] = []
    for when, reason, step in sorted(deadlines(job, lease_expires_at), key=lambda found: found[0]):
        if when > now:
            break
        unit = reason if step is None else f"{step}/{reason}"
        common = dict(
            command_id=str(uuid.uuid5(_TIMER_NAMESPACE, f"{job.job_id}/{job.version}/{unit}")),
            job_id=job.job_id,
            tenant=job.tenant,
            issued_at=now,
        )
        if reason is Due.WAKE:
            commands.append(WakeJob(step=step, **common))
        elif reason is Due.ADVANCE:
            commands.append(AdvancePipeline(**common))
        else:
            attempt = job.attempt if step is None else job.named_step(step).attempt
            commands.append(ExpireAttempt(attempt=attempt, reason=reason, step=step, **common))
    return commands
