"""The raw limits: the broker's produce/consume and one hop, the database's bulk upserts."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient, UpdateOne

from bench.figures import percentile
from services.adapters.broker import ensure_topics
from services.adapters.log import make_consumer, make_producer, topic_partitions
from services.embedded.stack import EmbeddedStack

# --- raw limits -------------------------------------------------------------------------


def log_consumer(stack: EmbeddedStack) -> AIOKafkaConsumer:
    """A consumer outside any group, with the services' fetch settings."""
    return make_consumer(stack.settings, max_partition_fetch_bytes=4 * 1024 * 1024)


async def raw_broker(stack: EmbeddedStack, count: int, size: int = 400) -> dict:
    """Produce then consume ``count`` keyed records with the services' client settings."""
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.settings, [topic])
    producer = make_producer(stack.settings)
    await producer.start()
    value = b"x" * size
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, key=str(i).encode(), value=value) for i in range(count)]
        await asyncio.gather(*futures)
        produce_s = time.perf_counter() - started
    finally:
        await producer.stop()
    consumer = log_consumer(stack)
    await consumer.start()
    try:
        consumer.assign(await topic_partitions(stack.settings, topic))
        await consumer.seek_to_beginning()
        seen = 0
        started = time.perf_counter()
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            seen += sum(len(batch) for batch in batches.values())
        consume_s = time.perf_counter() - started
    finally:
        await consumer.stop()
    return {"produce_msgs_per_s": count / produce_s, "consume_msgs_per_s": count / consume_s}


async def raw_hop(stack: EmbeddedStack, pings: int = 100) -> dict:
    """One record produced and seen by a consumer polling with the services'
    settings: the least one hop of the pipeline can take."""
    topic = f"bench.hop.{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.settings, [topic])
    tp = TopicPartition(topic, 0)
    producer = make_producer(stack.settings)
    consumer = log_consumer(stack)
    await producer.start()
    await consumer.start()
    samples = []
    try:
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        await consumer.position(tp)
        for _ in range(pings):
            sent = time.perf_counter()
            await producer.send(topic, value=b"ping", partition=0)
            while not (await consumer.getmany(tp, timeout_ms=1000)).get(tp):
                pass
            samples.append((time.perf_counter() - sent) * 1000)
    finally:
        await consumer.stop()
        await producer.stop()
    return {"hop_ms_p50": statistics.median(samples), "hop_ms_p99": percentile(samples, 0.99)}


async def raw_database(stack: EmbeddedStack, count: int, batch: int = 1000) -> dict:
    """Bulk upserts of job-sized documents, as the projector writes them."""
    client = AsyncMongoClient(stack.settings.mongo_url)
    collection = client["bench_raw"]["docs"]
    document = {"status": "QUEUED", "payload": {"n": 1}, "version": 2, "tenant": "bench", "type": "noop"}
    try:
        started = time.perf_counter()
        for offset in range(0, count, batch):
            ops = [
                UpdateOne({"_id": f"doc-{i}"}, {"$set": {**document, "version": i}}, upsert=True)
                for i in range(offset, min(count, offset + batch))
            ]
            await collection.bulk_write(ops, ordered=False)
        elapsed = time.perf_counter() - started
        await client.drop_database("bench_raw")
    finally:
        await client.close()
    return {"bulk_upserts_per_s": count / elapsed}
