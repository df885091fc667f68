"""The log (Kafka records): producers, consumers (opened by :mod:`.consumer_runtime`), appending
with an acknowledgement, reading a topic to its end, dead letters.

Every producer is idempotent with ``acks=all``: a retried send after a lost
acknowledgement is not written twice, and per partition nothing is reordered.
Effects downstream stay exactly-once through ``(job_id, seq)`` deduplication.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata

from schemas import topics
from schemas.topics import DeadLetterStage
from services.adapters.consumer_runtime import open_consumer, stop_consumer
from services.common.metrics import DEAD_LETTERS
from services.common.settings import ConnectionSettings

STEP_TIMEOUT_S = 30.0
"""The longest one step of :func:`read_to_end` may take (a node's failover takes ~10 s):
past it the read fails with ``TimeoutError``, and its caller reads again."""
MAX_BATCH_BYTES = 262_144
"""Room for a burst of commands in one produce request (a batch submit of 1,000 jobs)."""
MAX_RECORD_BYTES = topics.MAX_RECORD_BYTES


def make_producer(settings: ConnectionSettings, **overrides) -> AIOKafkaProducer:
    options = dict(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=settings.linger_ms,
        max_batch_size=MAX_BATCH_BYTES,
        enable_idempotence=True,
        request_timeout_ms=15_000,
    )
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(settings: ConnectionSettings, group_id: str | None = None, **overrides) -> AIOKafkaConsumer:
    """A consumer of the log with the settings' broker, fetch wait and (for a
    group member) session timeout: see :func:`.consumer_runtime.open_consumer`."""
    options: dict[str, Any] = dict(fetch_max_wait_ms=settings.fetch_max_wait_ms)
    options.update(overrides)
    return open_consumer(settings.kafka_bootstrap, group_id, session_timeout_s=settings.group_session_timeout_s, **options)


async def append(producer: AIOKafkaProducer, topic: str, key: bytes, value: bytes, timeout_s: float) -> RecordMetadata:
    """Append one record and wait until the broker acknowledged it (``acks=all``)."""
    delivery = await producer.send(topic, key=key, value=value)
    return await asyncio.wait_for(delivery, timeout_s)


async def topic_partitions(settings: ConnectionSettings, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``, for a consumer that assigns them itself (a
    consumer that subscribed to nothing is not told a topic's partitions)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [
        TopicPartition(topic, partition["partition"])
        for partition in sorted(described["partitions"], key=lambda p: p["partition"])
    ]


async def read_to_end(
    settings: ConnectionSettings, topic: str, starts: dict[int, int | None], max_records: int = 5000
) -> AsyncIterator[list[ConsumerRecord]]:
    """Batches of the records of ``topic``'s partitions ``starts`` names, each from
    its offset (``None``: the beginning) to where the partition ended when the
    read began — a table's changelog, or a log to fold."""
    if not starts:
        return
    consumer = make_consumer(settings, max_partition_fetch_bytes=4 * 1024 * 1024)
    try:
        await _within(consumer.start(), "start", topic)
        tps = [TopicPartition(topic, partition) for partition in starts]
        consumer.assign(tps)
        ends = await _within(consumer.end_offsets(tps), "end offsets", topic)
        beginnings = await _within(consumer.beginning_offsets(tps), "beginning offsets", topic)
        left = {tp: ends[tp] for tp in tps if max(beginnings[tp], starts[tp.partition] or 0) < ends[tp]}
        if not left:
            return  # (and never assign nothing: aiokafka's stop() then hangs)
        consumer.assign(list(left))  # partitions read to their end already are not fetched at all
        for tp in left:
            consumer.seek(tp, max(beginnings[tp], starts[tp.partition] or 0))
        while left:
            batches = await _within(consumer.getmany(*left, timeout_ms=1000, max_records=max_records), "fetch", topic)
            for tp, records in batches.items():
                records = [record for record in records if record.offset < left.get(tp, 0)]
                if records:
                    yield records
            for tp in list(left):
                if await _within(consumer.position(tp), "position", topic) >= left[tp]:
                    del left[tp]
    finally:
        await stop_consumer(consumer)


