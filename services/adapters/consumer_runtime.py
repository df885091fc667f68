"""The one consumer runtime: every reader of the log opens its consumer here,
and every member of a consumer group — the decider, the runner, the
projector, the consumer kit — runs this loop.

A member supplies only what is its own, a :class:`Handler`: restore what it
keeps per partition when partitions come, forget it when they go, handle the
records fetched, and say which offsets are done. The runtime does the rest,
the same way for all of them:

- **subscribe** with one rebalance listener. When partitions come, the
  handler restores them before any of their records is handed over: aiokafka
  gives its fetcher a new assignment before it calls the listener, so records
  fetched meanwhile wait for the restore (:attr:`ConsumerRuntime.settled`).
- **fetch**, drop the records of partitions no longer owned (fetched before a
  rebalance took them away) and hand the rest over. A handler that has work
  of its own between fetches (the decider's inbox of in-memory reports) gives
  a ``wake`` event that ends the wait for records early.
- **commit** what the handler says is done (``done()``: every record before
  the offset handled, and acknowledged where it produced records) on an
  interval, when partitions go (before the handler forgets them) and on the
  way out. Only partitions still owned are committed; a commit that fails is
  logged, not raised: the next owner reads on from the last commit, and every
  member drops repeats. Where everything handed over is done, the commit
  goes on to the consumer's position: past the markers Kafka writes when a
  transaction ends (``jobs.events``: the decider's fencing, see
  :mod:`services.processor.fencing`), which take offsets no record has —
  else a group that is done would lag by a marker forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition

ASSIGN_ATTEMPTS = 3
"""Restores of newly assigned partitions tried before the member gives up and fails."""
Batches = dict[TopicPartition, list[ConsumerRecord]]
Committable = dict[TopicPartition, int]
"""Per partition, the next offset to read: every record before it is done."""


class Handler(Protocol):
    """What a member of a consumer group supplies to the runtime."""

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        """Restore what is kept per partition; no record of ``partitions`` is handed over before this returns."""

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        """Forget ``partitions`` (what was done on them is committed already)."""

    async def handle(self, batches: Batches) -> None:
        """The records of one fetch, of owned and restored partitions only; called
        every round, also with none (a handler may have work of its own)."""

    async def done(self) -> Committable:
        """The offsets that may be committed now; make durable first what they cover."""


def open_consumer(
    bootstrap_servers: str, group_id: str | None = None, *, session_timeout_s: float | None = None, **options: Any
) -> AIOKafkaConsumer:
    """The one way to open a consumer of the log: offsets are committed by hand
    (only what was handled), a new group starts at the beginning, and a group
    member gets ``session_timeout_s`` (rebalance timeout the same, heartbeats a
    third of it, at most every three seconds)."""
    settings: dict[str, Any] = dict(
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    if group_id is not None and session_timeout_s is not None:
        settings.update(
            session_timeout_ms=int(session_timeout_s * 1000),
            rebalance_timeout_ms=int(session_timeout_s * 1000),
            heartbeat_interval_ms=int(min(3.0, session_timeout_s / 3) * 1000),
        )
    settings.update(options)
    return AIOKafkaConsumer(**settings)


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop ``consumer``, whatever its fetcher was waiting for. aiokafka's stop
    cancels the fetch requests still out and awaits each without catching its
    ``CancelledError`` (aio-libs/aiokafka#647): a stop while a request waits
    out a retry (a node is down) raises ``CancelledError`` into a task nobody
    cancelled and skips the rest of the stop. Here the rest is done and the
    stray error kept from the caller; a cancel of the caller's own task still
    goes through."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        if _being_cancelled():
            raise
        pending = list(consumer._fetcher._pending_tasks)  # (aiokafka 0.14's internals, pinned in uv.lock)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await consumer._client.close()


def _being_cancelled() -> bool:
    """Whether someone asked to cancel the running task (rather than a future it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class ConsumerRuntime:
    """One group member's consumer, run for a :class:`Handler`."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topics: list[str],
        handler: Handler,
        *,
        name: str,
        commit_interval_s: float,
        fetch_wait_ms: int,
        max_records: int,
        wake: asyncio.Event | None = None,
    ) -> None:
        self.consumer = consumer
        self._topics = topics
        self._handler = handler
        self._log = structlog.get_logger(component=name)
        self._commit_interval_s = commit_interval_s
        self._fetch_wait_ms = fetch_wait_ms
        self._max_records = max_records
        self._wake = wake
        self._fetch: asyncio.Future[Batches] | None = None
        self._woken: asyncio.Future | None = None
        self._last_commit = time.monotonic()
        self._handed: Committable = {}
        """Per partition, the offset after the last record handed over."""
        self._done: Committable = {}
        """Per partition, the highest offset the handler said is done."""
        self._committed: Committable = {}
        self._failed: Exception | None = None
        """Why the last restore failed for good: the next fetch raises it."""
        self.settled = asyncio.Event()
        """Set while every owned partition is restored; cleared from the moment partitions start to go."""

    async def start(self) -> None:
        """Subscribe and join the group (the first assignment follows, in the background)."""
        self.consumer.subscribe(self._topics, listener=_Listener(self))
        await self.consumer.start()

    async def run(self, keep_going: Callable[[], bool]) -> None:
        """Fetch, hand over, commit on the interval, while ``keep_going()``."""
        try:
            while keep_going():
                await self._handler.handle(await self.fetch())
                if time.monotonic() - self._last_commit >= self._commit_interval_s:
                    await self.commit()
        finally:
            self._cancel_waits()

    async def fetch(self) -> Batches:
        """One round's records: what a fetch brought, or none if ``wake`` was set first.
        A fetch that is still out when ``wake`` ends the wait is kept for the next round."""
        if self._fetch is None:
            self._fetch = asyncio.ensure_future(
                self.consumer.getmany(timeout_ms=self._fetch_wait_ms, max_records=self._max_records)
            )
        fetch = self._fetch
        waits: list[asyncio.Future] = [fetch]
        if self._wake is not None:
            if self._wake.is_set():
                waits = []
            else:
                if self._woken is None:
                    self._woken = asyncio.ensure_future(self._wake.wait())
                waits.append(self._woken)
        if waits:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if self._woken is not None and self._woken.done():
            self._woken = None
        if self._wake is not None:
            self._wake.clear()
        if not fetch.done():
            return {}
        if self._fetch is fetch:
            self._fetch = None
        if fetch.cancelled():  # (the runtime is stopping)
            return {}
        batches: Batches = fetch.result()
        if not batches:
            return batches
        await self.settled.wait()
        if self._failed is not None:
            raise self._failed
        assigned = self.consumer.assignment()
        owned = {tp: records for tp, records in batches.items() if tp in assigned}
        for tp, records in owned.items():
            if records:
                self._handed[tp] = records[-1].offset + 1
        return owned

    async def commit(self) -> None:
        """Commit what the handler says is done, for the partitions still owned."""
        self._last_commit = time.monotonic()
        done = await self._handler.done()
        for tp, offset in done.items():
            self._done[tp] = max(offset, self._done.get(tp, 0))
        assigned = self.consumer.assignment()
        offsets = {tp: offset for tp, offset in done.items() if tp in assigned}
        await self._past_markers(offsets, assigned)
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except Exception as error:
            self._log.warning("offset commit failed; what came after the last one is read again", error=repr(error))
        else:
            self._committed.update(offsets)

    async def _past_markers(self, offsets: Committable, assigned: set[TopicPartition]) -> None:
        """Move ``offsets`` on to the consumer's position where every record
        handed over is done and the position is further (it stepped over
        transaction markers). Not while a fetch has records not handed over
        yet: the position counts those too."""
        if self._fetch is not None and self._fetch.done():
            return
        for tp in assigned:
            handed = self._handed.get(tp)
            if handed is None or self._done.get(tp) != handed:
                continue
            position = await self.consumer.position(tp)
            if position > max(handed, offsets.get(tp, 0), self._committed.get(tp, 0)):
                offsets[tp] = position

    async def stop(self) -> None:
        """Commit what is done (what fails here is read again) and leave the group."""
        self._cancel_waits()
        await self._commit_quietly()
        await stop_consumer(self.consumer)

    async def _commit_quietly(self) -> None:
        try:
            await self.commit()
        except Exception as error:
            self._log.warning("could not commit; what came after the last commit is read again", error=repr(error))

    def _cancel_waits(self) -> None:
        for pending in (self._fetch, self._woken):
            if pending is not None:
                pending.cancel()
        self._fetch = self._woken = None

    async def _assigned(self, partitions: set[TopicPartition]) -> None:
        """Restore, again if it fails (a node's failover can stall a read past
        its step timeout); if it keeps failing, the member fails: it must not
        hold partitions it cannot serve (aiokafka would only log the error)."""
        for attempt in range(1, ASSIGN_ATTEMPTS + 1):
            try:
                await _not_cancelled_by_others(self._handler.assigned(partitions))
                break
            except Exception as error:
                if attempt == ASSIGN_ATTEMPTS:
                    self._log.error("could not restore the assigned partitions; stopping", error=repr(error))
                    self._failed = error
                    break
                self._log.warning(
                    "restoring the assigned partitions failed; restoring again", attempt=attempt, error=repr(error), exc_info=True
                )
                await asyncio.sleep(1.0)
        self.settled.set()

    async def _revoked(self, partitions: set[TopicPartition]) -> None:
        self.settled.clear()
        await self._commit_quietly()
        try:
            await _not_cancelled_by_others(self._handler.revoked(partitions))
        except Exception as error:
            self._log.error("forgetting the revoked partitions failed", error=repr(error), exc_info=True)
        for tp in partitions:
            for offsets in (self._handed, self._done, self._committed):
                offsets.pop(tp, None)


class CancelledByOthers(Exception):
    """A step awaited something another task cancelled (a closed connection's
    request, a stopped client's future): a failure of that step, not a request
    to stop this one."""


async def _not_cancelled_by_others(step: Awaitable[None]) -> None:
    """Run a rebalance step, turning a ``CancelledError`` that nobody asked this
    task for into :class:`CancelledByOthers`. aiokafka runs the listener in
    its group coordination task and catches only ``Exception`` there: a stray
    ``CancelledError`` ends that task for good, and the member then waits for
    an assignment forever without a word (no heartbeat, no rejoin)."""
    try:
        await step
    except asyncio.CancelledError as error:
        if _being_cancelled():
            raise
        raise CancelledByOthers(f"a step was cancelled from elsewhere: {error!r}") from error


class _Listener(ConsumerRebalanceListener):
    def __init__(self, runtime: ConsumerRuntime) -> None:
        self._runtime = runtime

    async def on_partitions_revoked(self, revoked) -> None:
        await self._runtime._revoked(set(revoked))

    async def on_partitions_assigned(self, assigned) -> None:
        await self._runtime._assigned(set(assigned))
