"""A small topic folded into memory and kept current: a table that is the log's replay.

Each process that needs one (ingest's service registry, and the runner's)
reads every partition of the topic from its beginning when it starts — the
table is ready once it has folded what the topic held then — and goes on
following it, outside any consumer group. Nothing is stored beside the log,
so the table is rebuilt from the log at every start.

A record is folded once, whether it was read from the log or applied by the
process that appended it (read-your-writes: the appender applies its own
record as soon as the broker acknowledged it). One key's records are on one
partition, so their offsets order them: a record older than the last one
folded for its key is skipped, and the follower skips the appender's own when
it reaches it. A record that cannot be read is logged and skipped: a table
must never stop its process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from services.adapters.consumer_runtime import stop_consumer
from services.adapters.log import make_consumer, read_to_end, topic_partitions
from services.common.settings import ConnectionSettings

R = TypeVar("R")

FETCH_WAIT_MS = 500
"""How long a fetch waits for a new record; a table's topic changes seldom."""

log = structlog.get_logger(component="log-table")


class LogTable(Generic[R]):
    def __init__(
        self,
        settings: ConnectionSettings,
        topic: str,
        parse: Callable[[bytes], R],
        key_of: Callable[[R], Hashable],
        fold: Callable[[R], None],
    ) -> None:
        self._settings = settings
        self._topic = topic
        self._parse = parse
        self._key_of = key_of
        self._fold = fold
        self._folded: dict[Hashable, int] = {}
        """key → the offset of the last record folded for it"""
        self._consumer: AIOKafkaConsumer | None = None
        self._following: asyncio.Task | None = None

    async def start(self) -> None:
        """Fold what the topic holds (read to where it ended, as every table is
        restored: :func:`read_to_end`), then follow it from there in the background."""
        partitions = await topic_partitions(self._settings, self._topic)
        if not partitions:
            raise LookupError(f"topic {self._topic} does not exist: create the missing topics with `jobledger topics`")
        resume: dict[TopicPartition, int] = {}
        async for records in read_to_end(self._settings, self._topic, {tp.partition: None for tp in partitions}):
            self._take(records)
            resume[TopicPartition(self._topic, records[-1].partition)] = records[-1].offset + 1
        consumer = self._consumer = make_consumer(self._settings, fetch_max_wait_ms=FETCH_WAIT_MS)
        await consumer.start()
        consumer.assign(partitions)
        for tp, offset in resume.items():
            consumer.seek(tp, offset)
        unread = [tp for tp in partitions if tp not in resume]
        if unread:
            await consumer.seek_to_beginning(*unread)
        self._following = asyncio.create_task(self._follow(consumer), name=f"follow {self._topic}")
        self._following.add_done_callback(self._stopped_following)

    def _stopped_following(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.critical(
                "stopped following the topic: the table no longer changes", topic=self._topic, error=repr(task.exception())
            )

    async def stop(self) -> None:
        if self._following is not None:
            self._following.cancel()
            await asyncio.gather(self._following, return_exceptions=True)
        if self._consumer is not None:
            await stop_consumer(self._consumer)

    def apply(self, offset: int, record: R) -> None:
        """Fold a record this process appended (the broker acknowledged it at
        ``offset``), unless the follower folded it, or a later one of its key, already."""
        self._fold_newer(offset, record)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=FETCH_WAIT_MS)).values():
                self._take(records)

    def _take(self, records: list[ConsumerRecord]) -> None:
        for record in records:
            try:
                parsed = self._parse(record.value)
            except Exception as error:
                log.error(
                    "unreadable record skipped",
                    topic=self._topic,
                    partition=record.partition,
                    offset=record.offset,
                    error=repr(error),
                )
                continue
            self._fold_newer(record.offset, parsed)

    def _fold_newer(self, offset: int, record: R) -> None:
        key = self._key_of(record)
        if offset <= self._folded.get(key, -1):
            return
        self._fold(record)
        self._folded[key] = offset
