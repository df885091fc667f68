"""Topic names: the one place they are spelled.

Every topic is keyed by job id, so all commands and events of one job land on
the same partition number of each topic (co-partitioned) and stay in order.
"""

from typing import Final

COMMANDS: Final = "jobs.commands"
"""Intents: SubmitJob from ingest, Start/Complete/Fail from runners."""

EVENTS: Final = "jobs.events"
"""The log of record: every state transition of every job, forever."""

DLQ: Final = "jobs.dlq"
"""Records that could not be processed, with the error and the original bytes."""

ALL: Final = (COMMANDS, EVENTS, DLQ)

CLOUDEVENTS_CONTENT_TYPE: Final = "application/cloudevents+json"
"""Kafka header ``content-type`` of every record on ``jobs.events`` (structured mode)."""

DLQ_HEADER_PREFIX: Final = "jobledger-"
"""Headers a dead letter carries: ``jobledger-error``, ``jobledger-stage``,
``jobledger-source-topic``, ``jobledger-source-partition``, ``jobledger-source-offset``."""
