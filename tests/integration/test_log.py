"""The log adapter against the real broker: topics of its own, so the running
services never see these records."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas import parse_command, topics
from services.adapters.broker import caught_up, create_replicated, drain, ensure_topics, group_lag
from services.adapters.log import MAX_BATCH_BYTES, DeadLetters, append, log_entries, make_consumer, make_producer
from services.adapters.rdproducer import RdProducer

pytestmark = pytest.mark.integration


@pytest.fixture
async def topic(stack) -> str:
    name = f"it-{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.settings, [name])
    return name


@pytest.fixture
async def log_producer(stack):
    producer = make_producer(stack.settings)
    await producer.start()
    yield producer
    await producer.stop()


async def entries(stack, topic: str) -> list:
    return [record async for record in log_entries(stack.settings, topic=topic)]


async def test_appended_records_are_acknowledged_and_read_back_in_order_per_key(stack, topic, log_producer):
    for n in range(3):
        await append(log_producer, topic, b"job-1", f"record {n}".encode(), timeout_s=10)

    records = await entries(stack, topic)

    assert [record.value for record in records] == [b"record 0", b"record 1", b"record 2"]


async def test_a_record_no_parser_reads_goes_to_the_dead_letters_with_why_and_where(stack, topic, log_producer):
    await append(log_producer, topic, b"job-2", b"not json", timeout_s=10)
    [record] = await entries(stack, topic)
    dead_letters = DeadLetters(log_producer, stage="it-stage")

    parsed = await dead_letters.parsed(record, parse_command, "job command")
    await log_producer.flush()

    assert parsed is None
    [dead] = [r for r in await entries(stack, topics.DLQ) if dict(r.headers).get("jobledger-source-topic") == topic.encode()]
    headers = dict(dead.headers)
    assert (dead.key, dead.value) == (b"job-2", b"not json")
    assert headers["jobledger-stage"] == b"it-stage"
    assert headers["jobledger-source-offset"] == str(record.offset).encode()
    assert headers["jobledger-error"].startswith(b"not a job command")


async def read_and_commit(stack, group: str, topic: str, records: int) -> None:
    """Read ``records`` records of ``topic`` as a member of ``group``, and commit."""
    consumer = make_consumer(stack.settings, group)
    consumer.subscribe([topic])
    await consumer.start()
    try:
        read = 0
        while read < records:
            read += sum(len(batch) for batch in (await consumer.getmany(timeout_ms=1000)).values())
        await consumer.commit()
    finally:
        await consumer.stop()


async def test_drain_waits_for_a_group_that_is_behind_and_names_it(stack, topic, log_producer):
    group = f"it-group-{uuid.uuid4().hex[:8]}"
    for n in range(5):
        await append(log_producer, topic, f"key-{n}".encode(), b"x", timeout_s=10)

    assert (await group_lag(stack.settings, {group: (topic,)}))[group] == 5
    with pytest.raises(TimeoutError, match=group):
        await drain(stack.settings, timeout_s=0.5, groups={group: (topic,)})

    await read_and_commit(stack, group, topic, 5)
    await drain(stack.settings, timeout_s=30, groups={group: (topic,)})


async def test_caught_up_answers_whether_a_group_committed_past_what_the_topic_held(stack, topic, log_producer):
    group = f"it-group-{uuid.uuid4().hex[:8]}"
    assert await caught_up(stack.settings, [(group, (topic,))], timeout_s=0), "an empty topic: nothing to wait for"
    for n in range(3):
        await append(log_producer, topic, f"key-{n}".encode(), b"x", timeout_s=10)

    assert not await caught_up(stack.settings, [(group, (topic,))], timeout_s=0.3)
    await read_and_commit(stack, group, topic, 3)
    assert await caught_up(stack.settings, [(group, (topic,))], timeout_s=30)


async def test_librdkafka_puts_each_key_on_the_partition_aiokafka_does(stack, topic, log_producer):
    """Commands (ingest, librdkafka) and events (the decider, aiokafka) of a job
    must share a partition: both hash keys with the Java client's murmur2."""
    rd = RdProducer(stack.settings, MAX_BATCH_BYTES)
    await rd.start()
    try:
        keys = [f"job-{n}".encode() for n in range(64)]
        for key in keys:
            await append(log_producer, topic, key, b"aiokafka", timeout_s=10)
            await append(rd, topic, key, b"librdkafka", timeout_s=10)
    finally:
        await rd.stop()

    partitions: dict[bytes, set[int]] = {}
    for record in await entries(stack, topic):
        partitions.setdefault(record.key, set()).add(record.partition)
    assert all(len(found) == 1 for found in partitions.values()), partitions
    assert len({next(iter(found)) for found in partitions.values()}) > 1, "keys spread over the partitions"


async def test_a_record_as_large_as_the_log_takes_is_acknowledged_by_either_client(stack, topic, log_producer):
    """Ingest checks a command against ``topics.MAX_RECORD_BYTES``; its producer must take what that check lets through."""
    largest = b"x" * topics.MAX_RECORD_BYTES
    rd = RdProducer(stack.settings, MAX_BATCH_BYTES)
    await rd.start()
    try:
        await append(rd, topic, b"job-large", largest, timeout_s=10)
    finally:
        await rd.stop()
    await append(log_producer, topic, b"job-large", largest, timeout_s=10)

    assert [len(record.value) for record in await entries(stack, topic)] == [topics.MAX_RECORD_BYTES] * 2


async def test_a_replication_factor_the_cluster_cannot_meet_yet_is_asked_again_then_named(stack):
    """A cluster still starting refuses a replication factor above its registered nodes (per topic, in the
    answer, not as an error): creation asks again until it can, and says which topics it could not create."""
    name = f"it-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.settings.kafka_bootstrap)
    await admin.start()
    try:
        with pytest.raises(TimeoutError, match=f"replication factor 3 for \\['{name}'\\]"):
            await create_replicated(admin, [NewTopic(name, num_partitions=1, replication_factor=3)], timeout_s=0.5)
        assert name not in await admin.list_topics()
    finally:
        await admin.close()
