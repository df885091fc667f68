"""The consumer kit: follow ``jobs.events`` from your own service.

    from jobledger.consumer import JobEventConsumer
    from schemas import JobSucceeded

    async with JobEventConsumer("kafka:9092", group_id="billing") as events:
        async for event in events:             # typed, upcast, each (job_id, seq) once
            if isinstance(event, JobSucceeded):
                await bill(event.job_id, event.data.result)

What it does for you:

- **typed and upcast**: every record goes through :func:`schemas.parse_event`,
  so older event versions arrive in today's model; records that are not job
  events are skipped (the projector dead-letters them);
- **deduplicated by (job_id, seq)**: delivery is at least once, so an event can
  come again after a rebalance or a crash. The kit remembers the highest seq it
  handed out per job (bounded) and drops repeats. To stay exactly-once across
  restarts of *your* process, seed it from your sink with ``already_seen``;
- **at-least-once commits**: offsets are committed only for events your loop
  has finished with (before each fetch, and when the ``async with`` block
  ends, also by ``break`` or an exception), never ahead of your code. Crash
  and the events after the last commit come again.

It needs ``aiokafka`` (a dependency of jobledger). It lives with the SDK,
not in ``schemas``: the contract does no I/O.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from typing import Any

from pydantic import ValidationError

from schemas import topics
from schemas.events import AnyEvent, parse_event


class SeenEvents:
    """Highest seq handed out per job, for the ``capacity`` most recent jobs."""

    def __init__(self, capacity: int = 100_000, already_seen: Iterable[tuple[str, int]] = ()) -> None:
        self._capacity = capacity
        self._seq: OrderedDict[str, int] = OrderedDict()
        for job_id, seq in already_seen:
            self.mark(job_id, seq)

    def is_new(self, job_id: str, seq: int) -> bool:
        return seq > self._seq.get(job_id, 0)

    def mark(self, job_id: str, seq: int) -> None:
        if seq > self._seq.get(job_id, 0):
            self._seq[job_id] = seq
        self._seq.move_to_end(job_id)
        while len(self._seq) > self._capacity:
            self._seq.popitem(last=False)


class JobEventConsumer:
    """An async iterator over job events for one consumer group."""

    def __init__(
        self,
        bootstrap_servers: str,
        group_id: str,
        *,
        from_beginning: bool = True,
        already_seen: Iterable[tuple[str, int]] = (),
        remember_jobs: int = 100_000,
        batch_size: int = 500,
        **consumer_options: Any,
    ) -> None:
        """``from_beginning``: a new group starts at the first event (else at the
        next one). ``already_seen``: ``(job_id, seq)`` pairs your sink already
        holds. ``consumer_options`` go to ``aiokafka.AIOKafkaConsumer``."""
        self._options = dict(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
            fetch_max_wait_ms=100,
            **consumer_options,
        )
        self._batch_size = batch_size
        self.seen = SeenEvents(remember_jobs, already_seen)
        self._consumer: Any = None
        self._handled: dict[Any, int] = {}
        """partition → next offset, for records the loop has finished with"""

    async def __aenter__(self) -> JobEventConsumer:
        from aiokafka import AIOKafkaConsumer

        self._consumer = AIOKafkaConsumer(topics.EVENTS, **self._options)
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        try:
            await self._commit(consumer)
        finally:
            await consumer.stop()

    async def _commit(self, consumer) -> None:
        assigned = consumer.assignment()
        offsets = {tp: offset for tp, offset in self._handled.items() if tp in assigned}
        self._handled = {}
        if offsets:
            await consumer.commit(offsets)  # partitions moved elsewhere are re-read there: at least once

    def __aiter__(self) -> AsyncIterator[AnyEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[AnyEvent]:
        if self._consumer is None:
            raise RuntimeError("use `async with JobEventConsumer(...) as events:` first")
        consumer = self._consumer
        while True:
            await self._commit(consumer)  # the loop asked for more: what it was given is handled
            batches = await consumer.getmany(timeout_ms=1000, max_records=self._batch_size)
            for tp, records in batches.items():
                for record in records:
                    try:
                        event = parse_event(record.value)
                    except (ValidationError, ValueError, TypeError):
                        event = None
                    if event is not None and self.seen.is_new(event.job_id, event.seq):
                        yield event
                        self.seen.mark(event.job_id, event.seq)
                    self._handled[tp] = record.offset + 1
