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
from datetime import datetime

from schemas.commands import Command, ExpireAttempt, ExpiryReason, WakeJob
from schemas.job import Job, JobStatus
from schemas.values import later

_TIMER_NAMESPACE = uuid.UUID("3b0f6a61-8f0a-4f7e-a7f5-5c6e9d2b1c40")
WAKE = "wake"
"""The deadline of a PENDING job: its ``run_at`` or its backoff has passed."""


def deadlines(job: Job, lease_expires_at: datetime | None = None) -> list[tuple[datetime, str]]:
    """``(when, reason)`` for every deadline of ``job``. ``lease_expires_at`` is
    when the runner's lease ends; the processor tracks heartbeats, not the log."""
    if job.status is JobStatus.PENDING and job.due_at is not None:
        return [(job.due_at, WAKE)]
    if job.status is not JobStatus.RUNNING:
        return []
    found = []
    if job.options.timeout_s is not None and job.started_at is not None:
        found.append((later(job.started_at, job.options.timeout_s), ExpiryReason.TIMEOUT))
    if job.cancel_deadline is not None:
        found.append((job.cancel_deadline, ExpiryReason.CANCELLED))
    if lease_expires_at is not None:
        found.append((lease_expires_at, ExpiryReason.LOST))
    return found


def next_deadline(job: Job, lease_expires_at: datetime | None = None) -> datetime | None:
    found = deadlines(job, lease_expires_at)
    return min(when for when, _ in found) if found else None


def due_commands(job: Job, now: datetime, lease_expires_at: datetime | None = None) -> list[Command]:
    """The commands whose deadlines passed by ``now``, earliest first."""
    commands: list[Command] = []
    for when, reason in sorted(deadlines(job, lease_expires_at)):
        if when > now:
            break
        common = dict(
            command_id=str(uuid.uuid5(_TIMER_NAMESPACE, f"{job.job_id}/{job.version}/{reason}")),
            job_id=job.job_id,
            tenant=job.tenant,
            issued_at=now,
        )
        if reason == WAKE:
            commands.append(WakeJob(**common))
        else:
            commands.append(ExpireAttempt(attempt=job.attempt, reason=reason, **common))
    return commands
