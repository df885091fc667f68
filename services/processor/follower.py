"""Hearing the end of attempts on partitions a rebalance took away.

A rebalance can take a partition away while attempts on it are claimed or
running. The answer to a claim, a cancel request or the decider ending an
attempt then lands on a partition this runner no longer reads, so a second,
group-less consumer keeps reading those partitions until no attempt of ours
is left on them. Without it a claim would hold its slot forever and its job
would wait for the lease to run out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

log = structlog.get_logger(component="runner")

IDLE_S = 0.2
"""With no lost partition to follow, how often to look again."""
FETCH_WAIT_MS = 100
FETCH_MAX_RECORDS = 1000


class LostPartitions:
    """Lost partitions with attempts of ours in flight, and the next offset to read on each."""

    def __init__(self, consumer: Callable[[], AIOKafkaConsumer], take: Callable[[TopicPartition, object], None]) -> None:
        self._consumer = consumer
        self._take = take
        self.next_offsets: dict[TopicPartition, int] = {}

    def lost(self, tp: TopicPartition, offset: int) -> None:
        """An attempt of ours, read at ``offset``, is in flight on ``tp``, which was taken away."""
        self.next_offsets[tp] = min(self.next_offsets.get(tp, offset), offset)

    def regained(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self.next_offsets.pop(tp, None)  # the group consumer reads it again from the last commit

    async def follow(self, keep_going: Callable[[], bool], in_flight: Callable[[], set[TopicPartition]]) -> None:
        """Read the lost partitions while ``keep_going()``; drop each once ``in_flight()`` no longer names it."""
        follower: AIOKafkaConsumer | None = None
        try:
            while keep_going():
                for tp in set(self.next_offsets) - in_flight():
                    del self.next_offsets[tp]
                if not self.next_offsets:
                    await asyncio.sleep(IDLE_S)
                    continue
                if follower is None:
                    follower = self._consumer()
                    await follower.start()
                if follower.assignment() != set(self.next_offsets):
                    log.info(
                        "following lost partitions until our attempts there end",
                        partitions=sorted(tp.partition for tp in self.next_offsets),
                    )
                    follower.assign(list(self.next_offsets))
                    for tp, offset in self.next_offsets.items():
                        follower.seek(tp, offset)
                batches = await follower.getmany(timeout_ms=FETCH_WAIT_MS, max_records=FETCH_MAX_RECORDS)
                for tp, records in batches.items():
                    for record in records:
                        if tp not in self.next_offsets:
                            break
                        self.next_offsets[tp] = record.offset + 1
                        self._take(tp, record)
        finally:
            if follower is not None:
                await follower.stop()
