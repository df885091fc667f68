"""Consumer lag: how many records each consumer group still has to process."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas import topics
from services.common.kafka import topic_partitions

GROUP_TOPICS = {"decider": topics.COMMANDS, "runner": topics.EVENTS, "projector": topics.EVENTS}


async def consumer_lag(settings, timeout_s: float = 5.0) -> dict[str, int | None]:
    """End offset minus committed offset, summed over partitions; ``None`` if unknown."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=int(timeout_s * 1000))
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    lag: dict[str, int | None] = {name: None for name in settings.consumer_groups}
    try:
        await asyncio.wait_for(asyncio.gather(admin.start(), consumer.start()), timeout_s)
        ends: dict[str, dict[TopicPartition, int]] = {}
        for topic in set(GROUP_TOPICS.values()):
            ends[topic] = await consumer.end_offsets(await topic_partitions(settings, topic))
        for name, group in settings.consumer_groups.items():
            topic = GROUP_TOPICS.get(name, topics.EVENTS)
            try:
                committed = await asyncio.wait_for(admin.list_consumer_group_offsets(group), timeout_s)
            except Exception:
                continue
            lag[name] = sum(
                max(0, end - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0))
                for tp, end in ends[topic].items()
            )
    except Exception:
        pass  # lag is best effort: unknown rather than an error
    finally:
        await asyncio.gather(admin.close(), consumer.stop(), return_exceptions=True)
    return lag
