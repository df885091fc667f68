"""Kafka plumbing shared by the services: producers, topics, dead letters.

Every producer is idempotent with ``acks=all``: a retried send after a lost
acknowledgement is not written twice, and per partition nothing is reordered.
Effects downstream stay exactly-once through ``(job_id, seq)`` deduplication.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas import topics
from services.common.settings import ConnectionSettings

MAX_BATCH_BYTES = 262_144
"""Room for a burst of commands in one produce request (a batch submit of 1,000 jobs)."""

INFINITE_RETENTION = {"retention.ms": "-1", "retention.bytes": "-1"}
COMPACTED = {"cleanup.policy": "compact", "segment.ms": "600000", "min.cleanable.dirty.ratio": "0.1"}
"""Changelogs: segments roll every 10 minutes so the cleaner can drop superseded records."""


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


async def ensure_topics(settings: ConnectionSettings, names: Iterable[str] = topics.ALL) -> list[str]:
    """Create the jobledger topics that are missing; return the ones created.

    All share one partition count so commands and events of a job are
    co-partitioned. ``jobs.events`` keeps its records forever.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name,
                num_partitions=settings.partitions,
                replication_factor=1,
                topic_configs=_topic_config(name),
            )
            for name in names
            if name not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
        await _until_led(admin, list(names))
        return [topic.name for topic in wanted]
    finally:
        await admin.close()


async def _until_led(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 30.0) -> None:
    """Wait until every partition of ``names`` has a leader: a topic created a
    moment ago answers offset requests with NotLeaderForPartition until then."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        if all(p["leader"] >= 0 for topic in described if not topic["error_code"] for p in topic["partitions"]) and all(
            not topic["error_code"] for topic in described
        ):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"partitions of {names} have no leader after {timeout_s:.0f} s")
        await asyncio.sleep(0.1)


def _topic_config(name: str) -> dict[str, str]:
    if name in topics.FOREVER:
        return INFINITE_RETENTION
    if name in topics.COMPACTED:
        return COMPACTED
    return {}


async def wait_for_broker(settings: ConnectionSettings, timeout_s: float = 30.0) -> None:
    """Block until the broker answers a metadata request.

    Until a bootstrap server accepts a TCP connection, only that is tried: the
    Kafka client would log an error for every refused attempt."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await _accepts_connections(settings.kafka_bootstrap):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"no broker listens at {settings.kafka_bootstrap}")
        await asyncio.sleep(0.1)
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=2_000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
        finally:
            await admin.close()


async def _accepts_connections(bootstrap: str) -> bool:
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host or "localhost", int(port)), 2.0)
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        return True
    return False


async def topic_partitions(settings: ConnectionSettings, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``, for a consumer that assigns them itself (a
    consumer that subscribed to nothing is not told a topic's partitions)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [TopicPartition(topic, partition["partition"]) for partition in sorted(described["partitions"], key=lambda p: p["partition"])]


async def read_to_end(
    settings: ConnectionSettings, topic: str, starts: dict[int, int | None], max_records: int = 5000
) -> AsyncIterator[list[ConsumerRecord]]:
    """Batches of the records of ``topic``'s partitions ``starts`` names, each from
    its offset (``None``: the beginning) to where the partition ended when the
    read began — a table's changelog, or a log to fold."""
    if not starts:
        return
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, partition) for partition in starts]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        beginnings = await consumer.beginning_offsets(tps)
        left = {tp: ends[tp] for tp in tps if max(beginnings[tp], starts[tp.partition] or 0) < ends[tp]}
        if not left:
            return  # (and never assign nothing: aiokafka's stop() then hangs)
        consumer.assign(list(left))  # partitions read to their end already are not fetched at all
        for tp in left:
            consumer.seek(tp, max(beginnings[tp], starts[tp.partition] or 0))
        while left:
            batches = await consumer.getmany(*left, timeout_ms=1000, max_records=max_records)
            for tp, records in batches.items():
                records = [record for record in records if record.offset < left.get(tp, 0)]
                if records:
                    yield records
            for tp in list(left):
                if await consumer.position(tp) >= left[tp]:
                    del left[tp]
    finally:
        await consumer.stop()


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


async def send_dead_letters(producer: AIOKafkaProducer, dead: list, stage: str) -> None:
    """Send ``(record, reason)`` pairs to ``jobs.dlq`` with their original key, bytes
    and headers, and wait until the broker has them (the caller commits next)."""
    if not dead:
        return
    futures = [
        await producer.send(
            topics.DLQ,
            key=record.key,
            value=record.value,
            headers=list(record.headers or ())
            + dead_letter_headers(
                stage=stage,
                error=reason,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            ),
        )
        for record, reason in dead
    ]
    await asyncio.gather(*futures)
    structlog.get_logger(component=stage).warning(
        "records sent to the dead-letter topic", count=len(futures), topic=topics.DLQ
    )
