"""Push, not poll: requests that wait on a job hear of its events as the log gets them.

Each ingest process follows the tail of ``jobs.events`` — the log of record —
with one consumer outside any group. A record's key is its job id, so a record
nobody waits for costs a dictionary lookup and is not even decoded. A request
that waits (``GET /jobs/{id}?wait_s=``, the ``/stream`` of server-sent events)
starts from what the read model holds and folds the job's newer events from
the tail with the same ``apply_next`` as everywhere else. It can therefore
answer as soon as the decider's event is in the log, before the projector has
written it; when the tail shows a gap (events the waiter registered too late
to hear, not yet projected), it reads the read model again.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import overload

import structlog

from schemas import AnyEvent, Job, apply_next, parse_event, topics
from services.adapters.consumer_runtime import stop_consumer
from services.adapters.log import make_consumer, topic_partitions
from services.common.settings import ConnectionSettings

log = structlog.get_logger(component="ingest")

TAIL_FETCH_WAIT_MS = 1000
TAIL_FETCH_MAX_RECORDS = 5000
TAIL_RETRY_S = 1.0
"""After the tail lost the broker, how long before it follows the log again."""
GAP_RECHECK_S = 0.005
"""How soon a waiter that saw a gap reads the read model again."""
RECENT_JOBS = 5_000
"""Jobs whose latest records the tail keeps (undecoded), so a request that starts
waiting just after its job's events went by still hears them: the log is often
faster than the client's next request."""
RECENT_EVENTS_PER_JOB = 64
"""The latest records kept per job; older ones are in the read model by then."""


class Follower:
    """The events of one job heard since the request began to wait, in log order."""

    def __init__(self, capacity: int | None = None) -> None:
        self._events: list[AnyEvent] = []
        self._arrived = asyncio.Event()
        self.capacity = capacity
        self.overflowed = False
        """More than ``capacity`` events waited at once: the follower fell behind and stopped taking."""

    def put(self, event: AnyEvent) -> None:
        if self.capacity is not None and len(self._events) >= self.capacity:
            self.overflowed = True
            self._arrived.set()
            return
        self._events.append(event)
        self._arrived.set()

    def take(self) -> list[AnyEvent]:
        events, self._events = self._events, []
        self._arrived.clear()
        return events

    async def arrival(self, timeout_s: float) -> bool:
        """Wait for an event; ``False`` if none came within ``timeout_s``."""
        try:
            await asyncio.wait_for(self._arrived.wait(), timeout_s)
        except TimeoutError:
            return False
        return True


