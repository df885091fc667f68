"""The log in memory: topics as lists of records, each reader with its own
position. For running the whole path of a job in one process
(:mod:`services.processor.local`): the order within a topic is the order of
appends, as within one Kafka partition; what only the wire shows
(partitions, rebalances, acknowledgements, crashes) is the e2e tests'."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """A record with the attributes the services read of a Kafka record."""

    topic: str
    offset: int
    key: bytes
    value: bytes
    partition: int = 0


class MemoryLog:
    def __init__(self) -> None:
        self._topics: dict[str, list[MemoryRecord]] = defaultdict(list)
        self._positions: dict[tuple[str, str], int] = defaultdict(int)

    def append(self, topic: str, key: bytes, value: bytes) -> MemoryRecord:
        records = self._topics[topic]
        record = MemoryRecord(topic, len(records), key, value)
        records.append(record)
        return record

    def records(self, topic: str) -> list[MemoryRecord]:
        """Every record of ``topic``, oldest first."""
        return list(self._topics[topic])

    def read(self, reader: str, topic: str) -> list[MemoryRecord]:
        """What ``reader`` has not read of ``topic`` yet; it is read from now on."""
        records = self._topics[topic]
        start = self._positions[reader, topic]
        self._positions[reader, topic] = len(records)
        return records[start:]

    def unread(self, reader: str, topic: str) -> int:
        return len(self._topics[topic]) - self._positions[reader, topic]
