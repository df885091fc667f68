"""What a runner tells the decider about its attempts: reports (claim,
result, failure) and, while they last, heartbeats and progress.

A report's command id derives from the attempt's queueing (its ``JobQueued``
event), the runner and the report's name, so a report sent again is the same
command and the decider applies it once. A report about a job whose
partition the decider of this process owns is handed to it in memory;
any other goes to ``jobs.commands``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

from schemas import Command, Heartbeat, ReportProgress, encode_command, topics
from services.adapters.log import MAX_RECORD_BYTES
from services.common import tracing
from services.processor.attempts import IN_FLIGHT, Attempt, ReportName
from services.processor.settings import ProcessorSettings


class LocalDecider(Protocol):
    """The decider of this process, as its runner sees it."""

    def take(self, command: Command, trace: Any = None) -> bool:
        """Decide ``command`` in this process if its job's partition is owned
        here (``True``); ``False``: send it through the log. ``trace``: the
        attempt's, the decision's parent (services.common.tracing)."""


class Reports:
    def __init__(
        self, producer: AIOKafkaProducer, runner_id: str, settings: ProcessorSettings, decider: LocalDecider | None = None
    ) -> None:
        self._producer = producer
        self._decider = decider
        self.runner_id = runner_id
        self._heartbeat_interval_s = settings.heartbeat_interval_s
        self._progress_interval_s = settings.progress_interval_s
        self._last_heartbeat = 0.0
        self._last_progress = 0.0

    async def send(self, command_class, attempt: Attempt, name: str, **fields):
        """Send a command about ``attempt``; returns its delivery future."""
        command = attempt.report(command_class, self.runner_id, name, datetime.now(timezone.utc), **fields)
        value = encode_command(command)
        if self._decider is not None:
            if len(value) > MAX_RECORD_BYTES:  # as the log would refuse it, so the runner fails the job alike
                raise MessageSizeTooLargeError(f"the {name} report takes {len(value):,} bytes")
            if self._decider.take(command, tracing.current()):
                return _taken()
        return await self._producer.send(topics.COMMANDS, key=command.job_id.encode(), value=value, headers=tracing.headers())

    async def keep_alive(self, attempts: list[Attempt]) -> None:
        """Heartbeats for every claimed or running attempt; progress, coalesced per interval.

        A claim is heartbeated too: the lease starts when the decider grants
        the attempt, and under a backlog this runner may read that grant only
        much later. Until the grant is decided the decider refuses them.
        """
        now = time.monotonic()
        heartbeat_due = now - self._last_heartbeat >= self._heartbeat_interval_s
        progress_due = now - self._last_progress >= self._progress_interval_s
        if progress_due:
            self._last_progress = now
        if heartbeat_due:
            self._last_heartbeat = now
        for attempt in attempts:
            if attempt.state not in IN_FLIGHT:
                continue
            latest = attempt.ctx.latest_progress if attempt.ctx is not None else None
            if progress_due and latest is not None and latest != attempt.sent_progress:
                attempt.sent_progress = latest
                await self.send(
                    ReportProgress, attempt, f"{ReportName.PROGRESS}/{time.time_ns()}", percent=latest[0], message=latest[1]
                )
            elif heartbeat_due:
                await self.send(Heartbeat, attempt, f"{ReportName.HEARTBEAT}/{time.time_ns()}")


def _taken() -> asyncio.Future:
    """The delivery of a report handed over in memory: done at once."""
    future = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future
