"""The one consumer runtime (services/adapters/consumer_runtime.py) against the
real broker: records wait for their partition's restore, a member commits
exactly what its handler says is done, and a second member of the group
takes over from there."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import TopicPartition

from services.adapters.broker import ensure_topics
from services.adapters.consumer_runtime import Batches, Committable, ConsumerRuntime
from services.adapters.log import append, make_consumer, make_producer

pytestmark = pytest.mark.integration


class Recorder:
    """A handler that restores slowly and counts as done only what it was told to."""

    def __init__(self, restore_s: float = 0.0) -> None:
        self.restore_s = restore_s
        self.restoring = False
        self.handled: list[bytes] = []
        self.handled_while_restoring = 0
        self.next_offsets: Committable = {}
        self.done_up_to: int | None = None
        """Count as done only records before this offset (``None``: all handled)."""

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        self.restoring = True
        await asyncio.sleep(self.restore_s)
        self.restoring = False

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        pass

    async def handle(self, batches: Batches) -> None:
        for tp, records in batches.items():
            for record in records:
                self.handled_while_restoring += self.restoring
                self.handled.append(record.value)
                if self.done_up_to is None or record.offset < self.done_up_to:
                    self.next_offsets[tp] = record.offset + 1

    async def done(self) -> Committable:
        done, self.next_offsets = self.next_offsets, {}
        return done


def member(stack, topic: str, group: str, handler: Recorder) -> ConsumerRuntime:
    return ConsumerRuntime(
        make_consumer(stack.settings, group),
        [topic],
        handler,
        name="test",
        commit_interval_s=0.1,
        fetch_wait_ms=50,
        max_records=100,
    )


async def run_until(runtime: ConsumerRuntime, handler: Recorder, count: int) -> None:
    await runtime.start()
    stop = asyncio.Event()
    running = asyncio.create_task(runtime.run(lambda: not stop.is_set()))
    try:
        async with asyncio.timeout(30):
            while len(handler.handled) < count:
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await running
        await runtime.stop()


async def topic_of_records(stack, count: int) -> tuple[str, str]:
    """A new topic holding ``record 0`` … ``record {count - 1}`` on one key, and a new group's name."""
    topic, group = f"it-{uuid.uuid4().hex[:8]}", f"it-group-{uuid.uuid4().hex[:8]}"
    await ensure_topics(stack.settings, [topic])
    producer = make_producer(stack.settings)
    await producer.start()
    try:
        for n in range(count):
            await append(producer, topic, b"one-key", f"record {n}".encode(), timeout_s=10)
    finally:
        await producer.stop()
    return topic, group


async def test_a_member_handles_records_after_the_restore_and_commits_only_what_is_done(stack):
    topic, group = await topic_of_records(stack, 10)

    first = Recorder(restore_s=0.5)
    first.done_up_to = 6
    await run_until(member(stack, topic, group, first), first, 10)
    assert first.handled == [f"record {n}".encode() for n in range(10)]
    assert first.handled_while_restoring == 0

    second = Recorder()
    await run_until(member(stack, topic, group, second), second, 4)
    assert second.handled == [f"record {n}".encode() for n in range(6, 10)]  # from the last commit on


class CancelledOnce(Recorder):
    """A restore whose first try awaits what another task cancels — as aiokafka's
    own ``stop()`` does when a fetch of the restore's reader was still out."""

    def __init__(self) -> None:
        super().__init__()
        self.tries = 0

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        self.tries += 1
        if self.tries == 1:
            elsewhere = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(elsewhere.cancel)
            await elsewhere
        await super().assigned(partitions)


async def test_a_restore_cancelled_from_elsewhere_is_tried_again_and_the_member_goes_on(stack):
    # aiokafka runs the listener in its coordination task and catches only
    # Exception: a stray CancelledError used to end that task, and the member
    # waited for an assignment forever.
    topic, group = await topic_of_records(stack, 3)

    handler = CancelledOnce()
    await run_until(member(stack, topic, group, handler), handler, 3)
    assert handler.tries == 2
    assert handler.handled == [f"record {n}".encode() for n in range(3)]
