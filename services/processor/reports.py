"""What a runner tells the decider about its attempts: reports (claim,
result, failure) and, while they last, heartbeats and progress.

A report's command id derives from the attempt's ``JobQueued`` event, the
runner and the report's name, so a report sent again is the same command and
the decider applies it once.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from aiokafka import AIOKafkaProducer

from schemas import Heartbeat, ReportProgress, encode_command, topics
from services.processor.attempts import IN_FLIGHT, Attempt, report_id
from services.processor.settings import ProcessorSettings


class Reports:
    def __init__(self, producer: AIOKafkaProducer, runner_id: str, settings: ProcessorSettings) -> None:
        self._producer = producer
        self.runner_id = runner_id
        self._heartbeat_interval_s = settings.heartbeat_interval_s
        self._progress_interval_s = settings.progress_interval_s
        self._last_heartbeat = 0.0
        self._last_progress = 0.0

    async def send(self, command_class, attempt: Attempt, name: str, **fields):
        """Send a command about ``attempt``; returns its delivery future."""
        queued = attempt.queued
        command = command_class(
            command_id=report_id(queued.event_id, self.runner_id, name),
            job_id=queued.job_id,
            tenant=queued.tenant,
            correlation_id=queued.correlation_id,
            issued_at=datetime.now(timezone.utc),
            attempt=queued.data.attempt,
            runner_id=self.runner_id,
            step=attempt.step,
            **fields,
        )
        return await self._producer.send(topics.COMMANDS, key=queued.job_id.encode(), value=encode_command(command))

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
                await self.send(ReportProgress, attempt, f"progress/{time.time_ns()}", percent=latest[0], message=latest[1])
            elif heartbeat_due:
                await self.send(Heartbeat, attempt, f"heartbeat/{time.time_ns()}")
