"""The projector's consumer loop: jobs.events → JobProjection, jobs.schedules →
ScheduleProjection, then commit.

Each batch's position is saved in MongoDB with the read models once the batch
is durable there (and any dead letters acknowledged by the broker); on
assignment the projector resumes from it. The consumer offsets are committed
too, every ``commit_interval_s``, not after each batch: on the durable embedded
broker a commit costs more than projecting a small batch. A crash therefore
reads again at most the batches since the saved position, which the
projection absorbs as duplicates. A record that is not a job event,
or that the database refuses for good, goes to ``jobs.dlq``; the loop goes on.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from pydantic import ValidationError

from schemas import parse_event, topics
from schemas.schedules import parse_schedule_command
from services.common.kafka import make_producer, send_dead_letters
from services.common.readmodel import connect, ensure_indexes
from services.projector import positions
from services.projector.positions import LogLost
from services.projector.projection import JobProjection
from services.projector.schedules import ScheduleProjection
from services.projector.settings import ProjectorSettings

log = structlog.get_logger(component="projector")

STAGE = "projector"


class _Rebalance(ConsumerRebalanceListener):
    """Forget cached states when partitions move; on assignment, resume from the
    positions stored with the read models and check the log still reaches them."""

    def __init__(self, projection: JobProjection, db, settings: ProjectorSettings) -> None:
        self._projection = projection
        self._db = db
        self._settings = settings
        self.consumer: AIOKafkaConsumer | None = None
        self.lost: list = []

    async def on_partitions_revoked(self, revoked) -> None:
        self._projection.forget()

    async def on_partitions_assigned(self, assigned) -> None:
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
            committed = await self.consumer.committed(tp)
            if committed is None or committed < position:
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


async def run_projector(settings: ProjectorSettings, stop: asyncio.Event) -> None:
    mongo = connect(settings)
    db = mongo[settings.mongo_db]
    await ensure_indexes(db)
    projection = JobProjection(db, settings.cache_jobs)
    schedules = ScheduleProjection(db)
    producer = make_producer(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_poll_records=settings.batch_max_records,
    )
    rebalance = _Rebalance(projection, db, settings)
    rebalance.consumer = consumer
    consumer.subscribe([topics.EVENTS, topics.SCHEDULES], listener=rebalance)
    await producer.start()
    await consumer.start()
    log.info("projector started", topics=[topics.EVENTS, topics.SCHEDULES], group=settings.group_id)
    last_commit = time.monotonic()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=settings.batch_max_records)
            if rebalance.lost:
                raise LogLost(rebalance.lost)
            records = [record for batch in batches.values() for record in batch]
            if not records:
                continue
            await _project([r for r in records if r.topic == topics.EVENTS], projection, producer)
            await _project_schedules([r for r in records if r.topic == topics.SCHEDULES], schedules, producer)
            await positions.save(db, {tp: batch[-1].offset + 1 for tp, batch in batches.items() if batch})
            if time.monotonic() - last_commit >= settings.commit_interval_s:
                await consumer.commit()
                last_commit = time.monotonic()
    finally:
        await _commit_quietly(consumer)
        await consumer.stop()
        await producer.stop()
        await mongo.close()
        log.info("projector stopped")


async def _commit_quietly(consumer: AIOKafkaConsumer) -> None:
    """The last commit on the way out; the saved positions cover it if it fails."""
    try:
        await consumer.commit()
    except Exception as error:
        log.warning("final offset commit failed; the saved positions are used on restart", error=repr(error))


async def _project(records, projection: JobProjection, producer) -> None:
    dead, decoded = [], []
    for record in records:
        try:
            decoded.append((record, parse_event(record.value)))
        except (ValidationError, ValueError, TypeError) as error:
            dead.append((record, f"not a job event: {error}"))
    source = {(event.job_id, event.seq): record for record, event in decoded}
    outcome = await _until_durable(projection, [event for _, event in decoded])
    for gap in outcome.gaps:
        log.error(
            "sequence gap in jobs.events; event not applied",
            job_id=gap.job_id,
            expected=gap.expected,
            got=gap.got,
        )
    for event, reason in outcome.rejected:
        dead.append((source[(event.job_id, event.seq)], f"read model refused the event: {reason}"))
    await send_dead_letters(producer, dead, STAGE)


async def _project_schedules(records, schedules: ScheduleProjection, producer) -> None:
    dead, commands = [], []
    for record in records:
        try:
            commands.append(parse_schedule_command(record.value))
        except (ValidationError, ValueError, TypeError) as error:
            dead.append((record, f"not a schedule command: {error}"))
    await _until_durable(schedules, commands)
    await send_dead_letters(producer, dead, STAGE)


async def _until_durable(projection: JobProjection | ScheduleProjection, events):
    """Apply a batch, retrying while the database is unreachable: never skip, never commit early."""
    delay = 0.1
    while True:
        try:
            return await projection.apply(events)
        except Exception as error:  # connection loss, timeouts: the batch is retried as a whole
            log.warning("read model write failed; retrying", error=repr(error), retry_in_s=delay)
            projection.forget()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
