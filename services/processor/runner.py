"""The runner: runs queued attempts' handlers and reports back to the decider as commands.

An attempt waits in a buffer ordered by priority, is claimed with
``StartJob`` when a slot is free, runs, and is reported as ``CompleteJob`` or
``FailJob`` (the steps are :class:`~services.processor.attempts.AttemptState`).

A runner is fed one of two ways:

- **In memory, by the decider of its own process** (the default: a processor
  runs both). The decider hands it every event it decides for the partitions
  it owns, and the runner's reports for those jobs go straight back into the
  decider's inbox — no record on ``jobs.commands``, no read of ``jobs.events``.
  A short job is then one command (``SubmitJob``) and one record batch of
  events, the way Temporal dispatches an activity eagerly to the worker that
  asked. The claim is granted within the same decision round, so the handler
  starts only once the decider has granted it.
- **From the log** (``JOBLEDGER_DECIDER_ENABLED=false``: a runner-only
  process, for more workers than deciders or for job types only other hosts
  run). It reads ``jobs.events`` in its own consumer group and reports through
  ``jobs.commands``. By default the handler starts beside the claim, one
  round trip through the decider fewer per job; a ``JobStarted`` naming
  another runner, or an event that ends the attempt, cancels it. With
  ``runner_waits_for_grant`` nothing runs until this runner's own
  ``JobStarted`` comes back, so even a ``JobQueued`` replayed to two runners
  across a rebalance never runs twice at once. Reports are not awaited inside
  a slot: the offset of a ``JobQueued`` is committed only once its report was
  acknowledged (:mod:`.offsets`).

Both kinds may serve the same jobs: the decider grants each attempt to the
first claim it decides. Attempts on a partition this runner's process lost
are followed to their end on the log (:mod:`.follower`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from functools import partial
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import MessageSizeTooLargeError
from pydantic import ValidationError

from schemas import (
    ATTEMPT_ENDED,
    FailJob,
    Job,
    JobCancelRequested,
    JobStarted,
    ReleaseJob,
    StartJob,
    parse_event,
    queued_work,
    topics,
)
from schemas.events import QUEUED, JobUpdated, StepStarted
from schemas.logs import JobLogLine
from services.adapters.artifacts import ArtifactMissing, ArtifactStore, Offloader
from services.adapters.consumer_runtime import Batches, Committable, ConsumerRuntime
from services.adapters.log import make_consumer
from services.common import tracing
from services.common.lifecycle import Service
from services.common.metrics import CONCURRENCY, RUNNING
from services.processor.announce import Announcer
from services.processor.attempts import (
    IN_FLIGHT,
    Attempt,
    AttemptKey,
    AttemptState,
    ReportName,
    WaitingAttempts,
    Work,
    attempt_key,
    first_error,
    outcome,
)
from services.processor.decision import UNRECORDABLE_REPORT
from services.processor.follower import LostPartitions
from services.processor.handlers import HandlerRegistry, PermanentError
from services.processor.offsets import Offsets
from services.processor.reports import LocalDecider, Reports
from services.processor.settings import ProcessorSettings

log = structlog.get_logger(component="runner")

CLAIM_RESEND_S = 60.0
"""A claim not answered by then is sent again (same command id: the decider
applies it once). Every StartJob of a job the decider knows is answered in the
log in the end — by a JobStarted, or by the event that changed the job
meanwhile — but a backlogged decider may take long."""
FETCH_WAIT_MS = 100
"""How long one fetch of jobs.events waits for records (the loop also claims and commits between fetches)."""
FETCH_MAX_RECORDS = 1000
MAX_POLL_INTERVAL_MS = 24 * 3600 * 1000
"""A runner's loop fetches while its handlers run, but a stop's grace may hold it: a day before the group gives up on it."""
CONSUMER_OPTIONS = dict(max_poll_interval_ms=MAX_POLL_INTERVAL_MS)
"""A runner's consumer, beyond the settings' (:func:`services.adapters.log.make_consumer`)."""
HEARTBEAT_TICK_S = 0.2
"""How often the leases of running attempts are looked at (each is heartbeated at the settings' interval)."""
LOG_SHIP_S = 0.2
"""How often the lines running handlers wrote to ``ctx.log`` are sent."""
RELEASE_WAIT_S = 2.0
"""After the grace, how long a cancelled handler may take to unwind before its attempt is handed back anyway."""
CLAIM_RESENDS = 5
"""After this many unanswered resends the claim is given up and its slot freed:
a JobQueued of a job the decider does not know (a forged or dead-lettered
record) is never answered. Should the decider grant it after all, nobody
runs it, its lease runs out and the attempt is retried."""


class Runner(Service):
    """The runner's part of a processor; fed by the log, the
    :class:`~services.adapters.consumer_runtime.Handler` of its consumer-group member."""

    def __init__(
        self,
        settings: ProcessorSettings,
        registry: HandlerRegistry,
        producer: AIOKafkaProducer,
        *,
        decider: LocalDecider | None = None,
        consumer: AIOKafkaConsumer | None = None,
        artifacts: ArtifactStore | None = None,
    ) -> None:
        """Fed in memory by ``decider``, the decider of this process; or, without
        one, by ``consumer``, a member of the runners' group on ``jobs.events``
        (with :data:`CONSUMER_OPTIONS`). ``artifacts``: the store of large results."""
        super().__init__()
        self.settings = settings
        self.registry = registry
        self._decider = decider
        self.runner_id = settings.runner_id or f"{socket.gethostname()}:{os.getpid()}"
        self._free = settings.runner_concurrency
        CONCURRENCY.set(settings.runner_concurrency)
        self._attempts: dict[AttemptKey, Attempt] = {}
        self._buffer = WaitingAttempts()
        self._offsets = Offsets()
        self._lost = LostPartitions(lambda: make_consumer(settings), lambda tp, record: self._take(tp, record, follower=True))
        self._producer = producer
        self._reports = Reports(producer, self.runner_id, settings, decider)
        self._artifacts = artifacts
        self._offloader = None if artifacts is None else Offloader(artifacts, settings.artifact_threshold_bytes)
        self._runtime: ConsumerRuntime | None = None
        if decider is None:
            if consumer is None:
                raise ValueError("a runner is fed by the decider of its process or by a consumer of jobs.events")
            self._runtime = ConsumerRuntime(
                consumer,
                [topics.EVENTS],
                self,
                name="runner",
                commit_interval_s=settings.commit_interval_s,
                fetch_wait_ms=FETCH_WAIT_MS,
                max_records=FETCH_MAX_RECORDS,
            )
        self._announcer = Announcer(
            producer,
            self.runner_id,
            settings.runner_concurrency,
            registry.names(),
            lambda: settings.runner_concurrency - self._free,
            settings.worker_beat_s,
        )
        self._stop_by: float | None = None
        """Set on stop: the end of the grace for claims and running attempts."""
        self._trace: Any = None
        """While a record of jobs.events is observed: the trace its headers carry."""
        self._started_any = False
        self._slot_freed = asyncio.Event()
        """Set when a handler ends: fed in memory, nothing else would claim the next waiting attempt."""
        self._drained = asyncio.Event()
        """Set once the consumer loop has ended (after the stop's claim drain)."""
        self._hurried = asyncio.Event()
        """Set by :meth:`hurry`: the stop's grace is over."""

    # --- lifecycle -------------------------------------------------------------

    def started_any(self) -> bool:
        """Whether a handler started since the last call."""
        started, self._started_any = self._started_any, False
        return started

    @property
    def in_memory(self) -> bool:
        """Fed by the decider of this process rather than by the log."""
        return self._decider is not None

    async def on_start(self) -> None:
        if self.in_memory:
            self._drained.set()  # claims are answered within the decider's round: none is ever left open
        if self._artifacts is not None:
            await self._artifacts.start()
        await self._producer.start()

    async def on_stop(self) -> None:
        """Within ``shutdown_grace_s``: first hear the answers to our claims (a
        granted claim then runs; one left unanswered would hold its job until
        the lease ran out and burn an attempt), then let running attempts
        finish. Those that do not are stopped and handed back (``ReleaseJob``):
        queued again at once, for another runner or the next start, without
        costing an attempt."""
        self._stop_by = time.monotonic() + self.settings.shutdown_grace_s
        drained = asyncio.ensure_future(self._drained.wait())
        await self._within_grace([drained])
        drained.cancel()  # hurried: the claims still open are left to their leases
        running = {a.task: a for a in self._attempts.values() if a.task is not None and not a.task.done()}
        if running:
            await self._within_grace(list(running))
            unfinished = {task: attempt for task, attempt in running.items() if not task.done()}
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.wait(list(unfinished), timeout=RELEASE_WAIT_S)
            for attempt in unfinished.values():
                await self._release(attempt)
        await self._announcer.stopped()
        await self._producer.flush()
        if self._runtime is not None:
            await self._runtime.stop()
        await self._producer.stop()
        if self._artifacts is not None:
            await self._artifacts.stop()

    def hurry(self) -> None:
        """End the stop's grace now (a second Ctrl-C): running attempts are
        stopped and handed back without waiting for them any longer."""
        if self._stop_by is not None:
            self._stop_by = time.monotonic()
        self._hurried.set()

    async def _within_grace(self, tasks: list[asyncio.Future]) -> None:
        """Wait for every one of ``tasks`` until the grace ends or the stop is hurried."""
        every = asyncio.ensure_future(asyncio.wait(tasks))
        hurried = asyncio.ensure_future(self._hurried.wait())
        stop_by = time.monotonic() if self._stop_by is None else self._stop_by
        try:
            await asyncio.wait(
                [every, hurried], timeout=max(0.0, stop_by - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            every.cancel()  # the tasks themselves go on
            hurried.cancel()

    # --- the consumer loop -------------------------------------------------------

    def tasks(self):
        return [self._consume, self._claim_freed_slots, self._follow, self._keep_leases, self._announcer.run, self._ship_logs]

    async def _consume(self) -> None:
        log.info(
            "runner started",
            runner_id=self.runner_id,
            concurrency=self.settings.runner_concurrency,
            job_types=self.registry.names(),
            fed_by="the decider, in memory" if self.in_memory else f"jobs.events (group {self.settings.runner_group_id})",
        )
        if self._runtime is None:
            return
        # Joined here, not in on_start, so the decider's group join runs meanwhile.
        await self._runtime.start()
        try:
            await self._runtime.run(lambda: not self.should_stop or self._claims_pending())
        finally:
            self._drained.set()

    def _claims_pending(self) -> bool:
        """While stopping: claims not answered yet, and grace left to hear the answers."""
        if self._stop_by is not None and time.monotonic() >= self._stop_by:
            return False
        return any(attempt.state is AttemptState.CLAIMED for attempt in self._attempts.values())

    async def handle(self, batches: Batches) -> None:
        """One fetch of jobs.events (when fed by the log), then claim what waits."""
        for tp, records in batches.items():
            for record in records:
                self._offsets.seen(tp, record.offset)
                self._take(tp, record)
        self._refill()
        await self._resend_claims()
        await self._dispatch()

    async def done(self) -> Committable:
        """Every queued attempt before the offset reported and acknowledged (or never ours)."""
        return self._offsets.committable()

    # --- fed by the decider of this process --------------------------------------

    def heard(self, partition: int, events: list) -> None:
        """Events the decider of this process just decided for a partition it
        owns, observed as if read from the log. Free slots claim once the
        decider's round has been heard whole (:meth:`claim`), so a high
        priority job decided later in the round still goes first."""
        tp = TopicPartition(topics.EVENTS, partition)
        for event in events:
            try:
                self._observe(tp, None, event)
            except Exception:
                log.exception("runner could not observe an event; skipped", job_id=event.job_id)

    async def claim(self) -> None:
        """Free slots claim the waiting attempts, highest priority first."""
        await self._dispatch()

    async def restored(self, partitions: set[int], jobs: list[tuple[int, Job]]) -> None:
        """The decider restored ``partitions``: their queued attempts wait here,
        rebuilt from the jobs' states (their events were decided by another
        process, or before this one started), ``(partition, job)`` each. Within
        a priority they wait in the order their jobs last changed (a queued
        job's: when it was queued) across partitions, not partition by
        partition in the order of their ids, which left some partitions'
        oldest attempts behind every other partition's after a restart."""
        self._lost.regained([TopicPartition(topics.EVENTS, partition) for partition in sorted(partitions)])
        for partition, job in sorted(jobs, key=lambda owned: owned[1].updated_at):
            for data in queued_work(job):
                work = Work.of_state(job, data)
                if work.key not in self._attempts:
                    self._wait(Attempt(TopicPartition(topics.EVENTS, partition), None, work))
        await self._dispatch()

    def released(self, partitions: set[int], follow_from: dict[int, int]) -> None:
        """The decider lost ``partitions``: attempts still waiting there are the
        new owner's; running ones finish, their answers heard on the log from
        ``follow_from`` (where the log ended when the partition went)."""
        lost = {TopicPartition(topics.EVENTS, partition) for partition in partitions}
        for attempt in list(self._attempts.values()):
            if attempt.tp not in lost:
                continue
            if attempt.state is AttemptState.WAITING:
                self._drop(attempt)
            elif attempt.state in IN_FLIGHT:
                self._lost.lost(attempt.tp, follow_from.get(attempt.tp.partition, 0))

    def _take(self, tp: TopicPartition, record, follower: bool = False) -> None:
        """Observe one record; what cannot be read or observed is skipped, never fatal."""
        try:
            event = parse_event(record.value)
        except Exception:
            return  # the projector dead-letters what is not a job event
        if follower and isinstance(event, QUEUED):
            return  # new attempts on a lost partition are the new owner's
        try:
            self._trace = tracing.context_of(record.headers)
            self._observe(tp, record.offset, event)
        except Exception:
            log.exception("runner could not observe an event; skipped", job_id=event.job_id, offset=record.offset)
        finally:
            self._trace = None

    def _observe(self, tp: TopicPartition, offset: int | None, event) -> None:
        if isinstance(event, QUEUED):
            key = attempt_key(event)
            known = self._attempts.get(key)
            if known is not None:
                if known.tp == tp and known.state in IN_FLIGHT and offset is not None:
                    self._offsets.started(tp, offset)  # its partition came back after a rebalance
                return
            if offset is not None and self._buffer.size >= self.settings.runner_prefetch:
                # Read it again once the buffer has room. (Fed in memory, the
                # buffer takes every queued attempt: the decider holds these
                # jobs in memory too, and nothing would hand this one over again.)
                self._offsets.hold(tp, offset)
                return
            self._wait(Attempt(tp, offset, Work.of_event(event), trace=self._trace or tracing.current()))
            return
        if isinstance(event, JobCancelRequested):
            self._cancel_requested(event.job_id)
            return
        if isinstance(event, JobUpdated):
            if event.data.priority is not None:
                for waiting in [a for a in self._attempts.values() if a.work.job_id == event.job_id]:
                    if waiting.state is AttemptState.WAITING:
                        self._buffer.reprioritize(waiting, event.data.priority)
            return
        attempt = self._attempts.get(attempt_key(event))
        if attempt is None:
            return
        if isinstance(event, (JobStarted, StepStarted)):
            if event.data.runner_id == self.runner_id:
                if attempt.state is AttemptState.CLAIMED:
                    self._run(attempt)
            elif attempt.state in (AttemptState.WAITING, AttemptState.CLAIMED):
                self._drop(attempt)  # another runner holds this attempt
            else:
                self._end(attempt)  # started at once beside our claim, but another runner's claim won
        elif isinstance(event, ATTEMPT_ENDED):
            if attempt.state in (AttemptState.WAITING, AttemptState.CLAIMED):
                self._drop(attempt)
            else:
                self._end(attempt)

    def _wait(self, attempt: Attempt) -> None:
        self._attempts[attempt.key] = attempt
        if attempt.offset is not None:
            self._offsets.started(attempt.tp, attempt.offset)
        self._buffer.push(attempt)

    def _cancel_requested(self, job_id: str) -> None:
        """Tell the job's running handlers (a pipeline's running steps; not its
        compensations, which undo and must finish) that a cancel came."""
        for attempt in self._attempts.values():
            if attempt.work.job_id == job_id and attempt.ctx is not None and not attempt.compensation:
                attempt.ctx.cancel_requested.set()

    def _end(self, attempt: Attempt) -> None:
        """The decider ended a running attempt (or gave it to another runner): stop its handler."""
        if attempt.state is AttemptState.RUNNING and attempt.task is not None and not attempt.task.done():
            attempt.ended_by_decider = True
            attempt.task.cancel()

    def _refill(self) -> None:
        """Read skipped records again once the buffer has room for them."""
        if self._buffer.size > self.settings.runner_prefetch // 2:
            return
        if self._runtime is None:
            return  # fed in memory: nothing is held back to be read again
        consumer = self._runtime.consumer
        for tp in list(consumer.assignment()):
            offset = self._offsets.release(tp)
            if offset is not None:
                consumer.seek(tp, offset)

    async def _resend_claims(self) -> None:
        """Claims sent through the log that no event answered for long are sent again, then given up."""
        now = time.monotonic()
        for attempt in list(self._attempts.values()):
            if attempt.state is AttemptState.CLAIMED and now - attempt.claimed_at > CLAIM_RESEND_S:
                attempt.claimed_at = now
                attempt.resends += 1
                if attempt.resends > CLAIM_RESENDS:
                    log.error("claim never answered; giving it up", job_id=attempt.work.job_id, attempt=attempt.work.data.attempt)
                    self._drop(attempt)
                    continue
                log.warning("claim not answered yet; sending it again", job_id=attempt.work.job_id)
                await self._send(StartJob, attempt, ReportName.START)

    async def _dispatch(self) -> None:
        # Fed in memory, the grant comes back in the same decision round: waiting
        # for it costs nothing, and a handler never starts before it is granted.
        start_at_once = not (self.in_memory or self.settings.runner_waits_for_grant)
        while self._free > 0 and not self.should_stop:
            attempt = self._buffer.pop()
            if attempt is None:
                return
            attempt.state = AttemptState.CLAIMED
            attempt.claimed_at = time.monotonic()
            self._free -= 1
            await self._send(StartJob, attempt, ReportName.START)
            if start_at_once:
                self._run(attempt)

    def _drop(self, attempt: Attempt) -> None:
        if attempt.state is AttemptState.WAITING:
            self._buffer.discard()
        elif attempt.state is AttemptState.CLAIMED:
            self._free += 1
        attempt.state = AttemptState.DONE
        self._attempts.pop(attempt.key, None)
        self._done(attempt)

    def _done(self, attempt: Attempt) -> None:
        """Its queued event's offset no longer holds the runners' group back."""
        if attempt.offset is not None:
            self._offsets.done(attempt.tp, attempt.offset)

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        """Partitions go (what is done on them is committed): what waits there is
        the new owner's; what is in flight is followed on the log to its end."""
        for attempt in list(self._attempts.values()):
            if attempt.tp not in partitions:
                continue
            if attempt.state is AttemptState.WAITING:
                self._drop(attempt)
            elif attempt.state in IN_FLIGHT and attempt.offset is not None:
                self._lost.lost(attempt.tp, attempt.offset)
        self._offsets.forget(partitions)

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        self._lost.regained(partitions)

    async def _claim_freed_slots(self) -> None:
        """Fed in memory, a slot freed when no event follows (the last job of a
        burst ended) must still claim the next waiting attempt. (Fed by the log,
        the consumer loop claims at least every 100 ms.)"""
        if not self.in_memory:
            return
        while not self.should_stop:
            await self._slot_freed.wait()
            self._slot_freed.clear()
            await self._dispatch()

    async def _follow(self) -> None:
        def in_flight() -> set[TopicPartition]:
            return {a.tp for a in self._attempts.values() if a.state in IN_FLIGHT}

        await self._lost.follow(lambda: not self.should_stop or self._claims_pending(), in_flight)

    # --- running an attempt -------------------------------------------------------

    def _run(self, attempt: Attempt) -> None:
        attempt.begin()
        if attempt.ctx is not None:
            attempt.ctx.log.cap = self.settings.job_log_lines
        if self._artifacts is not None and attempt.ctx is not None:
            attempt.ctx.uploads = partial(_upload_bytes, self._artifacts)
        attempt.task = asyncio.create_task(self._attempt(attempt))
        RUNNING.inc()
        self._started_any = True
        # A callback, not a ``finally``: a task cancelled before its first step
        # never runs its body, and would keep its slot (and heartbeat) for good.
        attempt.task.add_done_callback(lambda task: self._finished(attempt, task))

    def _finished(self, attempt: Attempt, task: asyncio.Task) -> None:
        attempt.state = AttemptState.DONE
        RUNNING.dec()
        self._free += 1
        self._slot_freed.set()
        self._attempts.pop(attempt.key, None)
        if task.cancelled() and attempt.ended_by_decider:
            self._done(attempt)

    async def _attempt(self, attempt: Attempt) -> None:
        work = attempt.work
        structlog.contextvars.bind_contextvars(  # this task's own context: its lines, the handler's too
            job_id=work.job_id, tenant=work.tenant, attempt=work.data.attempt, **({"step": attempt.step} if attempt.step else {})
        )
        if work.correlation_id:
            structlog.contextvars.bind_contextvars(correlation_id=work.correlation_id)
        with tracing.span(f"attempt {work.data.job_type}", attempt.trace, job_id=work.job_id, attempt=work.data.attempt):
            await self._run_attempt(attempt)

    async def _run_attempt(self, attempt: Attempt) -> None:
        report = await outcome(self.registry, attempt, self._offloader)
        await self._ship_log(attempt, last=True)  # before the report: a job's lines leave before its end
        attempt.state = AttemptState.DONE  # no more heartbeats; the slot is freed when the report is on its way
        if report is None:
            self._done(attempt)
            return
        try:
            future = await self._send(report.command, attempt, report.name, **report.fields)
        except (ValidationError, MessageSizeTooLargeError) as error:  # the log cannot carry it: fail for good
            log.warning("job report cannot be recorded; failing the job", job_id=attempt.work.job_id, error=str(error))
            reason = first_error(error) if isinstance(error, ValidationError) else "larger than the broker accepts"
            message = f"the handler's {report.name} report cannot be recorded: {reason}"
            future = await self._send(
                FailJob, attempt, ReportName.FAIL, error=message, error_type=UNRECORDABLE_REPORT, retryable=False
            )
        future.add_done_callback(lambda _: self._done(attempt))

    async def _send(self, command_class, attempt: Attempt, name: str, **fields):
        return await self._reports.send(command_class, attempt, name, **fields)

    async def _release(self, attempt: Attempt) -> None:
        """Hand a stopped attempt back: a job's or a pipeline step's."""
        if attempt.ended_by_decider:
            return
        log.info(
            "running attempt handed back: the runner is stopping",
            job_id=attempt.work.job_id,
            step=attempt.step,
            attempt=attempt.work.data.attempt,
        )
        try:
            future = await self._send(ReleaseJob, attempt, ReportName.RELEASE)
        except Exception as error:  # the lease runs out instead, as after a crash
            log.warning("could not hand the attempt back", job_id=attempt.work.job_id, error=repr(error))
            return
        future.add_done_callback(lambda _: self._done(attempt))

    async def _keep_leases(self) -> None:
        """Heartbeats every :data:`HEARTBEAT_TICK_S`, on through the stop's grace (a
        lease shorter than the grace would run out while the attempt still runs
        here). Cancelled with the part's other tasks, after its stop."""
        while True:
            await asyncio.sleep(HEARTBEAT_TICK_S)
            try:
                await self._reports.keep_alive(list(self._attempts.values()))
            except Exception as error:  # the broker went away: the next beat tries again
                log.warning("heartbeats not sent", error=repr(error))

    async def _ship_logs(self) -> None:
        """Send what running handlers wrote to ``ctx.log``, every :data:`LOG_SHIP_S`."""
        while True:
            await asyncio.sleep(LOG_SHIP_S)
            for attempt in list(self._attempts.values()):
                await self._ship_log(attempt)

    async def _ship_log(self, attempt: Attempt, last: bool = False) -> None:
        """An attempt's new log lines to ``jobs.logs``; with ``last``, a line saying how many the cap dropped."""
        if attempt.ctx is None:
            return
        if last:
            attempt.ctx.log.close()
        for n, level, message, fields, at in attempt.ctx.log.take():
            line = JobLogLine(
                job_id=attempt.work.job_id,
                tenant=attempt.work.tenant,
                attempt=attempt.work.data.attempt,
                step=attempt.step,
                runner_id=self.runner_id,
                n=n,
                level=level,
                message=message,
                fields=orjson.loads(orjson.dumps(fields, default=str)),
                at=at,
            )
            try:
                delivery = await self._producer.send(topics.LOGS, key=line.job_id.encode(), value=line.model_dump_json().encode())
            except Exception as error:  # a job's log is best effort: never the job's failure
                log.warning("job log lines not sent", job_id=line.job_id, error=repr(error))
                return
            delivery.add_done_callback(_delivered)


def _delivered(delivery: asyncio.Future) -> None:
    if not delivery.cancelled() and delivery.exception() is not None:
        log.warning("a job log line was not delivered", error=repr(delivery.exception()))


async def _upload_bytes(store: ArtifactStore, tenant: str, upload_id: str) -> bytes:
    """A handler's ``ctx.upload``: the file, checked against its sha256; one that is not there fails the job for good."""
    try:
        _, data = await store.read_upload(tenant, upload_id)
    except ArtifactMissing as missing:
        raise PermanentError(str(missing)) from None
    return data
