"""The runner: takes queued attempts from ``jobs.events``, runs their handlers,
and reports back to the decider as commands (Start, then Complete or Fail).

Runners form their own consumer group, so they scale apart from deciders. A
runner never writes job state: if the decider refuses a report (the job was
cancelled meanwhile, say), the report is dropped there. Command ids derive from
the queued event's id, so a redelivered event yields the same commands, which
the decider recognises.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from datetime import datetime, timezone

import mode
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from schemas import (
    CompleteJob,
    FailJob,
    JobFailed,
    JobQueued,
    JobStarted,
    JobSucceeded,
    StartJob,
    encode_command,
    parse_event,
    topics,
)
from services.common.kafka import make_producer
from services.processor.handlers import HandlerRegistry, JobContext
from services.processor.settings import ProcessorSettings

log = structlog.get_logger(component="runner")

_REPORT_NAMESPACE = uuid.UUID("0d8f5b8e-2f47-4c55-8f3b-7a3c4e1f9b21")
_LATER = (JobStarted, JobSucceeded, JobFailed)


def report_id(queued_event_id: str, report: str) -> str:
    return str(uuid.uuid5(_REPORT_NAMESPACE, f"{queued_event_id}/{report}"))


class Offsets:
    """Which offsets may be committed while jobs finish out of order."""

    def __init__(self) -> None:
        self._pending: dict[TopicPartition, set[int]] = {}
        self._next: dict[TopicPartition, int] = {}

    def seen(self, tp: TopicPartition, offset: int) -> None:
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def started(self, tp: TopicPartition, offset: int) -> None:
        self._pending.setdefault(tp, set()).add(offset)

    def done(self, tp: TopicPartition, offset: int) -> None:
        self._pending.get(tp, set()).discard(offset)

    def committable(self) -> dict[TopicPartition, int]:
        return {
            tp: min(self._pending[tp]) if self._pending.get(tp) else next_offset
            for tp, next_offset in self._next.items()
        }

    def forget(self) -> None:
        self._pending.clear()
        self._next.clear()


class Runner(mode.Service):
    def __init__(self, settings: ProcessorSettings, registry: HandlerRegistry, **kwargs) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.registry = registry
        self.runner_id = settings.runner_id or f"{socket.gethostname()}:{os.getpid()}"
        self._slots = asyncio.Semaphore(settings.runner_concurrency)
        self._running: set[asyncio.Task] = set()
        self._offsets = Offsets()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer = None

    async def on_start(self) -> None:
        self._producer = make_producer(self.settings)
        self._consumer = AIOKafkaConsumer(
            topics.EVENTS,
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=self.settings.runner_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            max_poll_interval_ms=24 * 3600 * 1000,
        )
        await self._producer.start()

    async def on_stop(self) -> None:
        if self._running:
            await asyncio.wait(self._running, timeout=self.settings.shutdown_grace_s)
            for task in self._running:
                task.cancel()
        if self._consumer is not None:
            await self._commit()
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    @mode.Service.task
    async def _consume(self) -> None:
        consumer = self._consumer
        # Joined here, not in on_start, so the decider's group join runs meanwhile.
        await consumer.start()
        log.info(
            "runner started",
            runner_id=self.runner_id,
            concurrency=self.settings.runner_concurrency,
            job_types=self.registry.names(),
        )
        while not self.should_stop:
            saturated = self._slots.locked()
            assigned = consumer.assignment()
            if saturated:
                consumer.pause(*assigned)
            else:
                consumer.resume(*assigned)
            batches = await consumer.getmany(timeout_ms=200, max_records=self.settings.runner_concurrency * 4)
            records = [(tp, record) for tp, batch in batches.items() for record in batch]
            # Attempts already taken further on in this batch (a replay) are not run again.
            taken = set()
            decoded = []
            for tp, record in records:
                try:
                    event = parse_event(record.value)
                except (ValidationError, ValueError, TypeError):
                    event = None  # the projector dead-letters what is not a job event
                decoded.append((tp, record, event))
                if isinstance(event, _LATER):
                    taken.add((event.job_id, event.data.attempt))
            for tp, record, event in decoded:
                self._offsets.seen(tp, record.offset)
                if isinstance(event, JobQueued) and (event.job_id, event.data.attempt) not in taken:
                    await self._slots.acquire()
                    self._offsets.started(tp, record.offset)
                    task = asyncio.create_task(self._run(tp, record.offset, event))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
            await self._commit()

    async def _commit(self) -> None:
        committable = {
            tp: offset for tp, offset in self._offsets.committable().items() if tp in self._consumer.assignment()
        }
        if committable:
            try:
                await self._consumer.commit(committable)
            except Exception as error:  # a rebalance: the new owner re-reads from the last commit
                log.warning("runner commit failed", error=repr(error))
                self._offsets.forget()

    async def _run(self, tp: TopicPartition, offset: int, queued: JobQueued) -> None:
        try:
            await self._attempt(queued)
        finally:
            self._offsets.done(tp, offset)
            self._slots.release()

    async def _attempt(self, queued: JobQueued) -> None:
        common = dict(job_id=queued.job_id, tenant=queued.tenant, correlation_id=queued.correlation_id, attempt=queued.data.attempt)
        await self._report(StartJob(command_id=report_id(queued.event_id, "start"), issued_at=_now(), runner_id=self.runner_id, **common))
        ctx = JobContext(job_id=queued.job_id, attempt=queued.data.attempt, tenant=queued.tenant)
        try:
            job_handler = self.registry.get(queued.data.job_type)
            payload = job_handler.payload.model_validate(queued.data.payload)
            result = await job_handler.run(ctx, payload)
            report = CompleteJob(command_id=report_id(queued.event_id, "complete"), issued_at=_now(), result=result, **common)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.info("job attempt failed", job_id=queued.job_id, attempt=queued.data.attempt, error=repr(error))
            report = FailJob(
                command_id=report_id(queued.event_id, "fail"),
                issued_at=_now(),
                error=str(error) or type(error).__name__,
                error_type=type(error).__name__,
                **common,
            )
        await self._report(report)

    async def _report(self, command) -> None:
        future = await self._producer.send(topics.COMMANDS, key=command.job_id.encode(), value=encode_command(command))
        await future


def _now() -> datetime:
    return datetime.now(timezone.utc)
