"""The projector: jobs.events → JobProjection, jobs.schedules →
ScheduleProjection, as one member of its consumer group on the consumer
runtime (:mod:`services.adapters.consumer_runtime`).

The projector's position is saved in MongoDB beside the read models, only
ever for batches already durable there (and whose dead letters the broker
acknowledged); on assignment the projector resumes from it. Positions are
saved, and consumer offsets committed, every ``commit_interval_s``, when
partitions are revoked and on the way out, not after each batch: under load a
batch is a few events, and its position save and commit cost the database and
the broker more than the batch itself. A crash therefore reads again at most
the last interval's batches, which the projection absorbs as duplicates. A
record that is not a job event, or that the database refuses for good, goes to
``jobs.dlq``; the loop goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, ConnectionFailure, ExecutionTimeout, WriteConcernError, WTimeoutError

from schemas import AnyEvent, parse_event, topics
from schemas.schedules import parse_schedule_command
from schemas.topics import DeadLetterStage
from services.adapters import positions
from services.adapters.consumer_runtime import Batches, Committable, ConsumerRuntime
from services.adapters.job_logs import ensure_log_indexes
from services.adapters.log import DeadLetters, make_consumer, make_producer
from services.adapters.positions import LogLost, LostLog
from services.adapters.projections import BatchOutcome, JobProjection
from services.adapters.readmodel import connect, ensure_indexes, ensure_layout
from services.adapters.schedule_projection import ScheduleProjection
from services.common import tracing
from services.common.lifecycle import Service
from services.common.metrics import APPLY_DURATION, PROJECTED
from services.projector.logs import LogProjector
from services.projector.retention import RetentionSweep
from services.projector.settings import ProjectorSettings

log = structlog.get_logger(component="projector")

BATCH_BYTES = 256 * 1024
"""A fetch is answered once this much is there, or after ``batch_wait_ms``."""
FETCH_WAIT_MS = 200
"""How long the loop waits for a fetch before it looks at the commit interval again."""
TOPICS = [topics.EVENTS, topics.SCHEDULES]
LOSS_CHECKS, LOSS_RECHECK_S = 3, 1.0
"""A partition's log is called lost (behind the stored position) only when seen so this many times, this far apart."""
RETRY_FIRST_S, RETRY_MAX_S = 0.1, 5.0
"""An unreachable read model is retried after this long, doubling up to the maximum."""


