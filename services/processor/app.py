"""The processor's faust app: the decider agent, its job-state table, the runner.

The decider is the only writer of ``jobs.events``. Its per-job state lives in
a faust table whose changelog *is* ``jobs.events``: the table never writes a
changelog record of its own, and on recovery it folds the job events with the
same ``apply_next`` as the projector. The state therefore can never be ahead
of the log: after a crash, a command whose events did not reach the broker is
decided again (its offset was not committed, because faust flushes the
producer before it commits), and one whose events did is recognised by its id.
"""

from __future__ import annotations

from typing import Any

import faust
import structlog
from pydantic import ValidationError

from schemas import Job, Rejection, SequenceGap, apply_next, decide, fold, parse_command, parse_event, topics
from services.common.kafka import MAX_BATCH_BYTES, dead_letter_headers
from services.processor.settings import ProcessorSettings

log = structlog.get_logger(component="decider")

STAGE = "decider"
EVENT_HEADERS = [("content-type", topics.CLOUDEVENTS_CONTENT_TYPE.encode())]


class JobStateTable(faust.Table):
    """Job states keyed by job id, restored by folding ``jobs.events``."""

    def on_key_set(self, key: Any, value: Any) -> None:
        # No changelog record: the events the decider sent are this table's changelog.
        event = faust.current_event()
        if event is not None:
            self.data._key_partition[key] = event.message.partition
        self._sensor_on_set(self, key, value)

    def on_key_del(self, key: Any) -> None:
        raise NotImplementedError("job states are never deleted: the log is forever")

    def apply_changelog_batch(self, batch) -> None:
        store = self.data
        for record in batch:
            try:
                event = parse_event(record.message.value)
                job = apply_next(store.get(event.job_id), event)
            except SequenceGap as gap:
                log.error("sequence gap while restoring job state", job_id=gap.job_id, expected=gap.expected, got=gap.got)
                continue
            except (ValidationError, ValueError, TypeError):
                continue  # not a job event; the projector dead-letters it
            if job is not None:
                store[event.job_id] = job
                store._key_partition[event.job_id] = record.message.partition


def create_app(settings: ProcessorSettings) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap.split(",")],
        store="memory://",
        datadir=str(settings.state_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        topic_allow_declare=False,
        producer_acks=-1,
        producer_linger_ms=settings.linger_ms,
        producer_max_batch_size=MAX_BATCH_BYTES,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        table_standby_replicas=0,
        broker_commit_every=1000,
        # Tansu holds a group join for about half the rebalance timeout: keep it short.
        broker_session_timeout=settings.group_session_timeout_s,
        broker_rebalance_timeout=settings.group_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.group_session_timeout_s / 3),
        broker_commit_interval=0.5,
        loghandlers=[],
    )
    key_value = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    commands = app.topic(topics.COMMANDS, partitions=settings.partitions, **key_value)
    events = app.topic(topics.EVENTS, partitions=settings.partitions, **key_value)
    dlq = app.topic(topics.DLQ, partitions=settings.partitions, **key_value)
    states = app.tables.add(
        JobStateTable(
            app,
            name="job-state",
            default=None,
            beacon=app.tables.beacon,
            partitions=settings.partitions,
            changelog_topic=events,
        )
    )
    app.job_states = states  # for tests and tools

    if settings.decider_enabled:

        @app.agent(commands, name="decider")
        async def decider(stream) -> None:
            async for record in stream.events():
                await _decide_one(record, states, events, dlq)

    return app


async def _decide_one(record, states, events, dlq) -> None:
    message = record.message
    try:
        command = parse_command(message.value)
    except (ValidationError, ValueError, TypeError) as error:
        await _dead_letter(dlq, message, f"not a job command: {error}")
        return
    job: Job | None = states.get(command.job_id)
    try:
        decided = decide(command, job)
    except Rejection as rejection:
        log.info("command rejected", job_id=command.job_id, command=command.type, reason=rejection.code, detail=rejection.detail)
        return
    except Exception as error:  # a bug must not stop the partition
        log.exception("decider failed on a command", job_id=command.job_id, command=command.type)
        await _dead_letter(dlq, message, error)
        return
    if not decided:
        return
    key = command.job_id.encode()
    for event in decided:
        await events.send(key=key, value=event.to_bytes(), headers=EVENT_HEADERS)
    states[command.job_id] = fold(decided, job)


async def _dead_letter(dlq, message, error) -> None:
    headers = list(message.headers or ()) + dead_letter_headers(
        stage=STAGE, error=error, topic=message.topic, partition=message.partition, offset=message.offset
    )
    await dlq.send(key=message.key, value=message.value, headers=headers)
