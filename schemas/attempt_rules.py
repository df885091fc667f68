"""The rules of an attempt, written once for a job's attempts and for a
pipeline step's: the claim, the lease, progress, completion, failure with a
retry after the backoff, a release, a timeout, a lost runner, the end of a
cancel's grace, and waking when due.

What differs between a job and a step is what they are — where their state
is, how many attempts they have, and which events record them — and
:class:`Attempts` asks that of the two kinds (:class:`schemas.decider.JobAttempts`,
:class:`schemas.pipeline_rules.StepAttempts`); the rules below see only it.
Pure, like the rest of the decider.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import Any

from schemas.artifacts import ArtifactRef
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
    WakeJob,
)
from schemas.errors import InvalidTransition, NotDue, StaleAttempt
from schemas.events import Event, EventData
from schemas.job import Job, Step, timeout_error
from schemas.values import later

Emitted = tuple[type[Event], EventData]


class Attempts(ABC):
    """A job's attempts, or one step's: their state, and the events that record them."""

    kind: str
    """``job`` or ``step``, as a rejection names it."""

    def __init__(self, job: Job, state: Job | Step) -> None:
        """``state``: where the attempts' state is (the job, or the step)."""
        self.job = job
        self.status = state.status
        self.attempt = state.attempt
        self.runner_id = state.runner_id
        self.started_at = state.started_at
        self.due_at = state.due_at
        self.progress = state.progress
        self.progress_message = state.progress_message

    # --- what tells them apart ---------------------------------------------------------

    @abstractmethod
    def cancelling(self) -> bool:
        """A cancel asked the current attempt to stop: how it ends, it ends cancelled."""

    @abstractmethod
    def retry_time(self, now: datetime) -> datetime | None:
        """When the next attempt after a failed one is due; ``None``: none is left."""

    @abstractmethod
    def timeout_s(self) -> float | None:
        """The current attempt's timeout."""

    @abstractmethod
    def cancel_deadline(self) -> datetime | None:
        """When a cancel's grace ends the current attempt (``None``: it does not)."""

    # --- the events that record them -------------------------------------------------------

    @abstractmethod
    def started(self, runner_id: str) -> Emitted: ...

    @abstractmethod
    def progressed(self, percent: float, message: str | None) -> Emitted: ...

    @abstractmethod
    def succeeded(self, result: Any, artifact: ArtifactRef | None) -> Emitted: ...

    @abstractmethod
    def retry_scheduled(self, failure: dict[str, Any], when: datetime) -> Emitted: ...

    @abstractmethod
    def failed(self, failure: dict[str, Any]) -> Emitted: ...

    @abstractmethod
    def cancelled(self) -> Emitted: ...

    @abstractmethod
    def released(self, reason: str | None) -> Emitted: ...

    @abstractmethod
    def queued_again(self) -> Emitted:
        """The next attempt at once (after a released one; for a job, also once a slot is granted)."""

    @abstractmethod
    def next_attempt(self) -> Emitted:
        """The next attempt, now that it is due."""

    # --- checks ------------------------------------------------------------------------------

    def require(self, command: Command, status: str) -> None:
        """In ``status``, and on the attempt the command names, if it names one."""
        if self.status != status:
            raise InvalidTransition(self.job.job_id, f"{command.type} needs a {status} {self.kind}; {self} is {self.status}")
        attempt = getattr(command, "attempt", None)
        if attempt is not None and attempt != self.attempt:
            raise StaleAttempt(self.job.job_id, f"{command.type} is for attempt {attempt}; {self} is on attempt {self.attempt}")

    def require_lease(self, command: AttemptCommand) -> None:
        """Only the runner whose claim won may report on the running attempt."""
        self.require(command, "RUNNING")
        if command.runner_id != self.runner_id:
            raise StaleAttempt(
                self.job.job_id, f"attempt {self.attempt} of {self} is held by runner {self.runner_id}, not {command.runner_id}"
            )


def start(command: StartJob, of: Attempts) -> list[Emitted]:
    of.require(command, "QUEUED")
    return [of.started(command.runner_id)]


def heartbeat(command: Heartbeat, of: Attempts) -> list[Emitted]:
    of.require_lease(command)
    return []


def progress(command: ReportProgress, of: Attempts) -> list[Emitted]:
    of.require_lease(command)
    if (command.percent, command.message) == (of.progress, of.progress_message):
        return []
    return [of.progressed(command.percent, command.message)]


def complete(command: CompleteJob, of: Attempts) -> list[Emitted]:
    of.require_lease(command)
    return [of.succeeded(command.result, command.artifact)]


def fail(command: FailJob, of: Attempts) -> list[Emitted]:
    of.require_lease(command)
    not_before = later(command.issued_at, command.retry_after_s) if command.retry_after_s else None
    return attempt_failed(
        of, command, command.error, command.error_type, command.retryable, command.traceback, not_before=not_before
    )


def release(command: ReleaseJob, of: Attempts) -> list[Emitted]:
    """The runner hands the attempt back (it is stopping): queued again at once, not counted."""
    of.require_lease(command)
    if of.cancelling():  # it was asked to stop anyway
        return [of.cancelled()]
    return [of.released(command.reason), of.queued_again()]


def expire(command: ExpireAttempt, of: Attempts) -> list[Emitted]:
    """A timer's verdict on the running attempt: timed out, past a cancel's grace, or its runner lost."""
    of.require(command, "RUNNING")
    now = command.issued_at
    if command.reason is ExpiryReason.TIMEOUT:
        timeout_s = of.timeout_s()
        if timeout_s is None or of.started_at is None or now < later(of.started_at, timeout_s):
            raise NotDue(of.job.job_id, f"attempt {of.attempt} of {of} has not timed out")
        return attempt_failed(of, command, timeout_error(timeout_s), ExpiryReason.TIMEOUT.value, True)
    if command.reason is ExpiryReason.CANCELLED:
        deadline = of.cancel_deadline()
        if deadline is None or now < deadline:
            raise NotDue(of.job.job_id, f"{of} is still within a cancel's grace period")
        return [of.cancelled()]
    error = f"runner {of.runner_id} stopped sending heartbeats; the attempt is lost"
    return attempt_failed(of, command, error, ExpiryReason.LOST.value, True)


def wake(command: WakeJob, of: Attempts) -> list[Emitted]:
    of.require(command, "PENDING")
    if of.due_at is None or command.issued_at < of.due_at:
        raise NotDue(of.job.job_id, f"{of} is not due")
    return [of.next_attempt()]


def attempt_failed(
    of: Attempts,
    command: Command,
    error: str,
    error_type: str | None,
    retryable: bool,
    traceback: str | None = None,
    not_before: datetime | None = None,
) -> list[Emitted]:
    """The attempt failed: cancelled if a cancel asked it to stop, else retried
    after the backoff (and no sooner than ``not_before``) while attempts are
    left, else failed for good."""
    if of.cancelling():
        return [of.cancelled()]
    failure = dict(attempt=of.attempt, error=error, error_type=error_type, traceback=traceback)
    when = of.retry_time(command.issued_at) if retryable else None
    if when is not None and not_before is not None:
        when = max(when, not_before)
    if when is not None:
        return [of.retry_scheduled(failure, when)]
    return [of.failed(failure)]


RULES: dict[type[Command], Callable[[Any, Attempts], list[Emitted]]] = {
    StartJob: start,
    Heartbeat: heartbeat,
    ReportProgress: progress,
    CompleteJob: complete,
    FailJob: fail,
    ReleaseJob: release,
    ExpireAttempt: expire,
    WakeJob: wake,
}
"""The commands about an attempt, and the rule for each."""
