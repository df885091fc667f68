"""The projector's consumer loop: jobs.events → JobProjection, jobs.schedules →
ScheduleProjection, then commit.

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
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError, ConnectionFailure, ExecutionTimeout, WriteConcernError, WTimeoutError

from schemas import parse_event, topics
from schemas.schedules import parse_schedule_command
from schemas.topics import DeadLetterStage
from services.adapters import positions
from services.adapters.log import DeadLetters, Rebalance, commit_assigned, make_consumer, make_producer
from services.adapters.positions import LogLost
from services.adapters.projections import BatchOutcome, JobProjection
from services.adapters.readmodel import connect, ensure_indexes, ensure_layout
from services.adapters.schedule_projection import ScheduleProjection
from services.projector.settings import ProjectorSettings

log = structlog.get_logger(component="projector")

BATCH_BYTES = 256 * 1024
"""A fetch is answered once this much is there, or after ``batch_wait_ms``."""


class _Progress:
    """Positions of the batches durable in the read models, saved (then
    committed to the broker) on an interval rather than per batch."""

    def __init__(self, db, consumer: AIOKafkaConsumer, interval_s: float) -> None:
        self._db = db
        self._consumer = consumer
        self._interval_s = interval_s
        self._pending: dict = {}
        self._last = time.monotonic()

    def done(self, batches) -> None:
        self._pending.update({tp: batch[-1].offset + 1 for tp, batch in batches.items() if batch})

    async def maybe_save(self) -> None:
        if time.monotonic() - self._last >= self._interval_s:
            await self.save()

    async def save(self) -> None:
        """Save the durable positions, then commit exactly them (never the
        consumer's position, which may be ahead: a rebalance can call this
        while a batch is being written)."""
        self._last = time.monotonic()
        if not self._pending:
            return
        durable, self._pending = self._pending, {}
        await positions.save(self._db, durable)
        await commit_assigned(self._consumer, durable, "projector")  # (on restart, the saved positions decide)

    async def save_quietly(self) -> None:
        """On revocation and on the way out; what fails here is read again (as duplicates)."""
        try:
            await self.save()
        except Exception as error:
            log.warning("position save failed; the last interval is read again", error=repr(error))


class _Partitions:
    """Forget cached states when partitions move; on assignment, resume from the
    positions stored with the read models and check the log still reaches them."""

    def __init__(
        self, projection: JobProjection, db, settings: ProjectorSettings, consumer: AIOKafkaConsumer, progress: _Progress
    ) -> None:
        self._projection = projection
        self._db = db
        self._settings = settings
        self.consumer = consumer
        self.progress = progress
        self.lost: list = []

    async def revoked(self, revoked) -> None:
        self._projection.forget()
        if revoked:
            await self.progress.save_quietly()

    async def assigned(self, assigned) -> None:
        self._projection.forget()
        if not assigned:
            return
        stored = await positions.load(self._db, assigned)
        lost = await self._confirmed_losses(stored, assigned)
        if lost and not self._settings.allow_log_loss:
            self.lost = lost
            return
        if lost:
            log.error("jobs log lost; going on from what the broker holds (JOBLEDGER_ALLOW_LOG_LOSS)", lost=str(LogLost(lost)))
            await positions.reset(self._db, [item.tp for item in lost])
            for item in lost:
                stored.pop(item.tp, None)
        for tp, position in stored.items():
            # What the read models hold decides, whichever way the broker's commit is
            # off: ahead of a save whose commit failed, or behind a rewind (a rebuild).
            committed = await self.consumer.committed(tp)
            if committed != position:
                self.consumer.seek(tp, position)

    async def _confirmed_losses(self, stored, assigned) -> list:
        """A loss seen three times a second apart (an end offset read during a write can lag)."""
        lost: list = []
        for attempt in range(3):
            lost = positions.lost_partitions(stored, await self.consumer.end_offsets(list(assigned)))
            if not lost:
                return []
            if attempt < 2:
                await asyncio.sleep(1.0)
        return lost


@dataclass
class Projector:
    """The projector's parts, wired by :func:`bootstrap`."""

    settings: ProjectorSettings
    mongo: AsyncMongoClient
    projection: JobProjection
    schedules: ScheduleProjection
    producer: AIOKafkaProducer
    consumer: AIOKafkaConsumer
    dead_letters: DeadLetters
    progress: _Progress
    partitions: _Partitions


async def bootstrap(settings: ProjectorSettings) -> Projector:
    mongo = connect(settings)
    db = mongo[settings.mongo_db]
    if await ensure_layout(db):
        log.warning("the read models were in an older layout: kept aside as *_layout<n>, rebuilding them from the log")
    await ensure_indexes(db)
    projection = JobProjection(db, settings.cache_jobs)
    producer = make_producer(settings)
    consumer = make_consumer(
        settings,
        settings.group_id,
        max_poll_records=settings.batch_max_records,
        fetch_min_bytes=BATCH_BYTES,
        fetch_max_wait_ms=settings.batch_wait_ms,
    )
    progress = _Progress(db, consumer, settings.commit_interval_s)
    return Projector(
        settings=settings,
        mongo=mongo,
        projection=projection,
        schedules=ScheduleProjection(db),
        producer=producer,
        consumer=consumer,
        dead_letters=DeadLetters(producer, DeadLetterStage.PROJECTOR),
        progress=progress,
        partitions=_Partitions(projection, db, settings, consumer, progress),
    )


async def run_projector(settings: ProjectorSettings, stop: asyncio.Event) -> None:
    """Fold ``jobs.events`` and ``jobs.schedules`` into the read models until ``stop`` is set."""
    p = await bootstrap(settings)
    p.consumer.subscribe([topics.EVENTS, topics.SCHEDULES], listener=Rebalance(p.partitions.assigned, p.partitions.revoked))
    await p.producer.start()
    await p.consumer.start()
    log.info("projector started", topics=[topics.EVENTS, topics.SCHEDULES], group=settings.group_id)
    try:
        while not stop.is_set():
            batches = await p.consumer.getmany(timeout_ms=200, max_records=settings.batch_max_records)
            if p.partitions.lost:
                raise LogLost(p.partitions.lost)
            records = [record for batch in batches.values() for record in batch]
            if records:
                await _project([r for r in records if r.topic == topics.EVENTS], p.projection, p.dead_letters)
                await _project_schedules([r for r in records if r.topic == topics.SCHEDULES], p.schedules, p.dead_letters)
                p.progress.done(batches)
            await p.progress.maybe_save()
    finally:
        await p.progress.save_quietly()
        await p.consumer.stop()
        await p.producer.stop()
        await p.mongo.close()
        log.info("projector stopped")


async def _project(records, projection: JobProjection, dead_letters: DeadLetters) -> None:
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
    delay = 0.1
    while True:
        try:
            return await projection.apply(items)
        except Exception as error:
            projection.forget()
            if not transient(error):
                raise
            log.warning("read model unreachable; retrying", error=repr(error), retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
