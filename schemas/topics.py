"""Topic names: the one place they are spelled.

The job topics are keyed by job id, so all commands and events of one job land
on the same partition number of each topic (co-partitioned) and stay in order.
The slot topics are keyed by concurrency key: one key's requests and releases
meet on one partition, whatever partitions its jobs live on.
"""

from enum import StrEnum
from typing import Final

MAX_RECORD_BYTES: Final = 1_040_000
"""The largest record value on any topic: under Kafka's 1 MiB defaults
(``message.max.bytes``, the producer's ``max_request_size``), with room for the
key, headers and the batch's own bytes. Ingest refuses a submit whose events
would be larger; the decider dead-letters a command whose decision would be."""

COMMANDS: Final = "jobs.commands"
"""Intents: SubmitJob from ingest, Start/Complete/Fail from runners."""

EVENTS: Final = "jobs.events"
"""The log of record: every state transition of every job, forever."""

DLQ: Final = "jobs.dlq"
"""Records that could not be processed, with the error and the original bytes."""

SLOTS: Final = "jobs.slots"
"""Slot requests and releases of jobs that share a concurrency key, keyed by that key."""

SLOT_STATE: Final = "jobs.slots.state"
"""Changelog of the slot holders and waiting lists per concurrency key (compacted)."""

SCHEDULES: Final = "jobs.schedules"
"""Schedules, keyed by schedule id: created, deleted, and each tick submitted."""

SCHEDULE_STATE: Final = "jobs.schedules.state"
"""Changelog of the processor's schedule table (compacted)."""

SERVICES: Final = "jobs.services"
"""The service registry, keyed by tenant and service name: each registration and deletion, forever."""

WORKERS: Final = "jobs.workers"
"""Runners' beats, keyed by runner id: compacted, and a runner forgotten a day after its last record."""

LOGS: Final = "jobs.logs"
"""Lines handlers write (``ctx.log``), keyed by job id; the broker's retention (the read models keep each job's first lines)."""

ALL: Final = (COMMANDS, EVENTS, DLQ, SLOTS, SLOT_STATE, SCHEDULES, SCHEDULE_STATE, SERVICES, WORKERS, LOGS)
COMPACTED: Final = (SLOT_STATE, SCHEDULE_STATE)
EPHEMERAL: Final = (WORKERS,)
"""Compacted, and a key forgotten a day after its last record: what is only current."""
FOREVER: Final = (EVENTS, SCHEDULES, SERVICES)
"""Topics kept with infinite retention: the logs of record."""

CLOUDEVENTS_CONTENT_TYPE: Final = "application/cloudevents+json"
"""Kafka header ``content-type`` of every record on ``jobs.events`` (structured mode)."""

DLQ_HEADER_PREFIX: Final = "jobledger-"
"""Headers a dead letter carries: ``jobledger-error``, ``jobledger-stage``,
``jobledger-source-topic``, ``jobledger-source-partition``, ``jobledger-source-offset``."""


class DeadLetterStage(StrEnum):
    """Which consumer dead-lettered a record (the ``jobledger-stage`` header)."""

    DECIDER = "decider"
    """a job command the decider could not read or decide"""
    SLOTS = "slots"
    """a slot message the slot decider could not read"""
    SCHEDULES = "schedules"
    """a schedule record the scheduler could not read"""
    PROJECTOR = "projector"
    """an event the projector could not fold into the read models"""
    LOGS = "logs"
    """a log line the projector could not read"""
