"""The processor's faust app: the decider agent, its job-state table, the runner.

The decider is the only writer of ``jobs.events``. Its per-job state lives in
a faust table whose changelog *is* ``jobs.events``: the table never writes a
changelog record of its own, and on recovery it folds the job events with the
same ``apply_next`` as the projector. The state therefore can never be ahead
of the log: after a crash, a command whose events did not reach the broker is
decided again (its offset was not committed, because faust flushes the
producer before it commits), and one whose events did is recognised by its id.

Time enters through :class:`Deadlines`: an index of when each job this worker
decides next needs attention (``run_at``, backoff, timeout, cancel grace,
lease). A timer sends the due commands from :mod:`schemas.timers` to
``jobs.commands``, where the decider handles them like any other command.
Leases are the one thing the log does not hold: heartbeats emit no events. A
restored RUNNING job therefore gets a fresh lease from the moment it was
restored, so a restart never fails a live attempt early.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import faust
import structlog
from pydantic import ValidationError

from schemas import (
    ExpireAttempt,
    Heartbeat,
    Job,
    JobStatus,
    NotDue,
    Rejection,
    ReportProgress,
    SequenceGap,
    SlotState,
    apply_next,
    decide,
    decide_slots,
    due_commands,
    encode_command,
    encode_slot_message,
    fold,
    grant_command,
    next_deadline,
    parse_command,
    parse_event,
    parse_slot_message,
    slot_messages,
    topics,
)
from schemas.schedules import (
    Schedule,
    encode_schedule_command,
    evolve_schedule,
    parse_schedule_command,
    tick_command,
    ticked,
    ticks_due,
)
from services.common.kafka import MAX_BATCH_BYTES, dead_letter_headers
from services.processor.settings import ProcessorSettings
from services.processor.transport import ProcessorApp

log = structlog.get_logger(component="decider")

STAGE = "decider"
EVENT_HEADERS = [("content-type", topics.CLOUDEVENTS_CONTENT_TYPE.encode())]


class Deadlines:
    """When each job next needs the decider: a heap with lazy deletion.

    An entry is only a hint; when it pops, the job's deadlines are computed
    again from its current state, so stale entries cost a lookup and no more.
    """

    RECHECK_S = 5.0
    """After a timer command was sent, look again this much later (it may have been refused)."""

    def __init__(self, lease_s: float) -> None:
        self.lease = timedelta(seconds=lease_s)
        self._heap: list[tuple[datetime, str]] = []
        self._leases: dict[str, datetime] = {}

    def track(self, job: Job, now: datetime) -> None:
        if job.status is JobStatus.RUNNING:
            self._leases.setdefault(job.job_id, now + self.lease)
        else:
            self._leases.pop(job.job_id, None)
        when = next_deadline(job, self._leases.get(job.job_id))
        if when is not None:
            heapq.heappush(self._heap, (when, job.job_id))

    def renew(self, job: Job, now: datetime) -> None:
        self._leases[job.job_id] = now + self.lease
        self.track(job, now)

    def lease_of(self, job_id: str) -> datetime | None:
        return self._leases.get(job_id)

    def due(self, now: datetime) -> list[str]:
        job_ids = []
        while self._heap and self._heap[0][0] <= now:
            job_ids.append(heapq.heappop(self._heap)[1])
        return list(dict.fromkeys(job_ids))

    def recheck(self, job_id: str, now: datetime) -> None:
        heapq.heappush(self._heap, (now + timedelta(seconds=self.RECHECK_S), job_id))


@dataclass
class Wiring:
    """The topics and tables the processor's agents read and write."""

    states: "JobStateTable"
    slot_states: faust.Table
    commands: faust.TopicT
    events: faust.TopicT
    slots: faust.TopicT
    dlq: faust.TopicT
    schedules: faust.TopicT
    schedule_states: faust.Table


class JobStateTable(faust.Table):
    """Job states keyed by job id, restored by folding ``jobs.events``."""

    deadlines: Deadlines

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
            except Exception:  # not a job event (the projector dead-letters it), or one no rule folds
                continue
            if job is not None:
                store[event.job_id] = job
                store._key_partition[event.job_id] = record.message.partition
                self.deadlines.track(job, _now())


