"""The decider: the only writer of ``jobs.events``.

One member of the consumer group ``jobledger-processor`` on ``jobs.commands``
(job commands), ``jobs.slots`` (slot requests and releases) and
``jobs.schedules`` (schedule commands). For every record it runs the pure
deciders of :mod:`schemas` and sends what they decide; it commits a record's
offset only once everything that record caused is acknowledged by the broker,
so a crash makes the broker deliver again what was not fully decided, and the
deterministic deciders decide it the same way (consumers drop repeats by
``(job_id, seq)``).

Its state, per partition it owns (:mod:`services.processor.tables`), is
restored when the partition is assigned, before any of its records is read:
job states from the local disk plus the tail of ``jobs.events`` past it, slot
and schedule tables from their compacted changelogs.

The runner of the same process is fed in memory (:mod:`.runner`): the
decider hands it every event it decides and takes its reports into an inbox,
decided in the same round as the records fetched from the log. A round's
events are sent together at its end, after the runner's handlers have had
one turn of the event loop: a job that takes no time leaves as one record
batch — submitted, queued, started, succeeded — from one ``SubmitJob``.

Time enters through two loops: deadlines (``run_at``, backoff, timeout, cancel
grace, lease) become ``WakeJob``/``ExpireAttempt`` commands, and due cron ticks
become ``SubmitJob`` commands — both sent to the topics and decided like any
other record.

(It used to be a faust-streaming app. faust's recovery has a race in which
records fetched while its tables recover are dropped and the stream is not
sought back to the committed offset: a processor killed under load lost 27 of
600 accepted jobs that way, in a test that reproduced it at will. A plain
consumer group whose listener restores the state before the first fetch has
no such window; see docs/architecture.md.)
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas import (
    Command,
    CompleteJob,
    ExpireAttempt,
    Heartbeat,
    Job,
    Rejection,
    encode_command,
    encode_slot_message,
    parse_command,
    topics,
)
from schemas.leases import Deadlines
from schemas.topics import DeadLetterStage
from services.adapters.consumer_runtime import Batches, Committable, ConsumerRuntime
from services.adapters.log import DeadLetters
from services.common import tracing
from services.common.lifecycle import Service
from services.common.logging import job_context
from services.processor.decision import RecordTooLarge, decide_command, due_now, keep_time, unrecordable
from services.processor.fencing import PartitionProducers
from services.processor.job_metrics import JobMeter
from services.processor.scheduler import Scheduler
from services.processor.settings import ProcessorSettings
from services.processor.slot_decider import SlotDecider
from services.processor.states import DurableStates, trust_only_the_log
from services.processor.tables import JobStates

if TYPE_CHECKING:
    from services.processor.runner import Runner

log = structlog.get_logger(component="decider")

EVENT_HEADERS = [("content-type", topics.CLOUDEVENTS_CONTENT_TYPE.encode())]
DECIDER_HEADER = "jobledger-decider"
"""Which decider process appended an event (``host:pid``), for audits and the fencing test."""
INPUTS = (topics.COMMANDS, topics.SLOTS, topics.SCHEDULES)
ROUND_MAX_RECORDS = 1000
"""The most records one round decides; its events leave together at its end."""
FETCH_WAIT_MS = 500
"""How long a round waits for records when neither the log nor the runner has any."""
MAX_POLL_INTERVAL_MS = 600_000
"""How long a round may take before the group counts the decider as gone (a restore included)."""
CONSUMER_OPTIONS = dict(max_poll_records=ROUND_MAX_RECORDS, max_poll_interval_ms=MAX_POLL_INTERVAL_MS)
"""The decider's consumer, beyond the settings' (:func:`services.adapters.log.make_consumer`)."""


@dataclass
class Decided:
    """One decision's events, to be sent at the end of the round."""

    key: bytes
    partition: int
    """Of jobs.commands and jobs.events alike: the job's."""
    values: list[bytes]
    job: Job
    """The state the events lead to."""
    trace: list[tuple[str, bytes]]
    """The decision's span, for its events' headers (empty while tracing is off)."""


