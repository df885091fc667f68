"""A job command decided, and nothing sent: what the decider carries out
over Kafka (:mod:`services.processor.decider`) and the in-memory system
over its lists (:mod:`services.processor.local`).

:func:`decide_command` joins the contract's pure rules (:func:`schemas.decide`
and :func:`schemas.fold`) with what the decider adds: the lease a ``lost``
expiry is judged against, the slot messages a decision causes, and the size
of a record. :func:`keep_time` then says what the decision does to the
decider's deadlines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from schemas import AnyEvent, Command, CompleteJob, FailJob, Job, decide, due_commands, fold, slot_messages, topics
from schemas.errors import JobledgerError
from schemas.leases import RENEWS_LEASE, Deadlines, require_lease_ended
from schemas.slots import SlotMessage

UNRECORDABLE_REPORT = "UnrecordableReport"
"""The error type of an attempt whose report the log could not hold (a result too large for a record)."""


class RecordTooLarge(JobledgerError):
    """A decision would write an event larger than the log takes: its command is dead-lettered."""


@dataclass(frozen=True)
class Decision:
    command: Command
    events: list[AnyEvent]
    values: list[bytes]
    """The events as the log's records."""
    after: Job | None
    """The state the events lead to (the job as it was, when there are none)."""
    to_slots: list[SlotMessage]
    """Slot requests and releases, to be acknowledged before the events are sent."""


def decide_command(command: Command, job: Job | None, deadlines: Deadlines) -> Decision:
    """Raises a :class:`schemas.Rejection` for a command no rule allows, and
    :class:`RecordTooLarge` for a decision the log could not hold whole."""
    require_lease_ended(command, deadlines)
    events = decide(command, job)
    after = fold(events, job)
    values = [event.to_bytes() for event in events]
    oversized = max((len(value) for value in values), default=0)
    if oversized > topics.MAX_RECORD_BYTES:
        # Checked before anything is sent: a decision is in the log whole or not at all.
        raise RecordTooLarge(f"the decision has an event of {oversized:,} bytes; a record may have {topics.MAX_RECORD_BYTES:,}")
    return Decision(command, events, values, after, slot_messages(job, events, after))


def keep_time(deadlines: Deadlines, decision: Decision, now: datetime) -> None:
    """A report renews the lease of the attempt it is about; any other decision
    sets the job's deadlines from the state it leads to."""
    command, job = decision.command, decision.after
    if job is None:
        return  # no job, no deadline
    if isinstance(command, RENEWS_LEASE):
        deadlines.renew(job, now, command.step)
    elif decision.events:
        deadlines.track(job, now)


def due_now(deadlines: Deadlines, job_of: Callable[[str], Job | None], now: datetime) -> list[Command]:
    """The commands of the deadlines passed by ``now``, job by job (the decider's
    timer): a job that has some is looked at again shortly, one that has none
    has its deadlines tracked anew."""
    commands: list[Command] = []
    for job_id in deadlines.due(now):
        job = job_of(job_id)
        if job is None:
            continue
        try:
            due = due_commands(job, now, deadlines.leases(job_id))
        except Exception:  # one job's deadline must not stop the others'
            structlog.get_logger(component="decider").exception(
                "deadline of a job could not be turned into a command", job_id=job_id
            )
            continue
        commands += due
        if due:
            deadlines.recheck(job_id, now)
        else:
            deadlines.track(job, now)
    return commands


def unrecordable(command: CompleteJob, reason: str) -> FailJob:
    """The runner's report of a result too large for the log, as the failure the log's refusal would have caused."""
    return FailJob(
        command_id=f"{command.command_id}/unrecordable",
        job_id=command.job_id,
        tenant=command.tenant,
        correlation_id=command.correlation_id,
        issued_at=command.issued_at,
        attempt=command.attempt,
        runner_id=command.runner_id,
        step=command.step,
        error=f"the handler's complete report cannot be recorded: {reason}",
        error_type=UNRECORDABLE_REPORT,
        retryable=False,
    )
