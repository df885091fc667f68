"""Fencing against the real broker (:mod:`services.processor.fencing`): once
a partition's new owner has taken it, the broker refuses the old owner's
appends and commits. A topic and a group of their own."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.errors import KafkaError

from services.adapters.broker import ensure_topics
from services.adapters.log import log_entries
from services.processor.fencing import PartitionProducers

pytestmark = pytest.mark.integration


async def test_the_previous_owner_of_a_partition_cannot_append_once_another_took_it(stack):
    topic, group = f"it-fence-{uuid.uuid4().hex[:8]}", f"it-fence-{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.settings, [topic])
    old, new = PartitionProducers(stack.settings, group, topic), PartitionProducers(stack.settings, group, topic)
    try:
        await old.take({0})
        await (await old.send(0, b"job", b"before the move", []))
        await new.take({0})  # the partition moved: its new owner fences the old one
        with pytest.raises(KafkaError):
            await (await old.send(0, b"job", b"from the zombie", []))
        with pytest.raises(KafkaError):
            await old.commit({}, group)
        await (await new.send(0, b"job", b"from the new owner", []))
        await new.commit({}, group)
    finally:
        await old.stop()
        await new.stop()

    records = [record async for record in log_entries(stack.settings, topic=topic)]

    assert [record.value for record in records] == [b"before the move", b"from the new owner"]