class JobWatch:
    def __init__(self, settings: ConnectionSettings, poll_s: float) -> None:
        self._settings = settings
        self.poll_s = poll_s
        """A waiter reads the read model at least this often, whatever the tail says."""
        self._waiting: dict[bytes, set[Follower]] = {}
        self._everything: dict[str, set[Follower]] = {}
        """Followers of every job of a tenant (``GET /jobs:stream``), by tenant."""
        self._recent: OrderedDict[bytes, _Heard] = OrderedDict()
        self._served: OrderedDict[bytes, int] = OrderedDict()
        """The newest version of each recent job this ingest has answered from
        the read model (a stream message, an events page, a read): the tail may
        lag the projector, and a read from the tail must not answer older."""
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            consumer = make_consumer(self._settings)
            try:
                await consumer.start()
                consumer.assign(await topic_partitions(self._settings, topics.EVENTS))
                await consumer.seek_to_end()
                while True:
                    for records in (
                        await consumer.getmany(timeout_ms=TAIL_FETCH_WAIT_MS, max_records=TAIL_FETCH_MAX_RECORDS)
                    ).values():
                        for record in records:
                            self._hand_over(record)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the broker went away: waiters fall back to the read model meanwhile
                log.warning("lost the tail of jobs.events; following it again", error=repr(error))
                self._recent.clear()  # followed again from the end: what it remembers may now have gaps
                await asyncio.sleep(TAIL_RETRY_S)
            finally:
                await stop_consumer(consumer)

    def _hand_over(self, record) -> None:
        recent = self._recent.get(record.key)
        if recent is None:
            recent = self._recent[record.key] = _Heard()
            if len(self._recent) > RECENT_JOBS:
                self._recent.popitem(last=False)  # the job heard of longest ago
        else:
            self._recent.move_to_end(record.key)  # a long job that still moves is not forgotten for newer ones
        recent.add(record.value)
        for follower in self._waiting.get(record.key, ()):
            _put(follower, record.value)
        if self._everything:
            try:
                event = parse_event(record.value)
            except Exception:
                return
            for follower in self._everything.get(event.tenant, ()):
                follower.put(event)

    @asynccontextmanager
    async def follow(self, job_id: str) -> AsyncIterator[Follower]:
        """The job's events from now on, and those the tail still remembers."""
        key = job_id.encode()
        follower = Follower()
        recent = self._recent.get(key)
        if recent is not None:
            for event in recent.events():
                follower.put(event)
        with _listed(self._waiting, key, follower):
            yield follower

    @asynccontextmanager
    async def follow_tenant(self, tenant: str, capacity: int) -> AsyncIterator[Follower]:
        """Every event of the tenant's jobs from now on, in log order per job;
        at most ``capacity`` of them wait to be taken (then ``overflowed``)."""
        follower = Follower(capacity)
        with _listed(self._everything, tenant, follower):
            yield follower

    def heard_of(self, job_id: str) -> bool:
        """Whether the tail remembers any record of the job."""
        return job_id.encode() in self._recent

    def from_start(self, job_id: str) -> Job | None:
        """The job folded from the events the tail remembers, if they begin at
        its first and reach every version this ingest has answered: then the
        read model has nothing the log's tail lacks, and a read costs the
        database nothing. ``None`` otherwise."""
        key = job_id.encode()
        recent = self._recent.get(key)
        if recent is None:
            return None
        events = recent.events()
        if not events or events[0].seq != 1:
            return None
        job = fold_ahead(None, {}, events)
        if job is not None and job.version < self._served.get(key, 0):
            return None
        return job

    def served(self, job_id: str, version: int) -> None:
        """This ingest answered ``version`` of the job: no later read from the tail answers older."""
        key = job_id.encode()
        if version > self._served.get(key, 0):
            self._served[key] = version
            self._served.move_to_end(key)
            if len(self._served) > RECENT_JOBS:
                self._served.popitem(last=False)

    def catch_up(self, job_id: str, job: Job | None) -> Job | None:
        """``job`` (as read from the read model, or ``None``) with the events the
        tail remembers beyond its version folded in. Every single-job read goes
        through here, so once a wait has answered with a version, a later read
        of the same ingest never answers an older one."""
        newer = self.heard_after(job_id, job.version if job is not None else 0)
        return fold_ahead(job, {}, newer) if newer else job

    def heard_after(self, job_id: str, seq: int) -> list[AnyEvent]:
        """The job's events after ``seq`` that the tail remembers, in seq order
        and without a gap (empty if the next one is not among them)."""
        recent = self._recent.get(job_id.encode())
        if recent is None:
            return []
        newer = []
        for event in reversed(recent.events()):  # newest first: usually only the last few are new
            if event.seq <= seq:
                break
            newer.append(event)
        newer.sort(key=lambda event: event.seq)
        contiguous: list[AnyEvent] = []
        for event in newer:
            if event.seq != seq + len(contiguous) + 1:
                break
            contiguous.append(event)
        return contiguous

    async def until(
        self,
        job_id: str,
        read: Callable[[bool], Awaitable[Job]],
        done: Callable[[Job], bool],
        timeout_s: float,
    ) -> Job:
        """The job once ``done(job)`` holds, or as it is when ``timeout_s`` is up:
        the read model's version, with the events the log has beyond it folded in.
        ``read(tail_first)`` reads the job; when the tail brought nothing for
        ``poll_s``, it is asked to read the read model itself."""
        deadline = time.monotonic() + timeout_s
        async with self.follow(job_id) as follower:  # listening before reading: no event slips between
            job = await read(True)
            ahead: dict[int, AnyEvent] = {}
            while True:
                job = fold_ahead(job, ahead, follower.take())
                left = deadline - time.monotonic()
                if done(job) or left <= 0:
                    return job
                if ahead:  # a gap: what is missing is on its way to the read model
                    await asyncio.sleep(min(left, GAP_RECHECK_S))
                elif await follower.arrival(min(left, self.poll_s)):
                    continue
                stored = await read(False)
                if stored.version > job.version:
                    job = stored


@contextmanager
def _listed(table: dict, key, follower: Follower) -> Iterator[None]:
    """``follower`` is among ``table[key]`` while the block runs."""
    table.setdefault(key, set()).add(follower)
    try:
        yield
    finally:
        followers = table.get(key)
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del table[key]


class _Heard:
    """The latest records of one job, each decoded at most once (when somebody reads it)."""

    __slots__ = ("values", "decoded")

    def __init__(self) -> None:
        self.values: list[bytes] = []
        self.decoded: list[AnyEvent | None] = []
        """``decoded[i]`` is ``values[i]`` parsed; the list grows as far as a reader asked."""

    def add(self, value: bytes) -> None:
        self.values.append(value)
        if len(self.values) > RECENT_EVENTS_PER_JOB:
            del self.values[0]
            if self.decoded:
                del self.decoded[0]

    def events(self) -> list[AnyEvent]:
        """The job events among the records, in log order (a record that is not one is left out)."""
        for value in self.values[len(self.decoded) :]:
            try:
                self.decoded.append(parse_event(value))
            except Exception:
                self.decoded.append(None)  # not a job event: the projector dead-letters it
        return [event for event in self.decoded if event is not None]


def _put(follower: Follower, value: bytes) -> None:
    try:
        follower.put(parse_event(value))
    except Exception:
        pass  # not a job event: the projector dead-letters it


@overload
def fold_ahead(job: Job, ahead: dict[int, AnyEvent], heard: list[AnyEvent]) -> Job: ...
@overload
def fold_ahead(job: Job | None, ahead: dict[int, AnyEvent], heard: list[AnyEvent]) -> Job | None: ...
def fold_ahead(job: Job | None, ahead: dict[int, AnyEvent], heard: list[AnyEvent]) -> Job | None:
    """Fold the heard events that follow ``job``; keep the ones past a gap in ``ahead``."""
    version = job.version if job is not None else 0
    for event in heard:
        if event.seq > version:
            ahead[event.seq] = event
    while version + 1 in ahead:
        job = apply_next(job, ahead.pop(version + 1)) or job
        version += 1
    for seq in [seq for seq in ahead if seq <= version]:
        del ahead[seq]  # the read model had them already
    return job
