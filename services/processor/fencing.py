"""Fencing: a decider that lost a partition cannot append to it any more.

Each partition of ``jobs.commands`` a decider owns gets a transactional
producer of its own, transactional id ``<group>-events-<partition>``, and the
events of that partition's jobs are appended through it (to the same
partition of ``jobs.events``: the topics are co-partitioned). Taking a
partition starts its producer before anything is restored: Kafka's
transaction coordinator bumps the id's epoch and aborts whatever transaction
the previous owner left open, and from then on the brokers refuse that
owner's appends and commits (``ProducerFenced``). A *zombie* — a decider
paused past the session timeout while its partitions moved — finds its next
write refused and stops; the supervisor starts it again as a new member. The
restore that follows reads ``jobs.events`` to its end, so the previous
owner's last appends, those acknowledged before the fence, are folded in.

The transaction is the fence, not a unit of visibility. It stays open across
rounds and is committed on the commit interval together with the partition's
consumed offsets (``TxnOffsetCommit`` instead of the consumer's own commit),
then a new one begins. Readers of ``jobs.events`` read uncommitted records,
every Kafka client's default: an event is read as soon as it is acknowledged,
as before, and the events of a transaction that a crashed owner left open
stay valid history though Kafka marks them aborted (the next owner folded
them and decides on from there). A ``read_committed`` reader would miss those
and wait up to a commit interval for the rest; ``docs/architecture.md`` says
so to downstream consumers.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced

from schemas import topics
from services.adapters.log import make_producer
from services.common.settings import ConnectionSettings

log = structlog.get_logger(component="fencing")
RETRY_BACKOFF_MS = 10
"""A transaction's first append right after a commit is refused while the
coordinator still writes the commit's markers (CONCURRENT_TRANSACTIONS) and
retried after this; aiokafka's default, 100 ms, put that on the job's latency."""
FENCED = (ProducerFenced, InvalidProducerEpoch)
"""How the broker refuses a fenced producer: at the coordinator, or at the partition's leader."""


def transactional_id(group: str, partition: int) -> str:
    return f"{group}-events-{partition}"


class PartitionProducers:
    """One fenced producer per owned partition, each always in a transaction."""

    def __init__(self, settings: ConnectionSettings, group: str, topic: str = topics.EVENTS) -> None:
        self._settings = settings
        self._group = group
        self._topic = topic
        self._producers: dict[int, AIOKafkaProducer] = {}
        self._written: set[int] = set()
        """Partitions whose open transaction holds records (it is committed even without new offsets)."""
        self._lock = asyncio.Lock()
        """Appends and commits take turns: a commit ends the transaction an append would join."""

    async def take(self, partitions: set[int]) -> None:
        """Fence the previous owners of ``partitions`` and begin a transaction on each."""
        new = sorted(partitions - set(self._producers))
        producers = {
            p: make_producer(self._settings, transactional_id=transactional_id(self._group, p), retry_backoff_ms=RETRY_BACKOFF_MS)
            for p in new
        }
        await asyncio.gather(*(producer.start() for producer in producers.values()))
        for partition, producer in producers.items():
            await producer.begin_transaction()
            self._producers[partition] = producer
        if new:
            log.info("partitions fenced", partitions=new)

    async def send(self, partition: int, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> asyncio.Future:
        """Append an event of a job of ``partition``: the future resolves once it is acknowledged."""
        async with self._lock:
            self._written.add(partition)
            producer = self._producers[partition]
            delivery = await producer.send(self._topic, key=key, value=value, partition=partition, headers=headers)
        delivery.add_done_callback(functools.partial(_delivered, partition))
        return delivery

    async def commit(self, offsets: dict[TopicPartition, int], group: str) -> None:
        """Commit each written partition's transaction, with its consumed
        offsets of ``offsets`` (of jobs.commands), and begin the next one.
        Raises if a producer was fenced: this decider no longer owns it."""
        async with self._lock:
            by_partition = {tp.partition: (tp, offset) for tp, offset in offsets.items() if tp.partition in self._producers}
            due = sorted(self._written | set(by_partition))
            await asyncio.gather(*(self._commit(partition, by_partition.get(partition), group) for partition in due))
            self._written.clear()

    async def _commit(self, partition: int, offset: tuple[TopicPartition, int] | None, group: str) -> None:
        producer = self._producers[partition]
        try:
            if offset is not None:
                await producer.send_offsets_to_transaction({offset[0]: offset[1]}, group)
            await producer.commit_transaction()
        except Exception as error:
            _refused(partition, error)
            raise
        await producer.begin_transaction()

    async def release(self, partitions: set[int]) -> None:
        """Close the producers of partitions that went (their transactions were committed first)."""
        gone = [self._producers.pop(partition) for partition in sorted(partitions) if partition in self._producers]
        self._written -= partitions
        await asyncio.gather(*(_close(producer) for producer in gone))

    async def stop(self) -> None:
        await self.release(set(self._producers))


def _delivered(partition: int, delivery: asyncio.Future) -> None:
    if not delivery.cancelled():
        _refused(partition, delivery.exception())


def _refused(partition: int, error: BaseException | None) -> None:
    if isinstance(error, FENCED):
        log.error("fenced: another decider owns this partition now; nothing more of ours is appended to it", partition=partition)


async def _close(producer: Any) -> None:
    try:
        await producer.stop()
    except Exception as error:  # (a fenced producer may complain on its way out)
        log.debug("fenced producer stopped with an error", error=repr(error))
