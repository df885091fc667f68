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
  has finished with (before each fetch, when partitions move to another
  member of your group, and when the ``async with`` block ends, also by
  ``break`` or an exception), never ahead of your code. Crash and the events
  after the last commit come again.

It runs on the services' own consumer runtime
(:mod:`services.adapters.consumer_runtime`) and needs ``aiokafka`` (a
dependency of jobledger). It lives with the SDK, not in ``schemas``: the
contract does no I/O.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import TopicPartition
from pydantic import ValidationError

from schemas import topics
from schemas.events import AnyEvent, parse_event
from services.adapters.consumer_runtime import Batches, Committable, ConsumerRuntime, open_consumer


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
        options: dict[str, Any] = dict(auto_offset_reset="earliest" if from_beginning else "latest", fetch_max_wait_ms=100)
        options.update(consumer_options)
        self._bootstrap_servers = bootstrap_servers
        self._group_id = group_id
        self._options = options
        self._batch_size = batch_size
        self.seen = SeenEvents(remember_jobs, already_seen)
        self._runtime: ConsumerRuntime | None = None
        self._handled: Committable = {}
        """partition → next offset, for records the loop has finished with"""

    async def __aenter__(self) -> JobEventConsumer:
        consumer = open_consumer(self._bootstrap_servers, self._group_id, **self._options)
        self._runtime = ConsumerRuntime(
            consumer,
            [topics.EVENTS],
            self,
            name="consumer-kit",
            commit_interval_s=0.0,
            fetch_wait_ms=1000,
            max_records=self._batch_size,
        )
        await self._runtime.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            await runtime.stop()  # commits what the loop finished with; partitions moved elsewhere are re-read there

    # --- what the consumer runtime asks -----------------------------------------------

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        pass

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self._handled.pop(tp, None)

    async def handle(self, batches: Batches) -> None:
        pass  # (the loop below pulls its records)

    async def done(self) -> Committable:
        handled, self._handled = self._handled, {}
        return handled

    def __aiter__(self) -> AsyncIterator[AnyEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[AnyEvent]:
        runtime = self._runtime
        if runtime is None:
            raise RuntimeError("use `async with JobEventConsumer(...) as events:` first")
        while True:
            await runtime.commit()  # the loop asked for more: what it was given is handled
            for tp, records in (await runtime.fetch()).items():
                for record in records:
                    try:
                        event = parse_event(record.value)
                    except (ValidationError, ValueError, TypeError):
                        event = None
                    if event is not None and self.seen.is_new(event.job_id, event.seq):
                        yield event
                        self.seen.mark(event.job_id, event.seq)
                    self._handled[tp] = record.offset + 1