class Projector(Service):
    """The projector's one part: the :class:`~services.adapters.consumer_runtime.Handler` of its group member."""

    def __init__(
        self,
        settings: ProjectorSettings,
        mongo: AsyncMongoClient,
        producer: AIOKafkaProducer,
        consumer: AIOKafkaConsumer,
    ) -> None:
        """``consumer``: a member of the group ``settings.group_id``, with :func:`consumer_options`."""
        super().__init__()
        self.settings = settings
        self.mongo = mongo
        self.db: AsyncDatabase = mongo[settings.mongo_db]
        self.projection = JobProjection(self.db, settings.cache_jobs, hold_new_s=settings.hold_new_ms / 1000)
        self.schedules = ScheduleProjection(self.db)
        self.producer = producer
        self.dead_letters = DeadLetters(producer, DeadLetterStage.PROJECTOR)
        self.runtime = ConsumerRuntime(
            consumer,
            TOPICS,
            self,
            name="projector",
            commit_interval_s=settings.commit_interval_s,
            fetch_wait_ms=FETCH_WAIT_MS,
            max_records=settings.batch_max_records,
        )
        self._ends: Committable = {}
        """Per partition, the offset after the last batch applied."""
        self._held_at = HeldAt()
        self._saved: Committable = {}
        """The positions saved last."""
        self.lost: list[LostLog] = []
        """Set on an assignment that found the log shorter than the read models."""

    # --- lifecycle ---------------------------------------------------------------------

    def tasks(self):
        return [self._run]

    async def on_start(self) -> None:
        await self.producer.start()
        await self.runtime.start()
        log.info("projector started", topics=TOPICS, group=self.settings.group_id)

    async def _run(self) -> None:
        await self.runtime.run(lambda: not self.should_stop)

    async def on_stop(self) -> None:
        await self.runtime.stop()
        await self.producer.stop()
        await self.mongo.close()
        log.info("projector stopped")

    # --- the handler ------------------------------------------------------------------

    async def handle(self, batches: Batches) -> None:
        if self.lost:
            log.critical(
                "jobs log lost: the broker holds less than the read models; stopping. Restore the log, or rebuild "
                "(drop the read models and projector_positions) or set JOBLEDGER_ALLOW_LOG_LOSS=true to go on",
                detail=str(LogLost(self.lost)),
            )
            raise LogLost(self.lost)
        records = [record for batch in batches.values() for record in batch]
        if records or self.projection.held:  # (held jobs are written once held long enough, with or without records)
            started, started_ns = time.perf_counter(), time.time_ns()
            events = [r for r in records if r.topic == topics.EVENTS]
            decoded = await _project(events, self.projection, self.dead_letters)
            await _project_schedules([r for r in records if r.topic == topics.SCHEDULES], self.schedules, self.dead_letters)
            self._held_at.track(decoded, self.projection.held)
            self._ends.update({tp: batch[-1].offset + 1 for tp, batch in batches.items() if batch})
            if records:  # (a round that only wrote held jobs is not a batch)
                APPLY_DURATION.observe(time.perf_counter() - started)
            PROJECTED.inc(len(events))
            if tracing.ENABLED:
                for record in events:
                    tracing.ended_span("project", tracing.context_of(record.headers), started_ns, batch=len(events))

    async def done(self) -> Committable:
        """Save the durable positions with the read models; the runtime commits exactly
        them (never the consumer's position, which may be ahead: a rebalance can ask
        while a batch is being written). On a restart the saved positions decide."""
        durable = {tp: offset for tp, offset in self._held_at.durable(self._ends).items() if offset > self._saved.get(tp, -1)}
        await positions.save(self.db, durable)
        self._saved.update(durable)
        return durable

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        """Forget the partitions: their held jobs are read again by whoever gets them."""
        self.projection.forget()
        self.projection.drop(self._held_at.revoked(partitions))
        for tp in partitions:
            self._ends.pop(tp, None)
            self._saved.pop(tp, None)

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        """Resume from the positions stored with the read models, once the log is known to still reach them."""
        self.projection.forget()
        if not partitions:
            return
        consumer = self.runtime.consumer
        stored = await positions.load(self.db, partitions)
        lost = await self._confirmed_losses(stored, partitions)
        if lost and not self.settings.allow_log_loss:
            self.lost = lost
            return
        if lost:
            log.error("jobs log lost; going on from what the broker holds (JOBLEDGER_ALLOW_LOG_LOSS)", lost=str(LogLost(lost)))
            await positions.reset(self.db, [item.tp for item in lost])
            for item in lost:
                stored.pop(item.tp, None)
        for tp, position in stored.items():
            # What the read models hold decides, whichever way the broker's commit is
            # off: ahead of a save whose commit failed, or behind a rewind (a rebuild).
            committed = await consumer.committed(tp)
            if committed != position:
                consumer.seek(tp, position)

    async def _confirmed_losses(self, stored, assigned) -> list[LostLog]:
        """A loss seen :data:`LOSS_CHECKS` times a second apart (an end offset read during a write can lag)."""
        lost: list[LostLog] = []
        for attempt in range(LOSS_CHECKS):
            lost = positions.lost_partitions(stored, await self.runtime.consumer.end_offsets(list(assigned)))
            if not lost:
                return []
            if attempt < LOSS_CHECKS - 1:
                await asyncio.sleep(LOSS_RECHECK_S)
        return lost


class HeldAt:
    """Where each job the projection holds (:attr:`JobProjection.held`) has its
    first event: nothing from there on is durable until the job is written."""

    def __init__(self) -> None:
        self._at: dict[str, tuple[TopicPartition, int]] = {}

    def track(self, decoded: Iterable[tuple[Any, AnyEvent]], held: Mapping[str, object]) -> None:
        """After a batch of ``(record, event)``: note where each newly held job's
        first event is (in this batch: only a job new in a batch is held); forget
        the jobs written since. By the event's job, not the record's key: a
        pipeline's steps travel under the pipeline's key."""
        for job_id in [job_id for job_id in self._at if job_id not in held]:
            del self._at[job_id]
        if len(self._at) == len(held):
            return
        for record, event in decoded:
            if event.job_id in held and event.job_id not in self._at:
                self._at[event.job_id] = (TopicPartition(record.topic, record.partition), record.offset)

    def durable(self, ends: Committable) -> Committable:
        """Per partition, the offset before which every event is in the read models:
        the end of what was applied, or the first event of a job still held if earlier."""
        floors: Committable = {}
        for tp, offset in self._at.values():
            floors[tp] = min(offset, floors.get(tp, offset))
        return {tp: min(end, floors.get(tp, end)) for tp, end in ends.items()}

    def revoked(self, partitions: set[TopicPartition]) -> list[str]:
        """Forget the jobs held on ``partitions``; their ids."""
        gone = [job_id for job_id, (tp, _) in self._at.items() if tp in partitions]
        for job_id in gone:
            del self._at[job_id]
        return gone