class Decider(Service):
    """The decider's part of a processor: the :class:`~services.adapters.consumer_runtime.Handler`
    of its consumer-group member, and the loops that turn time into commands."""

    def __init__(self, settings: ProcessorSettings, producer: AIOKafkaProducer, consumer: AIOKafkaConsumer) -> None:
        """``consumer``: a member of the group ``settings.app_id``, with :data:`CONSUMER_OPTIONS`."""
        super().__init__()
        self.settings = settings
        self.durable = DurableStates(settings.state_dir / "job-states")
        self.jobs = JobStates(self.durable)
        self.deadlines = Deadlines(settings.lease_s)
        self.meter = JobMeter()
        self._producer = producer
        self._headers = [*EVENT_HEADERS, (DECIDER_HEADER, f"{socket.gethostname()}:{os.getpid()}".encode())]
        self._fenced = PartitionProducers(settings, settings.app_id) if settings.fencing else None
        """The events' producers, one per owned partition (None: the shared producer sends them, unfenced)."""
        self._inbox: deque[Command] = deque()
        """Reports of the runner of this process, about jobs of partitions owned here."""
        self._inbox_filled = asyncio.Event()
        self._traces: dict[str, Any] = {}
        """Inbox commands' traces (their attempts' spans), while tracing is on."""
        self._runtime = ConsumerRuntime(
            consumer,
            list(INPUTS),
            self,
            name="decider",
            commit_interval_s=settings.commit_interval_s,
            fetch_wait_ms=FETCH_WAIT_MS,
            max_records=ROUND_MAX_RECORDS,
            wake=self._inbox_filled,
        )
        self._dead = DeadLetters(producer, DeadLetterStage.DECIDER, self._send)
        self.slots = SlotDecider(producer, DeadLetters(producer, DeadLetterStage.SLOTS, self._send), self._send)
        self.scheduler = Scheduler(producer, DeadLetters(producer, DeadLetterStage.SCHEDULES, self._send), self._send)
        self.runner: Runner | None = None
        """The runner of this process, fed in memory (set by the bootstrap)."""
        self._round: list[Decided] = []
        """This round's decisions, sent at its end."""
        self._log_ends: dict[int, int] = {}
        """Per jobs.events partition, the offset after the last event of ours acknowledged there."""
        self._sent: list[asyncio.Future] = []
        """Deliveries not yet known to be acknowledged."""
        self._decided: Committable = {}
        """Next offset to commit per input partition: every record before it is decided and its output sent."""
        self._ready = asyncio.Event()
        """Set once partitions were first assigned: the timers start then."""

    # --- lifecycle ---------------------------------------------------------------

    async def on_start(self) -> None:
        await trust_only_the_log(self.settings, self.durable)
        await self._producer.start()

    def hurry(self) -> None:
        """The decider stops its own runner (below): a second signal hurries it
        too, even when the runner's part had not started yet."""
        if self.runner is not None:
            self.runner.hurry()

    async def on_stop(self) -> None:
        if self.runner is not None:
            await self.runner.stop()  # its last reports land in the inbox, decided next
        await self._runtime.stop()  # (what fails to commit here is decided again)
        if self._fenced is not None:
            await self._fenced.stop()
        await self._producer.stop()
        self.durable.close()

    # --- the loop ----------------------------------------------------------------

    def tasks(self):
        return [self._consume, self._fire_deadlines, self._fire_schedules]

    async def _consume(self) -> None:
        await self._runtime.start()
        log.info("decider started", group=self.settings.app_id, runner="in this process" if self.runner else "elsewhere")
        # A round: what the log brought, or what the runner reported, whichever comes first.
        await self._runtime.run(lambda: not self.should_stop)

    async def handle(self, batches: Batches) -> None:
        """One round: decide the records, then the runner's reports; send what they decided."""
        for tp, records in batches.items():
            for record in records:
                await self._take(record)
                self._decided[tp] = record.offset + 1
        await self._decide_inbox()
        await self._end_round()

    async def done(self) -> Committable:
        """Everything decided so far, once its output is acknowledged."""
        await self._decide_inbox()
        await self._end_round()
        decided, self._decided = self._decided, {}
        if self._fenced is None:
            return decided
        # The job commands' offsets go with the fencing transactions; the rest the consumer commits.
        commands = {tp: offset for tp, offset in decided.items() if tp.topic == topics.COMMANDS}
        await self._fenced.commit(commands, self.settings.app_id)
        return {tp: offset for tp, offset in decided.items() if tp.topic != topics.COMMANDS}

    async def _decide_inbox(self) -> None:
        """Let the runner claim what the round queued, decide its reports; then
        give the handlers started meanwhile one turn of the event loop, and
        decide what they reported — a handler that finishes at once ends its
        job in this round."""
        for _ in range(2):
            if self.runner is not None:
                await self.runner.claim()
            while self._inbox:
                command = self._inbox.popleft()
                partition = self.jobs.partition_of(command.job_id)
                trace = self._traces.pop(command.command_id, None) if self._traces else None
                if partition is not None:  # (a rebalance may have taken it meanwhile: then the lease runs out)
                    await self._decide(command, partition, trace=trace)
            if self.runner is None or not self.runner.started_any():
                return
            await asyncio.sleep(0)

    def take(self, command: Command, trace: Any = None) -> bool:
        """A report of the runner of this process: decided here if its job's partition is owned here."""
        if self.jobs.partition_of(command.job_id) is None or not self._runtime.settled.is_set():
            return False
        if trace is not None:
            self._traces[command.command_id] = trace
        self._inbox.append(command)
        self._inbox_filled.set()
        return True

    async def _end_round(self) -> None:
        """Send the round's events, each decision's in one record batch, and wait
        until the broker has them all; a failure stops the decider (its records
        are not committed, so they are decided again after a restart)."""
        decided, self._round = self._round, []
        last = {item.key: item for item in decided}  # a later decision's state includes an earlier one's
        states: list[tuple[Job, asyncio.Future]] = []
        for item in decided:
            headers = self._headers + item.trace if item.trace else self._headers
            for value in item.values:
                if self._fenced is not None:
                    delivery = await self._fenced.send(item.partition, item.key, value, headers)
                else:
                    delivery = await self._producer.send(topics.EVENTS, key=item.key, value=value, headers=headers)
            if last[item.key] is item:
                states.append((item.job, delivery))
            self._send(delivery)
        await self._settle()
        self._acknowledged(states)

    async def _take(self, record) -> None:
        if record.topic == topics.COMMANDS:
            command = await self._dead.parsed(record, parse_command, "job command")
            if command is not None:
                await self._decide(command, record.partition, record, tracing.context_of(record.headers))
        elif record.topic == topics.SLOTS:
            await self.slots.decide(record)
        elif record.topic == topics.SCHEDULES:
            await self.scheduler.keep(record)

    async def _settle(self) -> None:
        """Wait until everything sent is acknowledged; a failure stops the decider
        (its records are not committed, so they are decided again after a restart)."""
        sent, self._sent = self._sent, []
        if sent:
            await asyncio.gather(*sent)

    def _send(self, future: asyncio.Future) -> asyncio.Future:
        self._sent.append(future)
        return future

    # --- job commands --------------------------------------------------------------

    async def _decide(self, command: Command, partition: int, record=None, trace: Any = None) -> None:
        """Decide a job command, from the log (``record``) or from the runner of this process."""
        with (
            job_context(command.job_id, command.tenant, command.correlation_id, command_id=command.command_id),
            tracing.span(f"decide {command.type}", trace, job_id=command.job_id),
        ):
            await self._decided_command(command, partition, record)

    async def _decided_command(self, command: Command, partition: int, record) -> None:
        try:
            decision = decide_command(command, self.jobs.get(command.job_id), self.deadlines)
        except Rejection as rejection:
            # Routine refusals: a runner heartbeats its claims before the grant, and a
            # timer's expiry may land after the report it was waiting for (a backlog).
            level = log.debug if isinstance(command, (Heartbeat, ExpireAttempt)) else log.info
            level("command rejected", job_id=command.job_id, command=command.type, reason=rejection.code, detail=rejection.detail)
            return
        except RecordTooLarge as error:
            if record is not None:
                await self._dead.send(record, error)
            elif isinstance(command, CompleteJob):  # the runner's result: fail the job as the log would have refused it
                await self._decide(unrecordable(command, str(error)), partition)
            return
        except Exception as error:  # a command no rule can decide (a bug, or a value no rule foresaw)
            log.exception("decider failed on a command", job_id=command.job_id, command=command.type)
            if record is not None:
                await self._dead.send(record, error)
            return
        if decision.events and decision.after is not None:  # (events always lead to a state)
            # Slot messages first, acknowledged: if we crash before the events are in the
            # log, the command is decided again and sends them again (they are idempotent);
            # the other order could lose a release and block the key for good.
            for message in decision.to_slots:
                await (await self._producer.send(topics.SLOTS, key=message.key.encode(), value=encode_slot_message(message)))
            # All events of one decision are sent at the end of the round without the
            # loop yielding, so they travel in one record batch: in the log all or none.
            self._round.append(Decided(command.job_id.encode(), partition, decision.values, decision.after, tracing.headers()))
            self.jobs.put(partition, decision.after)
            self.meter.observe(decision.events, decision.after)
        keep_time(self.deadlines, decision, _now())
        if decision.events and self.runner is not None:
            self.runner.heard(partition, decision.events)

    def _acknowledged(self, states: list[tuple[Job, asyncio.Future]]) -> None:
        """The last event of each decision is in the log: the states they lead to
        are durable — written to disk together, one batch per partition."""
        acknowledged: dict[int, tuple[int, list[Job]]] = {}
        for job, delivery in states:
            metadata = delivery.result()
            offset, jobs = acknowledged.get(metadata.partition, (-1, []))
            jobs.append(job)
            acknowledged[metadata.partition] = (max(offset, metadata.offset), jobs)
        for partition, (offset, jobs) in acknowledged.items():
            self._log_ends[partition] = max(self._log_ends.get(partition, 0), offset + 1)
            self.jobs.acknowledged(partition, offset, jobs)

    # --- time ---------------------------------------------------------------------------

    async def _fire_deadlines(self) -> None:
        await self._ready.wait()
        while not self.should_stop:
            await asyncio.sleep(self.settings.timer_interval_s)
            for command in due_now(self.deadlines, self.jobs.get, _now()):
                await self._producer.send(topics.COMMANDS, key=command.job_id.encode(), value=encode_command(command))

    async def _fire_schedules(self) -> None:
        await self._ready.wait()
        while not self.should_stop:
            await asyncio.sleep(self.settings.schedule_interval_s)
            await self.scheduler.tick(_now())

    # --- partitions come and go ----------------------------------------------------------

    async def assigned(self, assigned: set[TopicPartition]) -> None:
        """Restore the state of newly owned partitions before their first record is read."""
        started = time.monotonic()
        job_partitions = {tp.partition for tp in assigned if tp.topic == topics.COMMANDS}
        if self._fenced is not None:  # first: the previous owner's appends end here, and the restore reads them all
            await self._fenced.take(job_partitions)
        live = await self.jobs.restore(self.settings, job_partitions)
        now = _now()
        for _, job in live:
            self.deadlines.track(job, now)
        if self.runner is not None:
            await self.runner.restored(job_partitions, live)
        await self.slots.table.restore(self.settings, {tp.partition for tp in assigned if tp.topic == topics.SLOTS})
        await self.scheduler.table.restore(self.settings, {tp.partition for tp in assigned if tp.topic == topics.SCHEDULES})
        log.info("partitions assigned", partitions=sorted(job_partitions), restore_s=round(time.monotonic() - started, 3))
        self._ready.set()

    async def revoked(self, revoked: set[TopicPartition]) -> None:
        """Hand over cleanly: what was decided is acknowledged and committed
        (the runtime asked :meth:`done` first, the runner's reports on these
        partitions included); forget the rest."""
        lost = {tp.partition for tp in revoked if tp.topic == topics.COMMANDS}
        if self.runner is not None:
            self.runner.released(lost, self._log_ends)
        if self._fenced is not None:
            await self._fenced.release(lost)
        forgotten = self.jobs.forget(lost)
        for job_id in forgotten:
            self.deadlines.forget(job_id)
        self.meter.forget(forgotten)
        self.slots.table.forget({tp.partition for tp in revoked if tp.topic == topics.SLOTS})
        self.scheduler.table.forget({tp.partition for tp in revoked if tp.topic == topics.SCHEDULES})
        for tp in revoked:
            self._decided.pop(tp, None)


def _now() -> datetime:
    return datetime.now(timezone.utc)