async def _within(step: Awaitable[T], what: str, topic: str) -> T:
    try:
        return await asyncio.wait_for(step, STEP_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise TimeoutError(f"reading {topic} to its end: {what} took longer than {STEP_TIMEOUT_S:g} s") from None


def dead_letter_headers(
    *, stage: str, error: BaseException | str, topic: str, partition: int, offset: int
) -> list[tuple[str, bytes]]:
    """Headers of a ``jobs.dlq`` record: why, where from, and who gave up on it."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    prefix = topics.DLQ_HEADER_PREFIX
    return [
        (f"{prefix}error", text[:4000].encode()),
        (f"{prefix}stage", stage.encode()),
        (f"{prefix}source-topic", topic.encode()),
        (f"{prefix}source-partition", str(partition).encode()),
        (f"{prefix}source-offset", str(offset).encode()),
    ]


T = TypeVar("T")


class DeadLetters:
    """``jobs.dlq`` for one stage of one service: a record that cannot be read or
    decided goes there with its original key, bytes and headers, plus why and
    where from, and the consumer goes on. ``on_sent`` receives each delivery,
    for a caller that commits only what the broker acknowledged."""

    def __init__(
        self, producer: AIOKafkaProducer, stage: DeadLetterStage | str, on_sent: Callable[[asyncio.Future], Any] | None = None
    ) -> None:
        self._producer = producer
        self.stage = str(stage)
        self._on_sent = on_sent
        self._log = structlog.get_logger(component=self.stage)

    async def send(self, record: ConsumerRecord, error: BaseException | str) -> asyncio.Future:
        headers = list(record.headers or ()) + dead_letter_headers(
            stage=self.stage, error=error, topic=record.topic, partition=record.partition, offset=record.offset
        )
        delivery = await self._producer.send(topics.DLQ, key=record.key, value=record.value, headers=headers)
        DEAD_LETTERS.labels(self.stage).inc()
        if self._on_sent is not None:
            self._on_sent(delivery)
        return delivery

    async def send_all(self, dead: list[tuple[ConsumerRecord, BaseException | str]]) -> None:
        """Send ``(record, reason)`` pairs and wait until the broker has them (the caller commits next)."""
        if not dead:
            return
        await asyncio.gather(*[await self.send(record, reason) for record, reason in dead])
        self._log.warning("records sent to the dead-letter topic", count=len(dead), topic=topics.DLQ)

    async def parsed(self, record: ConsumerRecord, parse: Callable[[bytes], T], what: str) -> T | None:
        """The decoded record, or ``None`` after sending it here."""
        try:
            return parse(record.value)
        except Exception as error:  # ValidationError, and whatever else bytes can make a parser raise
            await self.send(record, f"not a {what}: {error}")
            return None


async def log_records(
    settings: ConnectionSettings,
    on_total: Callable[[int], None] | None = None,
    start: dict[int, int] | None = None,
    ends_out: dict[int, int] | None = None,
    topic: str = topics.EVENTS,
) -> AsyncIterator[bytes]:
    """Every record value of ``topic``: see :func:`log_entries`."""
    async for record in log_entries(settings, on_total, start, ends_out, topic):
        yield record.value


async def log_entries(
    settings: ConnectionSettings,
    on_total: Callable[[int], None] | None = None,
    start: dict[int, int] | None = None,
    ends_out: dict[int, int] | None = None,
    topic: str = topics.EVENTS,
) -> AsyncIterator[ConsumerRecord]:
    """Every record of ``topic`` (``jobs.events``), partition by partition, from
    ``start`` (partition → offset) if given, until a fetch at the end finds
    nothing more. Where each partition was read up to goes into ``ends_out``,
    to read on from there later."""
    consumer = make_consumer(settings, max_partition_fetch_bytes=4 * 1024 * 1024)
    try:
        await consumer.start()
        tps = await topic_partitions(settings, topic)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        if start is not None:
            starts = {tp: max(offset, start.get(tp.partition, offset)) for tp, offset in starts.items()}
        if on_total is not None:
            on_total(sum(ends[tp] - starts[tp] for tp in tps))
        for tp in tps:
            consumer.assign([tp])
            consumer.seek(tp, starts[tp])
            position = starts[tp]
            while True:
                # Read past the end offset asked for until a fetch comes back empty:
                # an end offset read right after a write may be behind the log.
                batches = await consumer.getmany(tp, timeout_ms=200 if position >= ends[tp] else 1000, max_records=5000)
                records = batches.get(tp, [])
                if not records and position >= ends[tp]:
                    break
                for record in records:
                    yield record
                position = await consumer.position(tp)  # (past a transaction's marker too, which is no record)
            if ends_out is not None:
                ends_out[tp.partition] = max(position, ends[tp])
    finally:
        await stop_consumer(consumer)
