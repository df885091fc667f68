"""Which offsets of ``jobs.events`` a runner may commit while its attempts
finish out of order: never past an attempt still in flight, nor past a record
it skipped to read again later."""

from __future__ import annotations

from aiokafka import TopicPartition


class Offsets:
    """Per partition: the next offset read, the offsets of attempts in flight, and a held offset."""

    def __init__(self) -> None:
        self._pending: dict[TopicPartition, set[int]] = {}
        self._next: dict[TopicPartition, int] = {}
        self._held: dict[TopicPartition, int] = {}

    def seen(self, tp: TopicPartition, offset: int) -> None:
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def started(self, tp: TopicPartition, offset: int) -> None:
        self._pending.setdefault(tp, set()).add(offset)

    def done(self, tp: TopicPartition, offset: int) -> None:
        self._pending.get(tp, set()).discard(offset)

    def hold(self, tp: TopicPartition, offset: int) -> None:
        """Commit nothing past ``offset`` (records skipped now, to be read again)."""
        self._held.setdefault(tp, offset)

    def release(self, tp: TopicPartition) -> int | None:
        return self._held.pop(tp, None)

    def committable(self) -> dict[TopicPartition, int]:
        found = {}
        for tp, next_offset in self._next.items():
            candidates = [next_offset, *self._pending.get(tp, ())]
            if tp in self._held:
                candidates.append(self._held[tp])
            found[tp] = min(candidates)
        return found

    def forget(self, partitions=None) -> None:
        for table in (self._pending, self._next, self._held):
            for tp in list(table if partitions is None else partitions):
                table.pop(tp, None)