def create_app(settings: ProcessorSettings) -> faust.App:
    app = ProcessorApp(
        settings.app_id,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
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
        # A dead member's partitions move after the session timeout: keep it short.
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
    # Slot holders per concurrency key, schedules per id: faust changelogs of their own (compacted).
    slot_states = _state_table(app, "slot-state", topics.SLOT_STATE, settings.partitions)
    slots = app.topic(topics.SLOTS, partitions=settings.partitions, **key_value)
    schedule_states = _state_table(app, "schedule-state", topics.SCHEDULE_STATE, settings.partitions)
    schedules = app.topic(topics.SCHEDULES, partitions=settings.partitions, **key_value)
    deadlines = Deadlines(settings.lease_s)
    states.deadlines = deadlines
    app.job_states = states  # for tests and tools
    wiring = Wiring(
        states=states,
        slot_states=slot_states,
        commands=commands,
        events=events,
        slots=slots,
        dlq=dlq,
        schedules=schedules,
        schedule_states=schedule_states,
    )
    submitted_ticks: dict[str, datetime] = {}
    """Latest tick the timer submitted per schedule, until the table records it."""
    unfit_schedules: set[str] = set()
    """Schedules that cannot tick, already reported."""

    if settings.decider_enabled:

        @app.agent(commands, name="decider")
        async def decider(stream) -> None:
            async for record in stream.events():
                await _decide_one(record, wiring)

        @app.agent(slots, name="slots")
        async def slot_decider(stream) -> None:
            async for record in stream.events():
                await _decide_slot(record, wiring)

        @app.agent(schedules, name="schedules")
        async def schedule_keeper(stream) -> None:
            async for record in stream.events():
                await _keep_schedule(record, wiring)

        @app.timer(settings.schedule_interval_s)
        async def fire_schedules() -> None:
            now = _now()
            for schedule_id, stored in list(schedule_states.items()):
                try:
                    schedule = Schedule.model_validate(stored)
                except ValidationError as error:
                    _report_once(unfit_schedules, schedule_id, "stored schedule is not valid; skipped", error)
                    continue
                seen = submitted_ticks.get(schedule_id)
                if seen is not None and (schedule.last_tick is None or seen > schedule.last_tick):
                    schedule = schedule.model_copy(update={"last_tick": seen})
                try:
                    due = [(tick, tick_command(schedule, tick, now)) for tick in ticks_due(schedule, now)]
                except Exception as error:  # a schedule recorded before today's rules; the others go on
                    _report_once(unfit_schedules, schedule_id, "schedule cannot tick; skipped", error)
                    continue
                for tick, submit in due:
                    # The job first, acknowledged; then the record that moves the schedule on.
                    delivery = await commands.send(key=submit.job_id.encode(), value=encode_command(submit))
                    await delivery
                    await schedules.send(key=schedule_id.encode(), value=encode_schedule_command(ticked(schedule, tick, now)))
                    submitted_ticks[schedule_id] = tick

        @app.timer(settings.timer_interval_s)
        async def fire_deadlines() -> None:
            now = _now()
            for job_id in deadlines.due(now):
                job = states.get(job_id)
                if job is None:
                    continue
                try:
                    due = due_commands(job, now, deadlines.lease_of(job_id))
                except Exception:  # one job's deadline must not stop the others'
                    log.exception("deadline of a job could not be turned into a command", job_id=job_id)
                    continue
                for command in due:
                    await commands.send(key=job_id.encode(), value=encode_command(command))
                if due:
                    deadlines.recheck(job_id, now)
                else:
                    deadlines.track(job, now)

    return app


def _state_table(app: faust.App, name: str, changelog: str, partitions: int) -> faust.Table:
    """A table of JSON documents whose changelog is the compacted topic ``changelog``."""
    return app.tables.add(
        faust.Table(
            app,
            name=name,
            default=None,
            beacon=app.tables.beacon,
            partitions=partitions,
            changelog_topic=app.topic(changelog, partitions=partitions, key_serializer="json", value_serializer="json"),
        )
    )


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _report_once(reported: set[str], key: str, message: str, error: Exception) -> None:
    if key not in reported:
        reported.add(key)
        log.error(message, key=key, error=f"{type(error).__name__}: {error}")


async def _parsed(record, wiring: Wiring, parse, what: str, stage: str = STAGE):
    """The decoded record, or ``None`` after sending it to the dead-letter topic."""
    try:
        return parse(record.message.value)
    except Exception as error:  # ValidationError, and whatever else bytes can make a parser raise
        await _dead_letter(wiring.dlq, record.message, f"not a {what}: {error}", stage=stage)
        return None


async def _decide_one(record, wiring: Wiring) -> None:
    message = record.message
    states = wiring.states
    command = await _parsed(record, wiring, parse_command, "job command")
    if command is None:
        return
    job: Job | None = states.get(command.job_id)
    try:
        _require_lease_ended(command, states.deadlines)
        decided = decide(command, job)
        after = fold(decided, job)
        to_slots = slot_messages(job, decided, after)
        values = [event.to_bytes() for event in decided]
    except Rejection as rejection:
        # Routine refusals: a runner heartbeats its claims before the grant, and a
        # timer's expiry may land after the report it was waiting for (a backlog).
        level = log.debug if isinstance(command, (Heartbeat, ExpireAttempt)) else log.info
        level("command rejected", job_id=command.job_id, command=command.type, reason=rejection.code, detail=rejection.detail)
        return
    except Exception as error:  # a command no rule can decide (a bug, or a value no rule foresaw)
        log.exception("decider failed on a command", job_id=command.job_id, command=command.type)
        await _dead_letter(wiring.dlq, message, error)
        return
    if not decided:
        if isinstance(command, (Heartbeat, ReportProgress)):
            states.deadlines.renew(job, _now())
        return
    # Slot messages first, acknowledged: if we crash before the events are in the
    # log, the command is decided again and sends them again (they are idempotent);
    # the other order could lose a release and block the key for good.
    for slot_message in to_slots:
        delivery = await wiring.slots.send(key=slot_message.key.encode(), value=encode_slot_message(slot_message))
        await delivery
    key = command.job_id.encode()
    for value in values:
        await wiring.events.send(key=key, value=value, headers=EVENT_HEADERS)
    states[command.job_id] = after
    if isinstance(command, ReportProgress):
        states.deadlines.renew(after, _now())
    else:
        states.deadlines.track(after, _now())


def _require_lease_ended(command, deadlines: Deadlines) -> None:
    """A ``lost`` expiry is judged again when it is decided: heartbeats ahead of
    it in the partition (a backlog delays both) may have renewed the lease since
    the timer sent it. Leases are not in the log, so this check lives here and
    not in the pure decider."""
    if isinstance(command, ExpireAttempt) and command.reason == "lost":
        lease = deadlines.lease_of(command.job_id)
        if lease is not None and lease > command.issued_at:
            raise NotDue(command.job_id, f"the lease of job {command.job_id} was renewed after the expiry was sent")


async def _decide_slot(record, wiring: Wiring) -> None:
    """The slot decider: grant slots of one concurrency key in request order."""
    slot_message = await _parsed(record, wiring, parse_slot_message, "slot message", stage="slots")
    if slot_message is None:
        return
    try:
        stored = wiring.slot_states.get(slot_message.key)
        state = SlotState.model_validate(stored) if stored is not None else None
        after, granted = decide_slots(state, slot_message)
        grants = [grant_command(entry, _now()) for entry in granted]
        document = after.model_dump(mode="json")
    except Exception as error:  # one key's trouble must not stop the partition
        log.exception("slot decider failed on a message", key=slot_message.key)
        await _dead_letter(wiring.dlq, record.message, error, stage="slots")
        return
    for command in grants:
        await wiring.commands.send(key=command.job_id.encode(), value=encode_command(command))
    wiring.slot_states[slot_message.key] = document


async def _keep_schedule(record, wiring: Wiring) -> None:
    command = await _parsed(record, wiring, parse_schedule_command, "schedule command", stage="schedules")
    if command is None:
        return
    try:
        stored = wiring.schedule_states.get(command.schedule_id)
        before = Schedule.model_validate(stored) if stored is not None else None
        after = evolve_schedule(before, command)
    except Exception as error:
        log.exception("scheduler failed on a schedule command", schedule_id=command.schedule_id)
        await _dead_letter(wiring.dlq, record.message, error, stage="schedules")
        return
    if after is not None and after != before:
        wiring.schedule_states[command.schedule_id] = after.model_dump(mode="json")


async def _dead_letter(dlq, message, error, stage: str = STAGE) -> None:
    headers = list(message.headers or ()) + dead_letter_headers(
        stage=stage, error=error, topic=message.topic, partition=message.partition, offset=message.offset
    )
    await dlq.send(key=message.key, value=message.value, headers=headers)