async def bootstrap(settings: ProjectorSettings) -> list[Service]:
    """The projector's adapters, and the read models' layout and indexes made current."""
    mongo = connect(settings)
    db = mongo[settings.mongo_db]
    if await ensure_layout(db):
        log.warning("the read models were in an older layout: kept aside as *_layout<n>, rebuilding them from the log")
    await ensure_indexes(db)
    await ensure_log_indexes(db)
    consumer = make_consumer(settings, settings.group_id, **consumer_options(settings))
    logs = LogProjector(settings, db, make_producer(settings), make_consumer(settings, settings.logs_group_id))
    parts: list[Service] = [Projector(settings, mongo, make_producer(settings), consumer), logs, RetentionSweep(settings, db)]
    return parts  # stopped in reverse: the Projector last, as it closes the database


def consumer_options(settings: ProjectorSettings) -> dict:
    """The projector's consumer, beyond the settings' (:func:`services.adapters.log.make_consumer`):
    fetches held until a batch gathers."""
    return dict(
        max_poll_records=settings.batch_max_records, fetch_min_bytes=BATCH_BYTES, fetch_max_wait_ms=settings.batch_wait_ms
    )


async def _project(records, projection: JobProjection, dead_letters: DeadLetters) -> list[tuple[Any, AnyEvent]]:
    """Fold the records' events into the read models; the ``(record, event)`` pairs read."""
    dead, decoded = _decoded(records, parse_event, "a job event")
    source = {id(event): record for record, event in decoded}
    outcome = await _until_durable(projection, [event for _, event in decoded], key=lambda event: event.job_id)
    for gap in outcome.gaps:
        log.error(
            "sequence gap in jobs.events; event not applied",
            job_id=gap.job_id,
            expected=gap.expected,
            got=gap.got,
        )
    for event, reason in outcome.rejected:
        dead.append((source[id(event)], f"read model refused the event: {reason}"))
    await dead_letters.send_all(dead)
    return decoded


async def _project_schedules(records, schedules: ScheduleProjection, dead_letters: DeadLetters) -> None:
    dead, decoded = _decoded(records, parse_schedule_command, "a schedule command")
    source = {id(command): record for record, command in decoded}
    outcome = await _until_durable(schedules, [command for _, command in decoded], key=lambda command: command.schedule_id)
    for command, reason in outcome.rejected:
        dead.append((source[id(command)], f"read model refused the command: {reason}"))
    await dead_letters.send_all(dead)


def _decoded(records, parse, what: str) -> tuple[list, list]:
    """``(dead letters, (record, parsed) pairs)``: a record no parser reads is a dead letter."""
    dead, decoded = [], []
    for record in records:
        try:
            decoded.append((record, parse(record.value)))
        except Exception as error:  # ValidationError, and whatever else bytes can make a parser raise
            dead.append((record, f"not {what}: {error}"))
    return dead, decoded


def transient(error: BaseException) -> bool:
    """An error that goes away by itself: the database unreachable, slow or failing over.
    Anything else (a document the database or the driver refuses) stays, however often it is retried."""
    if isinstance(error, BulkWriteError):
        return bool(error.details.get("writeConcernErrors"))
    return isinstance(error, (ConnectionFailure, ExecutionTimeout, WTimeoutError, WriteConcernError, OSError, TimeoutError))


async def _until_durable(projection: JobProjection | ScheduleProjection, items: list, key) -> BatchOutcome:
    """Apply a batch: retry it while the database is unreachable (never skip, never
    commit early); when it fails for good, apply it again job by job (``key``), so
    only the jobs that cannot be written are refused and the partition goes on."""
    try:
        return await _retrying(projection, items)
    except Exception as error:
        log.error("read model refused a batch; applying it job by job", error=repr(error), items=len(items))
    outcome = BatchOutcome()
    groups: dict = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    for group_key, group in groups.items():
        try:
            outcome.add(await _retrying(projection, group))
        except Exception as error:
            log.error("read model refused a job's events; dead-lettering them", key=group_key, error=repr(error))
            projection.forget()
            outcome.rejected.extend((item, f"{type(error).__name__}: {error}") for item in group)
    return outcome


async def _retrying(projection: JobProjection | ScheduleProjection, items: list) -> BatchOutcome:
    delay = RETRY_FIRST_S
    while True:
        try:
            return await projection.apply(items)
        except Exception as error:
            projection.forget()
            if not transient(error):
                raise
            log.warning("read model unreachable; retrying", error=repr(error), retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
